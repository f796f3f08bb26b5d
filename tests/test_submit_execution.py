from __future__ import annotations

import json

import redis
from rq.job import Job

from executions import scheduler, store
from executions.models import Execution
from tests.conftest import assert_nothing_created, listed_jobs
from tests.helpers import assert_error


def the_job(execution: Execution) -> Job:
    return Job.fetch(f"execution-{execution.id}-1", connection=store.connection(), serializer=scheduler.queue().serializer)


def test_it_accepts_a_raw_python_body(alice):
    response = alice.client.post("/api/v1/execute", "print('hi')", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202
    body = response.json()
    assert body == {"task_id": body["task_id"], "status": "queued"}
    assert response["Location"] == f"/api/v1/executions/{body['task_id']}"
    execution = Execution.objects.get(id=body["task_id"])
    assert (execution.tenant, execution.language, execution.code) == (alice.tenant, "python", "print('hi')")
    job = the_job(execution)
    assert job.args == [str(execution.id), alice.tenant.id]
    assert job.func_name == "executions.runs.run_execution"


def test_it_stores_the_job_as_json(alice):
    task_id = alice.submit("print(1)")
    raw = store.connection().hget(f"rq:job:execution-{task_id}-1", "data")
    # JSON, not pickle: the worker never unpickles anything from Redis. Stored as it is, not
    # zlib-compressed as rq would (scheduler.job_args; rq reads either).
    func, instance, args, kwargs = json.loads(raw)
    assert (func, args) == ("executions.runs.run_execution", [task_id, alice.tenant.id])


def test_it_runs_a_raw_body_as_bash_when_asked(alice):
    response = alice.client.post("/api/v1/execute?language=bash", "echo hi", content_type="text/plain")
    assert response.status_code == 202
    assert Execution.objects.get(id=response.json()["task_id"]).language == "bash"


def test_a_language_is_named_by_any_spelling_in_any_case(alice):
    raw = alice.client.post("/api/v1/execute?language=Bash", "echo hi", content_type="text/plain")
    assert Execution.objects.get(id=raw.json()["task_id"]).language == "bash"
    for spelling, name in (("Python", "python"), ("JS", "javascript"), ("C++", "cpp")):
        response = alice.client.post("/api/v1/executions", {"language": spelling, "code": "x"}, format="json")
        assert response.status_code == 202, response.content
        assert Execution.objects.get(id=response.json()["task_id"]).language == name
    unknown = alice.client.post("/api/v1/executions", {"language": "COBOL", "code": "x"}, format="json")
    assert_error(unknown, 400, "invalid_choice")


def test_it_accepts_json_with_stdin(alice):
    response = alice.client.post(
        "/api/v1/executions",
        {"language": "bash", "code": "read x; echo $x", "stdin": "  spaced  \n"},
        format="json",
    )
    assert response.status_code == 202
    assert response["Location"] == f"/api/v1/executions/{response.json()['task_id']}"
    execution = Execution.objects.get(id=response.json()["task_id"])
    assert execution.stdin == "  spaced  \n"
    assert execution.status == "queued"
    assert len(listed_jobs()) == 1


def test_it_defaults_to_python(alice):
    response = alice.client.post("/api/v1/executions", {"code": "print(1)"}, format="json")
    assert Execution.objects.get(id=response.json()["task_id"]).language == "python"


def test_it_answers_503_and_creates_nothing_when_redis_is_down(alice, monkeypatch):
    # A real client against a port where nothing listens: the enqueue really fails.
    connection = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: connection)
    response = alice.client.post("/api/v1/execute", "print(1)", content_type="text/plain")
    assert_error(response, 503, "queue_unavailable")
    assert Execution.objects.count() == 0
    monkeypatch.undo()
    assert_nothing_created()
