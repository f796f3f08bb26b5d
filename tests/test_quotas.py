"""Per-tenant quotas and the global queue ceiling, against real Redis."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from executions import runs, scheduler
from executions.models import Execution, Tenant
from tests.conftest import listed_jobs, queued_job_count
from tests.helpers import assert_error


def limit(persona, **fields) -> None:
    Tenant.objects.filter(pk=persona.tenant.pk).update(**fields)
    persona.tenant.refresh_from_db()


def post(persona, code: str = "print(1)", language: str = "python", **headers):
    return persona.client.post(
        "/api/v1/executions", {"language": language, "code": code}, format="json", **headers
    )


def assert_retry_after(response, low: int, high: int) -> None:
    assert low <= int(response["Retry-After"]) <= high


def test_limits_fall_back_to_the_global_defaults(db, settings):
    settings.TENANT_RATE_PER_MINUTE = 7
    settings.TENANT_MAX_RUNNING = 2
    settings.TENANT_ALLOWED_LANGUAGES = ["python"]
    tenant = Tenant(name="t", rate_per_minute=None, max_running=5, allowed_languages="bash,python")
    limits = tenant.limits()
    assert (limits.rate_per_minute, limits.max_running) == (7, 5)
    assert limits.languages == {"bash", "python"}
    assert Tenant(name="u").limits().languages == {"python"}
    assert Tenant(name="v", retention_days=0).limits().retention_days == 0


def test_it_refuses_unknown_languages_in_a_tenants_list(db):
    with pytest.raises(ValidationError):
        Tenant(name="t", allowed_languages="python,cobol").full_clean()


def test_the_request_rate_is_limited_per_tenant_with_retry_after(alice, bob):
    limit(alice, rate_per_minute=3)
    for _ in range(3):
        assert alice.client.get("/api/v1/executions").status_code == 200
    response = post(alice)
    assert_error(response, 429, "rate_limited")
    assert_retry_after(response, 1, 60)
    assert_error(alice.client.get("/api/v1/executions"), 429, "rate_limited")
    assert Execution.objects.count() == 0
    # Bob's budget is his own.
    assert bob.client.get("/api/v1/executions").status_code == 200


def test_reading_an_execution_counts_against_the_rate(alice, bob):
    limit(alice, rate_per_minute=3)
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0})
    # The submission was the first request of the window.
    assert alice.client.get(f"/api/v1/executions/{task_id}").status_code == 200
    assert alice.client.get(f"/api/v1/executions/{task_id}/").status_code == 200
    response = alice.client.get(f"/api/v1/executions/{task_id}")
    assert_error(response, 429, "rate_limited")
    assert_retry_after(response, 1, 60)
    assert alice.client.head(f"/api/v1/executions/{task_id}").status_code == 429
    assert_error(bob.client.get(f"/api/v1/executions/{task_id}"), 404, "not_found")


def test_max_queued_refuses_the_next_submission_with_429(alice, bob):
    limit(alice, max_queued=2, max_running=1)
    alice.submit("print(1)")
    alice.submit("print(2)")
    response = post(alice)
    body = assert_error(response, 429, "queue_quota_exceeded")
    assert "2 executions" in body["error"]["message"]
    assert_retry_after(response, 1, 60)
    response = alice.client.post("/api/v1/execute", "print(3)", content_type="text/plain")
    assert_error(response, 429, "queue_quota_exceeded")
    assert Execution.objects.filter(tenant=alice.tenant).count() == 2
    bob.submit("print(4)")


def test_a_replay_is_not_refused_at_the_quota(alice):
    limit(alice, max_queued=1)
    first = post(alice, HTTP_IDEMPOTENCY_KEY="k")
    again = post(alice, HTTP_IDEMPOTENCY_KEY="k")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true"


def test_max_running_holds_the_excess_without_refusing_it(alice):
    limit(alice, max_running=1, max_queued=10)
    for code in ("print(1)", "print(2)", "print(3)"):
        alice.submit(code)
    # One job in the shared queue; the other two wait behind alice's running slot.
    assert len(listed_jobs()) == 1
    assert scheduler.counts(alice.tenant.id) == (3, 3)


def test_beyond_the_global_ceiling_every_submission_gets_503(alice, bob, settings):
    settings.QUEUE_MAX_DEPTH = 3
    settings.QUEUE_FULL_RETRY_AFTER_SECONDS = 17
    limit(alice, max_running=1)
    alice.submit("print(1)")
    alice.submit("print(2)")
    bob.submit("print(3)")
    assert scheduler.depth() == 3
    for persona in (alice, bob):
        response = post(persona)
        assert_error(response, 503, "overloaded")
        assert response["Retry-After"] == "17"
    assert Execution.objects.count() == 3
    assert queued_job_count() == 3
    assert len(listed_jobs()) == 2


def test_a_language_outside_the_tenants_list_is_refused(alice, bob, settings):
    settings.TENANT_ALLOWED_LANGUAGES = ["python"]
    body = assert_error(post(bob, "echo hi", "bash"), 400, "language_not_allowed")
    assert "'bash'" in body["error"]["message"] and "python" in body["error"]["message"]
    response = bob.client.post("/api/v1/execute?language=bash", "echo hi", content_type="text/plain")
    assert_error(response, 400, "language_not_allowed")
    limit(alice, allowed_languages="bash")
    assert post(alice, "echo hi", "bash").status_code == 202
    assert_error(post(alice, "print(1)", "python"), 400, "language_not_allowed")
    assert Execution.objects.count() == 1


def test_quota_checks_add_no_database_query(alice, django_assert_num_queries):
    alice.client.get("/api/v1/executions")  # brings last_used_at up to date
    # The INSERT, nothing else: the key and its tenant come from the process's cache of keys.
    with django_assert_num_queries(1):
        assert post(alice).status_code == 202


def test_the_quotas_are_editable_in_the_admin(alice, admin_client):
    page = admin_client.get(f"/admin/executions/tenant/{alice.tenant.pk}/change/")
    assert page.status_code == 200
    for field in ("rate_per_minute", "max_queued", "max_running", "max_timeout_seconds", "max_memory_mb",
                  "allowed_languages", "retention_days"):
        assert f'name="{field}"'.encode() in page.content
