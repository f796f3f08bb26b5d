"""Live output over GET /api/v1/executions/<id>/events: the real web server, a real worker process
and real sandboxes."""

from __future__ import annotations

import time

import pytest

from tests.conftest import start_web_server, stop_web_server
from tests.test_execution_events import EventStream

pytestmark = pytest.mark.usefixtures("transactional_db")

# Ten lines 100 ms apart, then half a second more before the end.
TEN_LINES = "import time\nfor i in range(10):\n    print(f'line {i}')\n    time.sleep(0.1)\ntime.sleep(0.5)\n"
EXPECTED = "".join(f"line {i}\n" for i in range(10))


@pytest.fixture
def server():
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS="2")
    yield port
    stop_web_server(process)


def timed_events(stream: EventStream) -> list[tuple[float, dict]]:
    events = []
    while (event := stream.next()) is not None:
        events.append((time.monotonic(), event))
    return events


def outputs_until(stream: EventStream, count: int) -> list[dict]:
    events = []
    while len([e for e in events if e["event"] == "output"]) < count:
        event = stream.next()
        assert event is not None and event["event"] != "execution"
        events.append(event)
    return events


def joined(events: list[dict], name: str = "stdout") -> str:
    chunks = [e["data"] for e in events if e["event"] == "output" and e["data"]["stream"] == name]
    # Each chunk starts where the one before it ended: nothing lost, nothing twice.
    assert [chunk["offset"] for chunk in chunks] == [sum(c["length"] for c in chunks[:i]) for i in range(len(chunks))]
    return "".join(chunk["data"] for chunk in chunks)


def test_lines_arrive_one_by_one_while_the_program_runs(alice, server, worker_process):
    task_id = alice.submit(TEN_LINES)
    events = timed_events(EventStream(server, alice.key, task_id))
    outputs = [(at, e) for at, e in events if e["event"] == "output"]
    (completed_at,) = [at for at, e in events if e["data"].get("status") == "completed" and e["event"] == "status"]
    execution = events[-1][1]
    assert execution["event"] == "execution" and execution["data"]["stdout"] == EXPECTED
    assert joined([e for _, e in events]) == EXPECTED
    # Line by line (a loaded machine may now and then put two in one event, or a line and its
    # newline in two)...
    assert len(outputs) >= 5
    # ...and the first long before the end: it was sent as printed, not with the result.
    assert completed_at - outputs[0][0] >= 1.0


def test_a_client_that_reconnects_resumes_without_loss_or_repetition(alice, server, worker_process):
    task_id = alice.submit(TEN_LINES)
    stream = EventStream(server, alice.key, task_id)
    first = outputs_until(stream, 3)
    stream.close()
    rest = EventStream(server, alice.key, task_id, last_event_id=first[-1]["id"]).rest()
    assert joined(first + rest) == EXPECTED
    assert rest[-1]["event"] == "execution" and rest[-1]["data"]["stdout"] == EXPECTED


def test_a_client_that_comes_midway_gets_the_output_so_far(alice, server, worker_process):
    task_id = alice.submit(TEN_LINES)
    early = EventStream(server, alice.key, task_id)
    seen = outputs_until(early, 3)
    late = EventStream(server, alice.key, task_id).rest()
    assert joined(late) == EXPECTED
    # The output so far, then the status now, then what follows.
    assert late[0]["event"] == "output" and late[0]["data"]["offset"] == 0
    assert [e["data"]["status"] for e in late if e["event"] == "status"] == ["running", "completed"]
    assert joined(seen + early.rest()) == EXPECTED


def test_output_over_the_cap_is_cut_and_the_cut_is_said(alice, server, worker_process):
    task_id = alice.submit("import sys\nwhile True: sys.stdout.write('y' * 4096)")
    events = EventStream(server, alice.key, task_id).rest()
    execution = events[-1]["data"]
    assert (execution["status"], execution["stdout_truncated"]) == ("output_limit_exceeded", True)
    assert joined(events) == execution["stdout"]
    outputs = [e["data"] for e in events if e["event"] == "output"]
    assert outputs[-1]["truncated"] is True
    assert all("truncated" not in output for output in outputs[:-1])


def test_another_tenant_neither_sees_the_output_nor_makes_it_published(alice, bob, server, worker_process, redis_conn):
    task_id = bob.submit("import time\nprint('bob-secret')\ntime.sleep(0.5)\n")
    stream = EventStream(server, alice.key, task_id)
    assert stream.response.status == 404
    assert b"bob-secret" not in stream.response.read()
    assert redis_conn.exists(f"rce:watched:{task_id}") == 0
    deadline = time.monotonic() + 30
    while bob.get(task_id)["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bob.get(task_id)["stdout"] == "bob-secret\n"
    entries = redis_conn.xrange(f"rce:events:{task_id}")
    assert [fields for _, fields in entries if b"stream" in fields] == []
