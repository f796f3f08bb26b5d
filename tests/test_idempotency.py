from __future__ import annotations

from datetime import timedelta

import redis
from django.utils import timezone

from executions import store, submissions
from executions.models import Execution
from tests.conftest import listed_jobs
from tests.helpers import assert_error


def post(persona, key: str | None, code: str = "print(1)", **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    body = {"code": code, **extra}
    return persona.client.post("/api/v1/executions", body, format="json", **headers)


def test_a_retry_with_the_same_key_gets_the_same_execution(alice):
    first = post(alice, "order-42")
    again = post(alice, "order-42")
    assert first.status_code == again.status_code == 202
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Execution.objects.count() == 1
    assert len(listed_jobs()) == 1


def test_the_raw_endpoint_honours_the_key_too(alice):
    responses = [
        alice.client.post("/api/v1/execute", "print(1)", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="k")
        for _ in range(2)
    ]
    assert responses[0].json()["task_id"] == responses[1].json()["task_id"]
    assert Execution.objects.count() == 1


def test_the_same_key_for_a_different_request_is_a_conflict(alice):
    post(alice, "k1", code="print(1)")
    assert_error(post(alice, "k1", code="print(2)"), 409, "idempotency_key_reused")
    assert_error(post(alice, "k1", code="print(1)", stdin="x"), 409, "idempotency_key_reused")
    assert Execution.objects.count() == 1


def test_keys_belong_to_their_tenant(alice, bob):
    assert post(alice, "shared").json()["task_id"] != post(bob, "shared").json()["task_id"]
    assert Execution.objects.count() == 2


def test_a_key_is_free_again_after_24_hours(alice):
    first = post(alice, "daily").json()["task_id"]
    Execution.objects.filter(id=first).update(created_at=timezone.now() - timedelta(hours=25))
    second = post(alice, "daily", code="print(2)").json()["task_id"]
    assert second != first
    assert Execution.objects.get(id=first).idempotency_key == ""


def test_no_key_means_no_deduplication(alice):
    post(alice, None)
    post(alice, None)
    assert Execution.objects.count() == 2


def test_it_rejects_an_unusable_key(alice):
    assert_error(post(alice, "x" * 256), 400, "invalid_idempotency_key")
    assert_error(post(alice, "tab\there"), 400, "invalid_idempotency_key")
    assert Execution.objects.count() == 0


def test_a_key_refused_for_an_outage_can_be_retried(alice, monkeypatch):
    connection = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: connection)
    assert_error(post(alice, "retry-me"), 503, "queue_unavailable")
    monkeypatch.undo()
    response = post(alice, "retry-me")
    assert response.status_code == 202 and "Idempotent-Replayed" not in response
    assert Execution.objects.count() == 1


def test_losing_the_insert_race_returns_the_winner(alice, monkeypatch):
    winner, _ = submissions.submit(alice.tenant, submissions.Submission("python", "print(1)"), "race")
    # The loser's first look finds nothing (the winner had not committed yet), then its INSERT fails.
    real_replay = submissions.replay
    calls = []

    def first_miss(*args):
        calls.append(args)
        return None if len(calls) == 1 else real_replay(*args)

    monkeypatch.setattr(submissions, "replay", first_miss)
    loser, created = submissions.submit(alice.tenant, submissions.Submission("python", "print(1)"), "race")
    assert (loser.id, created) == (winner.id, False)
    assert Execution.objects.count() == 1
