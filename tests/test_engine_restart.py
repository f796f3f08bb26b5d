"""The container engine restarts mid-run, with real processes: a Docker engine of the test's own
(live-restore, as `make run` configures it) and a worker pointed at it."""

from __future__ import annotations

import subprocess
import time

import pytest

from executions.models import Execution
from executions.sandbox.runner import docker_api
from tests.conftest import ROOT, manage, stop_workers, subprocess_env, wait_for_status
from tests.engines import script_running, started_engine


@pytest.fixture
def engine():
    engine = started_engine()
    try:
        yield engine
    finally:
        engine.remove()


@pytest.fixture
def engine_worker(engine, transactional_db):
    env = subprocess_env(DOCKER_HOST=engine.host, WORKER_MAINTENANCE_INTERVAL="2")
    processes = [subprocess.Popen(manage("rqworker", "sandbox"), env=env, cwd=ROOT)]
    yield processes[0]
    stop_workers(processes)


def test_an_engine_restart_ends_the_run_in_error_and_the_worker_recovers(alice, engine, engine_worker):
    task_id = alice.submit("import time\nprint('started', flush=True)\ntime.sleep(60)")
    wait_for_status(task_id, {"running"})
    deadline = time.monotonic() + 30
    while not script_running(engine, task_id):
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.05)
    container_id = Execution.objects.get(id=task_id).container_id

    engine.stop()
    engine.start()

    execution = wait_for_status(task_id, {"error", "completed", "failed", "timed_out"}, timeout=60)
    assert execution.status == "error"
    assert "engine" in execution.error
    # The sandbox does not outlive its run, on the engine that kept it alive through the restart.
    deadline = time.monotonic() + 30
    while engine.sandboxes(id=container_id):
        assert time.monotonic() < deadline, "the sandbox outlived its run"
        time.sleep(0.2)

    # The same worker goes on serving, with no restart of its own.
    after = alice.submit("print('after the restart')")
    assert wait_for_status(after, {"completed", "error", "failed"}).stdout == "after the restart\n"
    assert engine_worker.poll() is None
    # Nothing ever ran on the shared engine.
    assert not docker_api().containers(all=True, filters={"label": f"rce.execution={task_id}"})
    assert not docker_api().containers(all=True, filters={"id": container_id})
