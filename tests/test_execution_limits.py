"""Per-execution timeout_seconds and memory_mb: only at or below the platform's maxima, and applied."""

from __future__ import annotations

import pytest

from executions import limits, runs, scheduler
from executions.sandbox import janitor
from executions.models import Execution
from tests.conftest import assert_nothing_created, run_worker
from tests.helpers import assert_error


def post(persona, **fields):
    return persona.client.post("/api/v1/executions", {"code": "print(1)", **fields}, format="json")


def test_it_stores_and_shows_lower_limits(alice):
    response = post(alice, timeout_seconds=2.5, memory_mb=32)
    assert response.status_code == 202
    execution = Execution.objects.get(id=response.json()["task_id"])
    assert (execution.timeout_seconds, execution.memory_mb) == (2.5, 32)
    body = alice.get(str(execution.id))
    assert (body["timeout_seconds"], body["memory_mb"]) == (2.5, 32)


def test_without_limits_it_stores_the_maxima(alice, settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 4.0
    settings.SANDBOX_MEMORY_MB = 48
    body = alice.get(alice.submit("print(1)"))
    assert (body["timeout_seconds"], body["memory_mb"]) == (4.0, 48)


def test_the_maxima_themselves_are_allowed(alice, settings):
    assert post(alice, timeout_seconds=settings.SANDBOX_TIMEOUT_SECONDS, memory_mb=settings.SANDBOX_MEMORY_MB).status_code == 202


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"timeout_seconds": 5.01}, "timeout_seconds"),
        ({"timeout_seconds": 3600}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"memory_mb": 65}, "memory_mb"),
        ({"memory_mb": 4}, "memory_mb"),
    ],
)
def test_it_refuses_limits_outside_the_bounds(alice, fields, field):
    error = assert_error(post(alice, **fields), 400, "invalid_limit")["error"]
    assert error["message"].startswith(f"{field}: must be between")
    assert "(the maximum)" in error["message"]
    assert field in error["details"]
    assert_nothing_created()


@pytest.mark.parametrize(
    "fields", [{"timeout_seconds": "2"}, {"timeout_seconds": True}, {"memory_mb": 32.5}, {"memory_mb": "32"}]
)
def test_it_refuses_limits_that_are_not_numbers(alice, fields):
    assert_error(post(alice, **fields), 400, "invalid")
    assert_nothing_created()


def test_the_raw_endpoint_takes_them_as_query_parameters(alice):
    response = alice.client.post(
        "/api/v1/execute?language=bash&timeout_seconds=1.5&memory_mb=20", "echo 1", content_type="text/plain"
    )
    assert response.status_code == 202
    execution = Execution.objects.get(id=response.json()["task_id"])
    assert (execution.language, execution.timeout_seconds, execution.memory_mb) == ("bash", 1.5, 20)


@pytest.mark.parametrize("query", ["timeout_seconds=6", "memory_mb=1000", "timeout_seconds=nan", "timeout_seconds=x"])
def test_the_raw_endpoint_refuses_bad_limits(alice, query):
    response = alice.client.post(f"/api/v1/execute?{query}", "print(1)", content_type="text/plain")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_limit", "invalid"}
    assert_nothing_created()


@pytest.mark.no_database
def test_the_check_takes_its_maxima_as_an_argument():
    maxima = limits.Maxima(timeout_seconds=2.0, memory_mb=32)
    assert limits.check_limits(None, None, maxima) == limits.ExecutionLimits(2.0, 32)
    assert limits.check_limits(1.0, 16, maxima) == limits.ExecutionLimits(1.0, 16)
    with pytest.raises(limits.LimitExceeded, match="between 0.1 and 2 seconds"):
        limits.check_limits(3.0, None, maxima)
    with pytest.raises(limits.LimitExceeded) as raised:
        limits.check_limits(None, 33, maxima)
    assert raised.value.field == "memory_mb"


def test_an_idempotent_retry_with_other_limits_is_a_conflict(alice):
    headers = {"HTTP_IDEMPOTENCY_KEY": "k1"}
    first = alice.client.post("/api/v1/executions", {"code": "print(1)", "memory_mb": 32}, format="json", **headers)
    assert first.status_code == 202
    again = alice.client.post("/api/v1/executions", {"code": "print(1)", "memory_mb": 32}, format="json", **headers)
    assert again.json()["task_id"] == first.json()["task_id"]
    other = alice.client.post("/api/v1/executions", {"code": "print(1)", "memory_mb": 48}, format="json", **headers)
    assert_error(other, 409, "idempotency_key_reused")


@pytest.mark.usefixtures("transactional_db")
def test_the_sandbox_runs_with_the_lower_timeout(alice):
    task_id = post(alice, code="while True: pass", timeout_seconds=1).json()["task_id"]
    run_worker()
    looped = alice.get(task_id)
    assert looped["status"] == "timed_out"
    # Killed at its own 1 s deadline, well before the platform's 5 s.
    assert 1000 <= looped["duration_ms"] < 5000


@pytest.mark.usefixtures("transactional_db")
def test_the_sandbox_runs_with_the_lower_memory(alice):
    # 40 MiB fits in the platform's 64 MiB, not in the 24 MiB this run asked for.
    code = "data = bytearray(40 * 1024 * 1024)\nprint('fits')"
    fits = alice.submit(code)
    tight = post(alice, code=code, memory_mb=24).json()["task_id"]
    run_worker()
    assert alice.get(fits)["status"] == "completed"
    assert alice.get(tight)["status"] == "oom_killed"


@pytest.mark.no_database
def test_the_worker_never_raises_a_limit_above_the_platforms(settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 5.0
    settings.SANDBOX_MEMORY_MB = 64
    row = Execution(language="python", timeout_seconds=500.0, memory_mb=4096)
    applied = runs.sandbox_limits(row)
    assert (applied.timeout_seconds, applied.memory_mb) == (5.0, 64)
    legacy = runs.sandbox_limits(Execution(language="python", timeout_seconds=None, memory_mb=None))
    assert (legacy.timeout_seconds, legacy.memory_mb) == (5.0, 64)
    # A language's own maxima and defaults come from the catalog.
    java = runs.sandbox_limits(Execution(language="java", timeout_seconds=None, memory_mb=4096))
    assert (java.timeout_seconds, java.memory_mb, java.pids) == (5.0, 1024, 128)
    assert runs.sandbox_limits(Execution(language="java")).memory_mb == 256


@pytest.mark.no_database
def test_the_job_and_the_janitor_allow_for_a_compile_stage_and_its_run(settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 5.0
    # Rust: a 20 s compile stage, then a run of up to 5 s.
    assert limits.longest_execution_seconds() == 25.0
    # A judged execution may take longer: a compile stage, then JUDGE_MAX_SECONDS of tests.
    settings.JUDGE_MAX_SECONDS = 240.0
    assert limits.longest_judging_seconds() == 260.0
    assert scheduler.job_timeout() == 260 + scheduler.JOB_TIMEOUT_MARGIN_SECONDS
    # A test's sandbox lives at most 5 s / 0.5 of a core + 1 s: less than a compile stage and its run.
    assert janitor.max_age_seconds() == 25.0 + janitor.GRACE_SECONDS
