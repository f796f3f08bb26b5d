"""A worker killed with SIGKILL mid-run: its container goes, its execution ends `error`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

from django.utils import timezone

from executions import reconciler, store
from executions.models import Execution
from executions.sandbox import janitor
from executions.sandbox.runner import docker_api, own_sandboxes
from tests.conftest import ROOT, manage, sandboxes_of, script_running, stop_workers, subprocess_env, wait_for_status


def test_a_killed_worker_leaves_nothing_running(alice, worker_process):
    task_id = alice.submit("import time\ntime.sleep(60)")
    execution = wait_for_status(task_id, {"running"})
    # Wait until the script runs in its container, then kill the worker without a chance to clean up.
    for _ in range(200):
        if script_running(task_id):
            break
        time.sleep(0.05)
    (container,) = sandboxes_of(task_id)
    code_dir = docker_api().inspect_container(container["Id"])["Mounts"][0]["Source"]
    worker_process.send_signal(signal.SIGKILL)
    worker_process.wait(10)
    assert own_sandboxes(docker_api())

    # The killed worker's heartbeat key lives on for a few seconds; then it is gone.
    name = Execution.objects.get(id=task_id).worker_name
    assert reconciler.worker_is_alive(name)
    store.connection().delete(reconciler.ALIVE_KEY.format(name))
    removed = janitor.sweep(docker_api(), max_age=0, worker_alive=reconciler.worker_is_alive)
    # Long before any deadline could have passed: the dead heartbeat is enough.
    soon = timezone.now() + reconciler.ORPHAN_GRACE + timedelta(seconds=1)
    assert reconciler.fail_orphaned(now=soon) == 1

    assert own_sandboxes(docker_api()) == []
    # The run's sandbox, and the one the worker had made ahead if it had made it before it died.
    assert container["Id"] in removed and len(removed) <= 2
    # Its script's directory too.
    assert os.path.basename(code_dir) in [os.path.basename(path) for path in janitor.sweep_code_dirs(max_age=0)]
    assert not os.path.exists(code_dir)
    execution.refresh_from_db()
    assert execution.status == "error"
    assert execution.finished_at is not None


def test_a_live_worker_keeps_a_heartbeat_and_drops_it_when_it_stops(alice, worker_process):
    task_id = alice.submit("import time\ntime.sleep(1)")
    name = wait_for_status(task_id, {"running"}).worker_name
    assert reconciler.worker_is_alive(name)
    worker_process.terminate()
    worker_process.wait(30)
    assert not reconciler.worker_is_alive(name)


def test_sigusr1_prints_where_a_worker_is_and_it_goes_on(alice, tmp_path, transactional_db):
    """How a worker slow to stop, or that seems stuck, says where it is (conftest.stop_workers asks it)."""
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(manage("rqworker", "sandbox"), env=subprocess_env(), cwd=ROOT, stderr=sink)
    try:
        # Working: it has taken and finished a job.
        wait_for_status(alice.submit("print(1)"), {"completed"})
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "Current thread" not in stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        printed = stderr.read_text()
        assert "Current thread" in printed and 'executions/worker.py", line' in printed
        # Every thread: the heartbeat's too.
        assert "Thread 0x" in printed
        # And it goes on: the next job runs.
        assert wait_for_status(alice.submit("print(2)"), {"completed"}).stdout == "2\n"
    finally:
        stop_workers([process])
