"""POST /api/v1/executions/batch: up to 20 executions, all or nothing, task ids in order."""

from __future__ import annotations

import uuid

import pytest
import redis

from executions import scheduler, store
from executions.models import Execution
from tests.conftest import assert_nothing_created, queued_job_count, run_worker
from tests.helpers import assert_error


def post_batch(persona, items, **extra):
    return persona.client.post("/api/v1/executions/batch", {"executions": items}, format="json", **extra)


def test_it_accepts_a_batch_and_answers_the_task_ids_in_order(alice):
    items = [
        {"code": "print(1)"},
        {"language": "bash", "code": "echo 2", "stdin": "x"},
        {"code": "print(3)", "timeout_seconds": 2, "memory_mb": 32},
    ]
    response = post_batch(alice, items)
    assert response.status_code == 202
    task_ids = response.json()["task_ids"]
    assert len(task_ids) == 3
    rows = [Execution.objects.get(id=task_id) for task_id in task_ids]
    assert [(r.language, r.code, r.stdin) for r in rows] == [
        ("python", "print(1)", ""), ("bash", "echo 2", "x"), ("python", "print(3)", "")
    ]
    assert (rows[2].timeout_seconds, rows[2].memory_mb) == (2.0, 32)
    assert all(r.tenant == alice.tenant and r.status == "queued" for r in rows)
    assert queued_job_count() == 3


@pytest.mark.usefixtures("transactional_db")
def test_every_item_of_a_batch_runs(alice):
    task_ids = post_batch(alice, [{"code": f"print({n})"} for n in range(3)]).json()["task_ids"]
    run_worker()
    assert [alice.get(task_id)["stdout"] for task_id in task_ids] == ["0\n", "1\n", "2\n"]


@pytest.mark.parametrize(
    "bad_item, code",
    [
        ({"code": ""}, "empty_code"),
        ({"code": "print(1)", "language": "cobol"}, "invalid_choice"),
        ({"code": "print(1)", "surprise": 1}, "unknown_field"),
        ({"code": "print(1)", "timeout_seconds": 60}, "invalid_limit"),
        ("print(1)", "invalid"),
    ],
)
def test_one_invalid_item_refuses_the_whole_batch_and_names_it(alice, bad_item, code):
    items = [{"code": "print(1)"}, {"code": "print(2)"}, bad_item, {"code": "print(4)"}]
    error = assert_error(post_batch(alice, items), 400, code)["error"]
    assert error["message"].startswith("executions[2]")
    assert list(error["details"]) == ["executions[2]"]
    assert_nothing_created()


def test_an_item_over_the_size_limit_refuses_the_batch(alice, settings):
    settings.SANDBOX_MAX_CODE_BYTES = 100
    error = assert_error(post_batch(alice, [{"code": "print(1)"}, {"code": "#" * 101}]), 413, "payload_too_large")
    assert error["error"]["message"].startswith("executions[1]: code is 101 bytes")
    assert_nothing_created()


@pytest.mark.parametrize(
    "body, code",
    [
        ({"executions": []}, "empty"),
        ({"executions": [{"code": "print(1)"}] * 21}, "max_length"),
        ({"executions": {"code": "print(1)"}}, "not_a_list"),
        ({}, "required"),
        ({"executions": [{"code": "print(1)"}], "wait": 3}, "unknown_field"),
    ],
)
def test_it_refuses_a_malformed_batch(alice, body, code):
    assert_error(alice.client.post("/api/v1/executions/batch", body, format="json"), 400, code)
    assert_nothing_created()


def test_twenty_is_the_most(alice):
    assert len(post_batch(alice, [{"code": "print(1)"}] * 20).json()["task_ids"]) == 20


def test_it_refuses_an_idempotency_key(alice):
    response = post_batch(alice, [{"code": "print(1)"}], HTTP_IDEMPOTENCY_KEY="k")
    assert_error(response, 400, "invalid_idempotency_key")
    assert_nothing_created()


def test_it_needs_a_key(anonymous):
    response = anonymous.post("/api/v1/executions/batch", {"executions": [{"code": "print(1)"}]}, format="json")
    assert_error(response, 401, "missing_api_key")


def test_it_answers_503_and_creates_nothing_when_redis_is_down(alice, monkeypatch):
    connection = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: connection)
    assert_error(post_batch(alice, [{"code": "print(1)"}, {"code": "print(2)"}]), 503, "queue_unavailable")
    assert Execution.objects.count() == 0
    monkeypatch.undo()
    assert_nothing_created()


def test_a_redis_failure_half_way_through_leaves_nothing_to_run(transactional_db, alice, redis_conn, monkeypatch):
    # The second job's key already holds a string, so its write fails after the first job's: the
    # admission script takes the first back and queues none of them.
    ids = [uuid.uuid4() for _ in range(3)]
    # The rows get these ids (Django caches a field's default callable as _get_default).
    monkeypatch.setattr(Execution._meta.get_field("id"), "_get_default", iter(ids).__next__)
    redis_conn.set(f"rq:job:execution-{ids[1]}-1", "in the way")
    response = post_batch(alice, [{"code": "print(1)"}, {"code": "print(2)"}, {"code": "print(3)"}])
    assert_error(response, 503, "queue_unavailable")
    assert Execution.objects.count() == 0
    assert queued_job_count() == 0
    assert [redis_conn.exists(f"rq:job:execution-{id}-1") for id in ids] == [0, 1, 0]
    assert scheduler.counts(alice.tenant.id) == (0, 0)
    # Nothing is left that a worker could run.
    run_worker()
    assert Execution.objects.count() == 0
