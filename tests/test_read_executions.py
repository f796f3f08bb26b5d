from __future__ import annotations

import time
import uuid

import pytest

from executions import reconciler, runs, store
from executions.models import Execution
from tests.conftest import wait_for_status
from tests.helpers import assert_error

FIELDS = {
    "task_id", "status", "language", "stdout", "stderr", "exit_code", "stdout_truncated",
    "stderr_truncated", "duration_ms", "created_at", "started_at", "finished_at", "error",
    "timeout_seconds", "memory_mb", "compile_output", "compile_duration_ms",
    "verdict", "tests_passed", "tests_failed", "test_results",
}


def test_it_shows_a_queued_execution(alice):
    task_id = alice.submit("print(1)")
    body = alice.get(task_id)
    assert set(body) == FIELDS
    assert body["task_id"] == task_id
    assert body["status"] == "queued"
    assert body["error"] is None and body["exit_code"] is None and body["started_at"] is None


def test_it_hides_another_tenants_execution(alice, bob):
    task_id = alice.submit("print('secret')")
    body = assert_error(bob.client.get(f"/api/v1/executions/{task_id}"), 404, "not_found")
    assert "secret" not in str(body)
    # The same answer as for an id that does not exist at all.
    missing = bob.client.get(f"/api/v1/executions/{uuid.uuid4()}")
    assert missing.json() == body


def test_it_hides_another_tenants_cached_result(alice, bob):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "secret", "exit_code": 0})
    assert store.connection().exists(store.RESULT_KEY.format(task_id))
    assert_error(bob.client.get(f"/api/v1/executions/{task_id}"), 404, "not_found")
    assert alice.get(task_id)["stdout"] == "secret"


def test_it_serves_a_finished_execution_from_redis(alice, django_assert_num_queries):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0})
    alice.client.get("/api/v1/executions")  # brings last_used_at up to date
    # Nothing touches the database: the key comes from the process's cache of keys.
    with django_assert_num_queries(0):
        body = alice.get(task_id)
    assert (body["status"], body["stdout"], body["exit_code"]) == ("completed", "1\n", 0)
    assert body["finished_at"] is not None


def test_it_answers_a_poll_of_a_queued_execution_without_a_query(alice, django_assert_num_queries):
    task_id = alice.submit("print(1)")
    alice.client.get("/api/v1/executions")  # brings last_used_at up to date
    with django_assert_num_queries(0):
        body = alice.get(task_id)
    assert body == Execution.objects.get(id=task_id).to_dict()
    assert body["status"] == "queued"


def test_a_running_execution_is_read_from_its_mirror_once_claimed(alice, worker_process, django_assert_num_queries, settings):
    # The key found at the submission stays cached while the worker takes its time (a hit does not
    # renew an entry: after a second, the read below looked the key up again on a loaded machine).
    settings.API_KEY_CACHE_SECONDS = 60
    task_id = alice.submit("import time; time.sleep(2)")
    running = wait_for_status(task_id, {"running"})
    # The mirror turns "running" once the script is delivered, a moment after the claim (on a loaded
    # machine, the container's start): until then a read still says "queued", never anything later.
    deadline = time.monotonic() + 10
    while alice.get(task_id)["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.02)
    alice.client.get("/api/v1/executions")
    with django_assert_num_queries(0):
        body = alice.get(task_id)
    assert body == running.to_dict()
    assert body["started_at"] is not None
    assert wait_for_status(task_id, {"completed"}).to_dict() == alice.get(task_id)


def test_a_late_running_state_never_hides_a_result(alice):
    task_id = alice.submit("print(1)")
    execution = Execution.objects.get(id=task_id)
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0})
    # A worker that stalled between its claim and its mirror while the run was ended without it.
    store.mirror_state(task_id, alice.tenant.id, {**execution.to_dict(), "status": "running"}, 60)
    assert alice.get(task_id)["status"] == "completed"


def test_an_ending_drops_the_mirror_before_anything_else(alice):
    task_id = alice.submit("print(1)")
    assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
    # No result is cached for a cancelled queued execution: the read goes to the row.
    assert not store.connection().exists(store.RESULT_KEY.format(task_id))
    assert alice.get(task_id)["status"] == "cancelled"


def test_a_requeued_execution_reads_as_queued_again(alice):
    task_id = alice.submit("print(1)")
    Execution.objects.claim(task_id, "worker-1")
    claimed = Execution.objects.get(id=task_id)
    store.mirror_state(task_id, alice.tenant.id, claimed.to_dict(), 60)
    assert alice.get(task_id)["status"] == "running"
    runs.requeue_unstarted(Execution.objects.select_related("tenant").get(id=task_id), "worker-1", OSError("gone"))
    body = alice.get(task_id)
    assert (body["status"], body["started_at"]) == ("queued", None)
    assert body == Execution.objects.get(id=task_id).to_dict()
    reconciler.requeue(Execution.objects.select_related("tenant").only("id", "attempts", "status", "tenant").get(id=task_id))
    assert alice.get(task_id) == Execution.objects.get(id=task_id).to_dict()


def test_a_refused_submission_leaves_no_state_behind(alice):
    alice.tenant.max_queued = 1
    alice.tenant.save()
    alice.submit("print(1)")
    before = set(store.connection().keys(store.RESULT_KEY.format("*")))
    response = alice.client.post("/api/v1/executions", {"language": "python", "code": "print(2)"}, format="json")
    assert response.status_code == 429
    assert set(store.connection().keys(store.RESULT_KEY.format("*"))) == before


def test_it_falls_back_to_the_database_when_the_cache_expired(alice):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "failed", "stderr": "boom", "exit_code": 2})
    store.connection().delete(store.RESULT_KEY.format(task_id))
    body = alice.get(task_id)
    assert (body["status"], body["stderr"], body["exit_code"]) == ("failed", "boom", 2)


def test_it_lists_only_the_callers_executions_newest_first(alice, bob):
    first = alice.submit("print(1)")
    second = alice.submit("echo 2", language="bash")
    bob.submit("print(3)")
    body = alice.client.get("/api/v1/executions").json()
    assert [e["task_id"] for e in body["results"]] == [second, first]


def test_it_filters_the_list(alice):
    python = alice.submit("print(1)")
    bash = alice.submit("echo 2", language="bash")
    Execution.objects.filter(id=python).update(status="completed")
    by_language = alice.client.get("/api/v1/executions?language=bash").json()["results"]
    assert [e["task_id"] for e in by_language] == [bash]
    # Any spelling a submission may use.
    assert [e["task_id"] for e in alice.client.get("/api/v1/executions?language=SH").json()["results"]] == [bash]
    assert [e["task_id"] for e in alice.client.get("/api/v1/executions?language=py").json()["results"]] == [python]
    by_status = alice.client.get("/api/v1/executions?status=completed").json()["results"]
    assert [e["task_id"] for e in by_status] == [python]
    assert_error(alice.client.get("/api/v1/executions?status=done"), 400, "unknown_status")
    assert_error(alice.client.get("/api/v1/executions?language=cobol"), 400, "unknown_language")


def test_it_pages_the_list_with_a_cursor(alice):
    ids = [alice.submit(f"print({i})") for i in range(5)]
    seen = []
    url = "/api/v1/executions?page_size=2"
    while url:
        body = alice.client.get(url).json()
        seen += [e["task_id"] for e in body["results"]]
        url = body["next"]
    assert seen == list(reversed(ids))


@pytest.mark.parametrize("page_size", ["0", "101", "x", "null", "-1", "2.5", "²"])
def test_it_refuses_a_bad_page_size(alice, page_size):
    assert_error(alice.client.get(f"/api/v1/executions?page_size={page_size}"), 400, "invalid_page_size")


def test_it_takes_the_largest_page_size(alice):
    alice.submit("print(1)")
    assert len(alice.client.get("/api/v1/executions?page_size=100").json()["results"]) == 1
