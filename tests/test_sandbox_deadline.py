"""A run's deadline is kept inside its sandbox too, with the worker's kill as the backstop."""

from __future__ import annotations

import dataclasses
import time

import pytest

from executions.sandbox import premade, runner
from executions.sandbox.runner import Limits, OutputCollector

pytestmark = pytest.mark.no_database

RUNTIMES = ["runc"] + (["runsc"] if "runsc" in runner.docker_api().info().get("Runtimes", {}) else [])
PATHS = ["cold", "made ahead"]
# Generous (a loaded CI machine, gVisor): a benchmark measures the precision
# (bench/sandbox_timing.py); this is still well below the 10 s a sandbox with no timer of its own
# outlives a worker's kill that does not land.
BOUND_MS = 6000


# The script signals its timer (a sleep and the shell that waits for it), then loops.
AT_THE_TIMER = """
import os, signal
def stat(pid):
    return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()
def command(pid):
    return open(f"/proc/{{pid}}/cmdline", "rb").read()
sleeps = [int(p) for p in os.listdir("/proc") if p.isdigit() and command(p).startswith(b"sleep")]
assert len(sleeps) == 1, sleeps
os.kill(int(stat(sleeps[0])[1]), signal.{signal})
os.kill(sleeps[0], signal.{signal})
print("{signal} to the timer", flush=True)
while True:
    pass
"""


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


@pytest.fixture
def runtime(request, settings):
    settings.SANDBOX_RUNTIME = "" if request.param == "runc" else request.param
    yield request.param
    premade.discard()


def run(path: str, code: str) -> runner.RunResult:
    limits = dataclasses.replace(Limits.from_settings(), timeout_seconds=2)
    if path == "cold":
        return runner.run("python", code, limits=limits)
    premade.prepare("test-worker")
    sandbox = premade.ready()
    result = premade.run("python", code, limits=limits)
    assert result.container_id == sandbox.container_id
    return result


@pytest.fixture
def engine_kill_lost(monkeypatch):
    """The worker's kill as an overloaded engine answers it, and then never lands."""
    calls = []

    def lost(api, container_id):
        calls.append(container_id)
        time.sleep(1.5)

    monkeypatch.setattr(runner, "kill", lost)
    return calls


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_a_loop_ends_at_its_limit_when_the_workers_kill_does_not_land(runtime, path, engine_kill_lost):
    result = run(path, "while True: pass")
    assert engine_kill_lost == [result.container_id]
    assert result.status == "timed_out"
    # Measured to the end of its output stream, not to the slow kill request's answer.
    assert 2000 <= result.duration_ms < BOUND_MS


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_a_script_that_stops_its_timer_ends_at_the_workers_deadline(runtime, path):
    result = run(path, AT_THE_TIMER.format(signal="SIGSTOP"))
    assert result.stdout == b"SIGSTOP to the timer\n"
    assert result.status == "timed_out"
    assert 2000 <= result.duration_ms < BOUND_MS


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_a_script_that_kills_its_timer_gains_no_time(runtime, path):
    result = run(path, AT_THE_TIMER.format(signal="SIGKILL"))
    assert result.stdout == b"SIGKILL to the timer\n"
    assert result.status == "timed_out"
    assert 2000 <= result.duration_ms < BOUND_MS


class LateEnd:
    """An output stream whose end a starved worker reads only after the deadline has passed."""

    def settimeout(self, timeout: float) -> None:
        pass

    def recv(self, size: int) -> bytes:
        time.sleep(0.2)
        return b""


def test_a_stream_that_ends_after_the_deadline_ended_there():
    started = time.monotonic()
    stopped, ended = runner.read_until_exit(None, "x", LateEnd(), OutputCollector(100), started + 0.1)
    assert stopped == "timed_out"
    assert ended - started >= 0.2


def test_it_refuses_a_time_limit_the_timer_would_take_as_none():
    with pytest.raises(runner.SandboxError):
        runner.timer_seconds(dataclasses.replace(Limits.from_settings(), timeout_seconds=0))


class DroppedStream:
    """An engine whose container was still running when its output stream ended, and whose wait
    returns only once the sandbox's timer has ended it (at the run's deadline)."""

    def inspect_container(self, container_id: str) -> dict:
        return {"State": {"Status": "running", "Running": True, "ExitCode": 0, "OOMKilled": False}}

    def wait(self, container_id: str, timeout: float) -> dict:
        time.sleep(0.2)
        return {"StatusCode": 137}


def test_a_container_that_outlived_its_stream_until_the_deadline_is_the_engines_fault():
    with pytest.raises(runner.SandboxError, match="dropped the sandbox's output"):
        runner.exit_state(DroppedStream(), "x", run_deadline=time.monotonic() + 0.1)
    # Without a deadline passed (the run was stopped), the wait's answer stands.
    assert runner.exit_state(DroppedStream(), "x") == (137, False)
