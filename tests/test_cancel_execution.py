"""POST /api/v1/executions/<id>/cancel: a queued run never starts, a running one is killed."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import timedelta

import docker.errors
import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from executions import reconciler, runs, scheduler, submissions
from executions.models import Execution
from executions.sandbox import runner
from tests.conftest import ROOT, listed_jobs, manage, run_worker, sandboxes_of, subprocess_env, wait_for_status
from tests.helpers import assert_error

SLEEPER = "import time; time.sleep(60)"


def cancel(persona, task_id: str):
    return persona.client.post(f"/api/v1/executions/{task_id}/cancel")


def containers_of(task_id: str) -> list:
    return sandboxes_of(task_id)


def containers_ever_created(task_id: str, since: float) -> list:
    """Every container the engine created for this execution since `since`, removed or not."""
    events = runner.docker_api().events(
        since=int(since), until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "create", "label": f"rce.execution={task_id}"},
    )
    return list(events)


def cancellations(previous_status: str) -> float:
    labels = {"previous_status": previous_status}
    return REGISTRY.get_sample_value("engine_cancellations_total", labels) or 0.0


def test_it_cancels_a_queued_execution(alice):
    task_id = alice.submit("print('never')")
    before = cancellations("queued")
    response = cancel(alice, task_id)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["task_id"], body["status"]) == (task_id, "cancelled")
    assert body["finished_at"] is not None and body["started_at"] is None
    assert alice.get(task_id)["status"] == "cancelled"
    # Its job left the queue, so the queue depth is true again.
    assert len(listed_jobs()) == 0
    assert cancellations("queued") == before + 1


@pytest.mark.usefixtures("transactional_db")
def test_a_cancelled_execution_whose_job_is_still_queued_never_runs(alice):
    started = time.time()
    task_id = alice.submit("print('never')")
    execution = Execution.objects.select_related("tenant").get(id=task_id)
    submissions.cancel(execution)
    # As if the job had been taken off the queue by nobody: a worker meets it anyway.
    scheduler.admit(execution.tenant_id, None, [(execution.id, execution.attempts)])
    run_worker()
    execution.refresh_from_db()
    assert (execution.status, execution.stdout, execution.container_id) == ("cancelled", "", "")
    assert execution.started_at is None
    assert containers_ever_created(task_id, started) == []


def test_it_refuses_to_cancel_a_finished_execution(alice):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0})
    body = assert_error(cancel(alice, task_id), 409, "already_finished")
    assert "completed" in body["error"]["message"]
    assert Execution.objects.get(id=task_id).status == "completed"


def test_a_second_cancel_changes_nothing(alice):
    task_id = alice.submit("print(1)")
    first = cancel(alice, task_id)
    second = cancel(alice, task_id)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.json()["status"] == "cancelled"


def test_it_hides_another_tenants_execution(alice, bob):
    task_id = alice.submit("print(1)")
    assert_error(cancel(bob, task_id), 404, "not_found")
    assert Execution.objects.get(id=task_id).status == "queued"
    assert_error(cancel(bob, str(uuid.uuid4())), 404, "not_found")


def test_it_needs_an_api_key(alice, anonymous):
    task_id = alice.submit("print(1)")
    assert_error(anonymous.post(f"/api/v1/executions/{task_id}/cancel"), 401, "missing_api_key")
    assert Execution.objects.get(id=task_id).status == "queued"


def test_the_reconciler_leaves_a_cancelled_execution_alone(alice, redis_conn):
    queued = alice.submit("print(1)")
    running = alice.submit("print(2)")
    Execution.objects.filter(id=running).update(status="running", started_at=timezone.now())
    for task_id in (queued, running):
        cancel(alice, task_id)
    redis_conn.flushdb()
    long_ago = timezone.now() - timedelta(hours=1)
    Execution.objects.update(created_at=long_ago, started_at=long_ago)
    assert reconciler.reconcile() == {"parked_results_written": 0, "requeued_or_failed": 0, "orphaned": 0, "cancels_settled": 0, "places_freed": 0}
    assert set(Execution.objects.values_list("status", flat=True)) == {"cancelled"}


def test_a_finishing_worker_never_overwrites_a_cancel(alice):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    cancel(alice, task_id)
    assert runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0}) == "stale"
    assert Execution.objects.get(id=task_id).status == "cancelled"


@pytest.fixture
def patient_worker(transactional_db):
    """A real worker whose sandboxes may run for two minutes, so only a cancel can stop SLEEPER early."""
    process = subprocess.Popen(
        manage("rqworker", "sandbox"), env=subprocess_env(SANDBOX_TIMEOUT_SECONDS="120"), cwd=ROOT
    )
    yield process
    process.terminate()
    process.wait(30)


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_it_kills_a_running_execution_and_removes_its_container(alice, patient_worker):
    task_id = alice.submit(SLEEPER)
    wait_for(lambda: any(c["State"] == "running" for c in containers_of(task_id)))
    before = cancellations("running")
    response = cancel(alice, task_id)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    # The worker keeps what the run printed, and how long it ran, once its sandbox is gone.
    wait_for(lambda: Execution.objects.get(id=task_id).duration_ms is not None)
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.exit_code) == ("cancelled", 137)
    # Far below the two-minute deadline and the script's own 60 s: the cancel stopped it.
    assert execution.duration_ms < 30_000
    # Removed right after the job, which has recorded the result first.
    wait_for(lambda: containers_of(task_id) == [], timeout=10)
    assert cancellations("running") == before + 1
    # The worker is free for the next execution.
    after = alice.submit("print('next')")
    assert wait_for_status(after, {"completed"}).stdout == "next\n"


def sleeping(container_id: str) -> bool:
    try:
        processes = runner.docker_api().top(container_id)["Processes"]
    except docker.errors.APIError:
        # Not started yet.
        return False
    return any("sleep" in " ".join(p) for p in processes)


@pytest.mark.no_database
def test_the_runner_stops_a_sandbox_when_asked_and_keeps_its_output():
    created = []

    def cancelled() -> bool:
        # Bash echoes before it starts `sleep`, so once sleep runs, "started" is in the stream.
        return bool(created) and sleeping(created[0])

    result = runner.run(
        "bash", "echo started; sleep 60", labels={"rce.test": "cancel"},
        on_created=created.append, cancelled=cancelled,
        limits=runner.Limits(timeout_seconds=120, memory_mb=64, cpus=0.5, pids=64, tmpfs_mb=16,
                             output_limit_bytes=65536),
    )
    assert (result.status, result.stdout, result.exit_code) == ("cancelled", b"started\n", 137)
    assert result.duration_ms < 60_000
    assert runner.docker_api().containers(all=True, filters={"label": "rce.test=cancel"}) == []


@pytest.mark.no_database
def test_the_runner_never_starts_a_sandbox_cancelled_before_it_started():
    result = runner.run("bash", "echo never", labels={"rce.test": "cancel-early"}, cancelled=lambda: True)
    assert (result.status, result.stdout, result.exit_code) == ("cancelled", b"", None)
    assert runner.docker_api().containers(all=True, filters={"label": "rce.test=cancel-early"}) == []
