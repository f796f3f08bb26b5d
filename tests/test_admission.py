"""One admission path for every way in: the API, batches, the admin's re-run and `manage.py execute`."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from executions import scheduler, store, submissions
from executions.models import Execution, Tenant
from tests.helpers import assert_error


def limit(persona, **fields) -> None:
    Tenant.objects.filter(pk=persona.tenant.pk).update(**fields)
    persona.tenant.refresh_from_db()


def post(persona, code: str = "print(1)", **fields):
    return persona.client.post("/api/v1/executions", {"code": code, **fields}, format="json")


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_submitters_against_a_cap_of_ten_get_exactly_ten_in(alice):
    limit(alice, max_queued=10)
    start = threading.Barrier(50)
    statuses = []

    def submitter():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key}")
        start.wait()
        try:
            statuses.append(client.post("/api/v1/execute", "print(1)", content_type="text/plain").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submitter) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [202] * 10 + [429] * 40
    assert Execution.objects.count() == 10
    assert scheduler.counts(alice.tenant.id)[0] == 10


def test_every_request_counts_once_against_the_rate_whether_admitted_or_not(alice):
    limit(alice, rate_per_minute=4)
    assert post(alice).status_code == 202
    assert_error(post(alice, language="cobol"), 400, "invalid_choice")
    assert_error(post(alice, timeout_seconds=10_000), 400, "invalid_limit")
    assert post(alice).status_code == 202
    response = post(alice)
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Execution.objects.count() == 2


def test_a_refusal_by_quota_leaves_no_row_and_no_job(alice):
    limit(alice, max_queued=1)
    assert post(alice).status_code == 202
    assert_error(post(alice), 429, "queue_quota_exceeded")
    assert Execution.objects.count() == 1
    assert scheduler.counts(alice.tenant.id) == (1, 1)


def test_a_group_is_admitted_by_a_redis_that_forgot_the_script(alice, redis_conn):
    limit(alice, max_queued=2)
    # A restarted Redis has no scripts: the group's pipeline gets NOSCRIPT for each, runs none of
    # them, and is sent again once the script is loaded, each admission decided once.
    redis_conn.script_flush()
    group = [submissions.checked(alice.tenant, submissions.Submission("python", f"print({i})")) for i in range(3)]
    results = submissions.submit_group(group)
    assert [isinstance(result, Execution) for result in results] == [True, True, False]
    assert isinstance(results[2], submissions.QuotaExceeded)
    assert Execution.objects.count() == 2
    assert scheduler.counts(alice.tenant.id) == (2, 2)


def test_a_batch_is_admitted_whole_or_not_at_all(alice):
    limit(alice, max_queued=3)
    items = [{"code": f"print({i})"} for i in range(4)]
    response = alice.client.post("/api/v1/executions/batch", {"executions": items}, format="json")
    assert_error(response, 429, "queue_quota_exceeded")
    assert Execution.objects.count() == 0
    assert scheduler.counts(alice.tenant.id) == (0, 0)
    response = alice.client.post("/api/v1/executions/batch", {"executions": items[:3]}, format="json")
    assert response.status_code == 202
    assert scheduler.counts(alice.tenant.id)[0] == 3


def test_admission_checks_what_every_way_in_sends(alice):
    tenant = alice.tenant
    limit(alice, allowed_languages="python", max_timeout_seconds=2)
    cases = [
        (submissions.Submission("bash", "echo 1"), "language_not_allowed"),
        (submissions.Submission("cobol", "x"), "unknown_language"),
        (submissions.Submission("python", "  \n"), "empty_code"),
        (submissions.Submission("python", "print(1)\x00"), "nul_character"),
        (submissions.Submission("python", "#" * 70_000), "payload_too_large"),
        (submissions.Submission("python", "print(1)", stdin="x" * 70_000), "payload_too_large"),
        (submissions.Submission("python", "print(1)", timeout_seconds=3), "invalid_limit"),
        (submissions.Submission("python", "print(1)", memory_mb=4096), "invalid_limit"),
    ]
    for submission, code in cases:
        with pytest.raises(submissions.Invalid) as refused:
            submissions.submit(tenant, submission)
        assert refused.value.code == code, submission
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    tenant.refresh_from_db()
    with pytest.raises(submissions.Invalid, match="disabled"):
        submissions.submit(tenant, submissions.Submission("python", "print(1)"))
    assert Execution.objects.count() == 0


def script_file(tmp_path, text: str = "print(1)\n", name: str = "demo.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_cli_refuses_what_the_api_refuses_with_exit_65(alice, tmp_path):
    limit(alice, allowed_languages="python")
    for args, message in (
        ((script_file(tmp_path, "echo 1", "demo.sh"),), "language_not_allowed"),
        ((script_file(tmp_path, "#" * 70_000, "big.py"),), "payload_too_large"),
        ((script_file(tmp_path, "print(1)\x00", "nul.py"),), "nul_character"),
    ):
        with pytest.raises(CommandError, match=message) as refused:
            call_command("execute", *args, "--tenant", "alice", "--no-wait", stdout=StringIO())
        assert refused.value.returncode == 65
    assert Execution.objects.count() == 0


def test_the_cli_tells_a_quota_from_a_platform_fault(alice, tmp_path, monkeypatch):
    limit(alice, max_queued=0)
    with pytest.raises(CommandError, match="queue_quota_exceeded") as refused:
        call_command("execute", script_file(tmp_path), "--tenant", "alice", "--no-wait", stdout=StringIO())
    assert refused.value.returncode == 75
    limit(alice, max_queued=5)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: dead)
    with pytest.raises(CommandError, match="queue_unavailable") as refused:
        call_command("execute", script_file(tmp_path), "--tenant", "alice", "--no-wait", stdout=StringIO())
    assert refused.value.returncode == 69
    assert Execution.objects.count() == 0
