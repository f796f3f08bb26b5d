"""A worker killed with SIGKILL mid-run: its container goes, its execution ends `error`."""

from __future__ import annotations

import signal
from datetime import timedelta

from django.utils import timezone

from executions import reconciler
from executions.models import Execution
from executions.sandbox import janitor
from executions.sandbox.runner import LABEL, docker_api
from tests.conftest import wait_for_status


def test_a_killed_worker_leaves_nothing_running(alice, worker_process):
    task_id = alice.submit("import time\ntime.sleep(60)")
    execution = wait_for_status(task_id, {"running"})
    # Wait until the container exists, then kill the worker without a chance to clean up.
    for _ in range(100):
        if docker_api().containers(filters={"label": f"rce.execution={task_id}"}):
            break
        __import__("time").sleep(0.05)
    worker_process.send_signal(signal.SIGKILL)
    worker_process.wait(10)
    assert docker_api().containers(all=True, filters={"label": LABEL})

    # The next maintenance pass, once the run is past any possible deadline.
    removed = janitor.sweep(docker_api(), max_age=0)
    later = timezone.now() + timedelta(minutes=10)
    assert reconciler.fail_orphaned(now=later) == 1

    assert docker_api().containers(all=True, filters={"label": LABEL}) == []
    assert len(removed) == 1
    execution.refresh_from_db()
    assert execution.status == "error"
    assert execution.finished_at is not None
