"""?wait=N on a submission: 200 with the finished execution if it ends in time, else the usual 202."""

from __future__ import annotations

import threading

import pytest

from executions import reconciler, runs, scheduler, store, submissions
from executions.api import waiting
from executions.models import Execution
from tests.conftest import assert_nothing_created
from tests.helpers import assert_error


def post(persona, query: str, code: str = "print('hi')", **extra):
    return persona.client.post(f"/api/v1/executions{query}", {"code": code}, format="json", **extra)


@pytest.mark.usefixtures("worker_process")
def test_it_answers_200_with_the_finished_execution(alice):
    response = post(alice, "?wait=25")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["stdout"], body["exit_code"]) == ("completed", "hi\n", 0)
    assert response["Location"] == f"/api/v1/executions/{body['task_id']}"


@pytest.mark.usefixtures("worker_process")
def test_the_raw_endpoint_waits_too(alice):
    response = alice.client.post("/api/v1/execute?language=bash&wait=25", "echo raw", content_type="text/plain")
    assert response.status_code == 200, response.content
    assert response.json()["stdout"] == "raw\n"


@pytest.mark.usefixtures("worker_process")
def test_a_failing_script_is_a_200_too(alice):
    # 200 says the wait ended with the execution finished, whatever its own outcome.
    body = post(alice, "?wait=25", code="raise SystemExit(3)").json()
    assert (body["status"], body["exit_code"]) == ("failed", 3)


def test_it_answers_202_when_the_execution_does_not_finish_in_time(alice):
    # No worker runs, so the execution stays queued.
    response = post(alice, "?wait=0.5")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert Execution.objects.get(id=response.json()["task_id"]).status == "queued"


@pytest.mark.parametrize("wait", ["0", "-1", "30.5", "31", "nan", "inf", "soon"])
def test_it_refuses_a_wait_out_of_range(alice, wait):
    response = post(alice, f"?wait={wait}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_wait", "invalid"}
    assert response.json()["error"]["message"].startswith("wait:")
    assert_nothing_created()


def test_thirty_seconds_is_the_most(alice):
    error = assert_error(post(alice, "?wait=30.01"), 400, "invalid_wait")["error"]
    assert "at most 30 seconds" in error["message"]


def test_a_finished_execution_is_answered_without_waiting_for_news(alice):
    first = post(alice, "", HTTP_IDEMPOTENCY_KEY="k")
    task_id = first.json()["task_id"]
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "done\n", "exit_code": 0})
    # Nothing will be published any more: the result must be found by looking, not by listening.
    again = post(alice, "?wait=30", HTTP_IDEMPOTENCY_KEY="k")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["stdout"] == "done\n"


def test_a_waiting_request_wakes_when_the_worker_announces_the_result(alice, redis_conn):
    execution, _ = submissions.submit(alice.tenant, submissions.Submission("python", "print(1)"))
    Execution.objects.filter(id=execution.id).update(status="running")
    results = []
    waiter = threading.Thread(target=lambda: results.append(waiting.subscribe_and_wait(str(execution.id), alice.tenant.id, 30)))
    waiter.start()
    # Once the waiter is subscribed, finish the execution the way a worker does.
    while redis_conn.pubsub_numsub(store.FINISHED_CHANNEL.format(execution.id))[0][1] == 0:
        waiter.join(0.01)
    runs.finish(str(execution.id), {"status": "completed", "stdout": "1\n", "exit_code": 0})
    waiter.join(30)
    assert results and results[0]["stdout"] == "1\n"


def test_a_request_that_finds_no_free_slot_gets_its_202_at_once(alice, monkeypatch):
    monkeypatch.setattr(waiting, "_slots", threading.BoundedSemaphore(1))
    waiting.slots().acquire()
    try:
        response = post(alice, "?wait=30")
    finally:
        waiting.slots().release()
    assert response.status_code == 202


def test_the_reconciler_announces_the_errors_it_writes(transactional_db, alice, redis_conn):
    execution, _ = submissions.submit(alice.tenant, submissions.Submission("python", "print(1)"))
    scheduler.queue().empty()
    old = execution.created_at - reconciler.QUEUED_GRACE * 2
    Execution.objects.filter(id=execution.id).update(created_at=old, attempts=runs.MAX_ATTEMPTS)
    reconciler.requeue_lost()
    assert store.cached_result(str(execution.id), alice.tenant.id)["status"] == "error"
