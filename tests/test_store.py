"""executions.store: the queued state's JSON made from a template is the one to_dict() makes."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.conf import settings

from executions import store, submissions
from executions.models import Execution, iso_time


def made_as_any_other(execution: Execution) -> tuple[str, str, int]:
    return store.state_entry(str(execution.id), execution.tenant_id, execution.to_dict(), settings.RESULT_CACHE_TTL_SECONDS)


SUBMISSIONS = [
    submissions.Submission("python", "print(1)"),
    submissions.Submission("bash", "echo 1", timeout_seconds=2.5, memory_mb=64),
    submissions.Submission("python", "print(1)", timeout_seconds=3),
    submissions.Submission("python", "print(1)", timeout_seconds=3.0),
    submissions.Submission("python", "print(input())", **submissions.one_test("1", (), "1\n")),
]


@pytest.mark.parametrize("submission", SUBMISSIONS)
def test_a_new_executions_state_is_the_one_to_dict_makes(alice, submission):
    checked = submissions.checked(alice.tenant, submission)
    execution = submissions.new_execution(alice.tenant, submission, checked.limits)
    assert store.queued_state(execution) == made_as_any_other(execution)
    # Again, from the template made the first time.
    again = submissions.new_execution(alice.tenant, submission, checked.limits)
    assert store.queued_state(again) == made_as_any_other(again)
    assert store.queued_state(again)[1] != store.queued_state(execution)[1]


def test_limits_of_another_type_get_their_own_template(alice):
    whole = Execution.new(tenant=alice.tenant, language="python", timeout_seconds=3, memory_mb=128)
    decimal = Execution.new(tenant=alice.tenant, language="python", timeout_seconds=3.0, memory_mb=128)
    assert '"timeout_seconds":3,' in store.queued_state(whole)[1].replace(" ", "")
    assert '"timeout_seconds":3.0,' in store.queued_state(decimal)[1].replace(" ", "")


@pytest.mark.parametrize(
    "fields",
    [
        {"stdout": "left from an attempt"},
        {"error": "engine lost", "exit_code": 0},
        {"stdout_truncated": 0},
        {"test_results": [{"name": "t"}]},
        {"created_at": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))},
        {"status": "queued"},
    ],
)
def test_any_other_execution_is_made_as_state_entry_makes_it(alice, fields):
    execution = Execution.new(tenant=alice.tenant, language="python", timeout_seconds=5.0, memory_mb=128, **fields)
    assert store.queued_state(execution) == made_as_any_other(execution)


def test_a_requeued_row_read_back_is_made_alike(alice):
    execution = Execution.objects.create(tenant=alice.tenant, language="python", code="print(1)", stdout="partial")
    execution = Execution.objects.get(id=execution.id)
    assert store.queued_state(execution) == made_as_any_other(execution)


@pytest.mark.no_database
@pytest.mark.parametrize(
    "value, text",
    [
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc), "2026-01-02T03:04:05.000006Z"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), "2026-01-02T03:04:05Z"),
        (datetime.datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2))), "2026-01-02T03:04:05.000006Z"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=zoneinfo.ZoneInfo("UTC")), "2026-01-02T03:04:05.000006Z"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 6), "2026-01-02T03:04:05.000006"),
        (None, None),
    ],
)
def test_times_are_written_as_drf_writes_them(value, text):
    assert iso_time(value) == text
