"""The runner publishes a watched execution's output to its event stream as the program writes it,
within the output caps, under runc and gVisor: real sandboxes and a real Redis."""

from __future__ import annotations

import dataclasses
import functools
import random
import threading
import time
import uuid

import pytest

from executions import events, runs
from executions.sandbox import runner
from executions.sandbox.runner import Limits, OutputCollector
from tests.test_gvisor_parity import RUNTIMES

pytestmark = pytest.mark.no_database

TEN_LINES = "import time\nfor i in range(10):\n    print(f'line {i}')\n    time.sleep(0.1)\n"


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


def run(execution_id: str, code: str, language: str = "python", runtime: str = "", **limits) -> runner.RunResult:
    limits = dataclasses.replace(Limits.from_settings(runtime), timeout_seconds=10, **limits)
    live = functools.partial(events.OutputPublisher, execution_id)
    return runner.run(language, code, limits=limits, live=live)


def watched() -> str:
    execution_id = str(uuid.uuid4())
    events.watch(execution_id)
    return execution_id


def output_entries(redis_conn, execution_id: str) -> list[tuple[int, dict]]:
    """(milliseconds, fields) of each output entry of the execution's stream."""
    entries = redis_conn.xrange(events.EVENTS_KEY.format(execution_id))
    return [(int(entry_id.split(b"-")[0]), events.output_data(fields)) for entry_id, fields in entries]


def joined(entries: list[tuple[int, dict]], stream: str) -> str:
    chunks = [data for _, data in entries if data["stream"] == stream]
    # Each chunk starts where the one before it ended: a client can check that nothing is missing.
    for before, after in zip(chunks, chunks[1:]):
        assert after["offset"] == before["offset"] + before["length"]
    return "".join(chunk["data"] for chunk in chunks)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_line_is_published_as_the_program_prints_it(redis_conn, runtime):
    execution_id = watched()
    result = run(execution_id, TEN_LINES, runtime=runtime)
    ended_ms = int(time.time() * 1000)
    assert result.status == "completed"
    entries = output_entries(redis_conn, execution_id)
    assert joined(entries, "stdout") == result.stdout.decode() == "".join(f"line {i}\n" for i in range(10))
    # Published while the program ran, not at its end: the first line well before the last.
    assert len(entries) >= 5
    assert entries[-1][0] - entries[0][0] >= 500
    assert ended_ms - entries[0][0] >= 500


def test_both_streams_are_published_apart(redis_conn):
    execution_id = watched()
    result = run(execution_id, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    entries = output_entries(redis_conn, execution_id)
    assert (joined(entries, "stdout"), joined(entries, "stderr")) == ("out\n", "err\n")
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_published_output_stops_at_the_cap_and_says_so(redis_conn, runtime):
    execution_id = watched()
    result = run(execution_id, "while True: print('x' * 1000)", runtime=runtime, output_limit_bytes=20_000)
    assert result.status == "output_limit_exceeded" and result.stdout_truncated
    entries = output_entries(redis_conn, execution_id)
    published = joined(entries, "stdout")
    assert published == result.stdout.decode() and len(published) == 20_000
    assert entries[-1][1]["truncated"] is True
    assert [data.get("truncated") for _, data in entries[:-1]] == [None] * (len(entries) - 1)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_flood_of_small_writes_costs_a_few_redis_writes(redis_conn, runtime):
    execution_id = watched()
    # 30,000 writes of two bytes each, every one reaching the worker on its own.
    code = "import sys\nfor i in range(30000):\n    sys.stdout.write('x\\n')\n    sys.stdout.flush()\n"
    started = time.monotonic()
    result = run(execution_id, code, runtime=runtime)
    seconds = time.monotonic() - started
    assert result.status == "completed" and len(result.stdout) == 60_000
    entries = output_entries(redis_conn, execution_id)
    assert joined(entries, "stdout") == result.stdout.decode()
    # At most one write each FLUSH_SECONDS, and one at the end.
    assert len(entries) <= seconds / events.FLUSH_SECONDS + 2


def test_output_nobody_watches_is_not_published(redis_conn):
    execution_id = str(uuid.uuid4())
    result = run(execution_id, TEN_LINES)
    assert result.stdout.count(b"\n") == 10
    assert redis_conn.exists(events.EVENTS_KEY.format(execution_id)) == 0


def test_a_watcher_who_comes_midway_gets_the_output_so_far_then_the_rest(redis_conn):
    execution_id = str(uuid.uuid4())
    code = "import time\nprint('before', flush=True)\ntime.sleep(1)\nprint('after')\n"
    # The watcher comes while the program sleeps.
    timer = threading.Timer(0.6, events.watch, args=(execution_id,))
    timer.start()
    try:
        result = run(execution_id, code)
    finally:
        timer.join()
    entries = output_entries(redis_conn, execution_id)
    assert joined(entries, "stdout") == result.stdout.decode() == "before\nafter\n"
    assert entries[0][1]["data"] == "before\n"


def test_a_compile_stage_publishes_its_diagnostics_and_never_its_archive(redis_conn):
    execution_id = watched()
    code = '#warning "live warning"\n#include <stdio.h>\nint main(void) { puts("ran"); return 0; }\n'
    result = run(execution_id, code, language="c")
    assert result.status == "completed" and result.stdout == b"ran\n"
    entries = output_entries(redis_conn, execution_id)
    assert {data["stream"] for _, data in entries} == {"compile", "stdout"}
    assert joined(entries, "compile") == result.compile_output.decode()
    assert "live warning" in joined(entries, "compile")
    assert joined(entries, "stdout") == "ran\n"


def test_chunks_end_on_characters_and_put_together_are_the_stored_text(redis_conn, monkeypatch):
    monkeypatch.setattr(events, "FLUSH_SECONDS", 0)
    monkeypatch.setattr(events, "LINGER_SECONDS", 0)
    generator = random.Random(16)
    data = "héllo wörld ✓ 🙂\x00".encode() * 50 + bytes(generator.randrange(256) for _ in range(2000))
    execution_id = watched()
    publisher = events.OutputPublisher(execution_id)
    output = OutputCollector(limit=len(data) + 1)
    position = 0
    while position < len(data):
        piece = data[position : position + generator.randrange(1, 9)]
        position += len(piece)
        output.feed(b"\x01\x00\x00\x00" + len(piece).to_bytes(4, "big") + piece)
        publisher.flush(output)
    publisher.flush(output, final=True)
    assert joined(output_entries(redis_conn, execution_id), "stdout") == runs.as_text(data)
