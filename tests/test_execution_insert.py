"""Execution.insert(): the row save(force_insert=True) would write, by the statement compiled once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone
from django.utils.safestring import mark_safe

from executions.models import Execution

FIELDS = dict(
    language="bash",
    code="echo 'héllo' \\\n\t😀",
    stdin="ä\n",
    idempotency_key="key-1",
    timeout_seconds=2.5,
    memory_mb=48,
    status="completed",
    stdout="out",
    stdout_truncated=True,
    exit_code=-9,
    duration_ms=1234,
    created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
    started_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc),
    attempts=2,
)


def row(execution_id) -> dict:
    values = Execution.objects.filter(id=execution_id).values().get()
    values.pop("id")
    return values


def test_it_writes_what_save_writes(alice):
    inserted = Execution(tenant=alice.tenant, **FIELDS)
    inserted.insert()
    saved = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "key-2"})
    saved.save(force_insert=True)
    assert row(inserted.id) == {**row(saved.id), "idempotency_key": "key-1"}
    assert row(inserted.id)["created_at"] == FIELDS["created_at"]
    assert not inserted._state.adding and inserted._state.db == "default"


def test_it_writes_the_defaults(alice):
    inserted = Execution(tenant=alice.tenant, language="python", code="print(1)")
    inserted.insert()
    saved = Execution(tenant=alice.tenant, language="python", code="print(1)")
    saved.save(force_insert=True)
    first, second = row(inserted.id), row(saved.id)
    assert first.pop("created_at") <= second.pop("created_at")
    assert first == second
    assert Execution.objects.get(id=inserted.id).status == "queued"


def test_a_duplicate_is_djangos_integrity_error(alice):
    Execution(tenant=alice.tenant, **FIELDS).insert()
    with pytest.raises(IntegrityError), transaction.atomic():
        Execution(tenant=alice.tenant, **FIELDS).insert()
    assert Execution.objects.filter(idempotency_key="key-1").count() == 1


def test_its_parameters_are_each_fields_as_save_prepares_them(alice):
    from django.db import connection

    for execution in (
        Execution(tenant=alice.tenant, language="python", code="print(1)"),
        Execution(tenant=alice.tenant, **FIELDS),
        # Values equal to a default but not the default itself, and a default's type changed.
        Execution(tenant=alice.tenant, language="python", code="x", stdout="".join([]), exit_code=0, error=""),
        # Types next to those saved as they are: a str subclass, an int for a float, a UUID's text.
        Execution(tenant=alice.tenant, id=str(uuid.uuid4()), language="python", code=mark_safe("x"), timeout_seconds=3),
    ):
        generic = [field.get_db_prep_save(field.pre_save(execution, True), connection) for field in Execution._meta.local_concrete_fields]
        # psycopg's Jsonb wrappers compare by identity: their objects are compared.
        assert [getattr(value, "obj", value) for value in execution.insert_params(connection)] == [
            getattr(value, "obj", value) for value in generic
        ]


def test_new_makes_what_the_constructor_makes(alice, django_assert_num_queries):
    judged = dict(files=[{"name": "a.py", "content": "x"}], args=["-v"], tests=[{"stdin": "1"}], comparison="tokens")
    for fields in (
        dict(tenant=alice.tenant, language="python", code="print(1)"),
        dict(tenant=alice.tenant, batch=None, **FIELDS, **judged),
    ):
        made, constructed = Execution.new(**fields), Execution(**fields)
        assert made.id != constructed.id and made.id.version == 4
        # Each is made "now", unless told when.
        assert abs(made.created_at - constructed.created_at).total_seconds() < 1
        mine = {name: value for name, value in vars(made).items() if name not in ("id", "_state", "created_at")}
        theirs = {name: value for name, value in vars(constructed).items() if name not in ("id", "_state", "created_at")}
        assert mine == theirs
        assert {name: type(value) for name, value in mine.items()} == {name: type(value) for name, value in theirs.items()}
        assert (made._state.adding, made._state.db) == (constructed._state.adding, constructed._state.db)
        with django_assert_num_queries(0):
            assert made.tenant is alice.tenant


def test_new_executions_share_nothing_a_caller_could_change(alice):
    first, second = Execution.new(tenant=alice.tenant), Execution.new(tenant=alice.tenant)
    first.files.append({"name": "x"})
    first.test_results.append({})
    assert (second.files, second.test_results, Execution.new().files) == ([], [], [])
    assert first.id != second.id


def test_a_group_of_submissions_alike_but_for_their_code_makes_what_new_execution_makes(alice, django_assert_num_queries):
    # submissions.new_executions(): copies of a prototype (Execution.like()) for those with no
    # files, arguments or tests; each as new_execution() and insert_params() would make it.
    from django.db import connection

    from executions import submissions

    alice.tenant.callback_url = "https://example.com/default"
    limits = alice.tenant.limits()
    plain = [
        submissions.Submission("python", "print(1)"),
        submissions.Submission("python", "print(2)"),
        submissions.Submission("python", "print('é')", timeout_seconds=2),
        submissions.Submission("python", "print(3)", timeout_seconds=2.0),
        submissions.Submission("bash", "read x; echo $x", stdin="ä\n", memory_mb=64),
        submissions.Submission("python", "print(input())", stdin="5"),
        submissions.Submission("python", "print(4)", callback_url="https://example.com/mine"),
    ]
    other = [
        submissions.Submission("python", "import a", files=({"name": "a.py", "content": "x = 1"},)),
        submissions.Submission("python", "print(5)", args=("-v",)),
        submissions.Submission("python", "print(6)", **submissions.one_test("1", (), "1")),
    ]

    def checked(submission):
        # check() would look the callback's host up: the run's limits are the same without it.
        return submissions.Checked(
            alice.tenant, submission, limits, submissions.check(alice.tenant, replace(submission, callback_url=""), limits)
        )

    group = [checked(submission) for submission in plain + other + plain]
    with django_assert_num_queries(0):
        executions, rows = submissions.new_executions(group)
    assert len({execution.id for execution in executions}) == len(group)
    for item, execution, params in zip(group, executions, rows):
        expected = submissions.new_execution(item.tenant, item.submission, item.limits)
        expected.id, expected.created_at = execution.id, execution.created_at
        mine = {name: value for name, value in vars(execution).items() if name != "_state"}
        theirs = {name: value for name, value in vars(expected).items() if name != "_state"}
        assert mine == theirs
        assert {name: type(value) for name, value in mine.items()} == {name: type(value) for name, value in theirs.items()}
        assert (execution._state.adding, execution._state.db) == (expected._state.adding, expected._state.db)
        with django_assert_num_queries(0):
            assert execution.tenant is alice.tenant
        # psycopg's Jsonb wrappers compare by identity: their objects are compared.
        assert [getattr(value, "obj", value) for value in params] == [
            getattr(value, "obj", value) for value in expected.insert_params(connection)
        ]
        assert 0 <= (django_timezone.now() - execution.created_at).total_seconds() < 5
    # The copies share no list a caller could change, with each other or with their prototype.
    executions[0].files.append({"name": "x"})
    executions[0].test_results.append({})
    assert [(execution.files, execution.test_results) for execution in executions[1:len(plain)]] == [([], [])] * (len(plain) - 1)
    assert submissions.new_executions(group[:1])[0][0].files == []


@pytest.mark.django_db(transaction=True)
def test_a_group_of_copies_writes_what_save_writes(alice):
    from executions import submissions

    group = [submissions.checked(alice.tenant, submissions.Submission("python", f"print({n})")) for n in range(3)]
    executions, rows = submissions.new_executions(group)
    Execution.insert_all(executions, rows)
    for n, inserted in enumerate(executions):
        saved = submissions.new_execution(alice.tenant, group[n].submission, group[n].limits)
        saved.save(force_insert=True)
        assert {**row(inserted.id), "created_at": None} == {**row(saved.id), "created_at": None}
        assert row(inserted.id)["created_at"] == inserted.created_at
        assert row(inserted.id)["code"] == f"print({n})"


def test_new_refuses_what_the_constructor_refuses():
    with pytest.raises(TypeError, match="colour"):
        Execution.new(colour="red")


# insert_all(), as the fast lane's group commit calls it: outside any transaction of the caller's
# (on SQLite, then, in a transaction of sqlite3's own: executions.models.insert_sqlite).


@pytest.mark.django_db(transaction=True)
def test_a_group_writes_what_save_writes(alice):
    group = [Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": f"group-{n}"}) for n in range(3)]
    Execution.insert_all(group)
    saved = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "saved"})
    saved.save(force_insert=True)
    for n, inserted in enumerate(group):
        assert row(inserted.id) == {**row(saved.id), "idempotency_key": f"group-{n}"}
        assert not inserted._state.adding and inserted._state.db == "default"


@pytest.mark.django_db(transaction=True)
def test_a_group_writes_any_value_its_fields_take_as_save_writes_it(alice):
    # PostgreSQL's rows go by COPY in the binary format: each value by its column's type.
    odd = dict(
        language="python", code=mark_safe("print('x')\x7f"), stdin="", timeout_seconds=3, memory_mb=64,
        files=[{"name": "a.py", "content": "é\n", "encoding": "utf-8"}], args=["-v", "😀"],
        tests=[{"stdin": "1", "args": [], "expected_output": "1", "name": "t"}], abs_tolerance=0.001,
        comparison="numbers", exit_code=-(2**31), duration_ms=2**31 - 1, attempts=32767, idempotency_key="k" * 255,
    )
    inserted = Execution(tenant=alice.tenant, **odd)
    Execution.insert_all([inserted])
    saved = Execution(tenant=alice.tenant, **{**odd, "idempotency_key": "s" * 255})
    saved.save(force_insert=True)
    assert {**row(inserted.id), "idempotency_key": "", "created_at": None} == {**row(saved.id), "idempotency_key": "", "created_at": None}


@pytest.mark.django_db(transaction=True)
def test_a_group_the_database_refuses_leaves_no_row_and_the_connection_usable(alice):
    first = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "first"})
    second = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "second"})
    duplicate = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "first"})
    with pytest.raises(IntegrityError):
        Execution.insert_all([second, duplicate, first])
    with pytest.raises(IntegrityError):
        Execution.insert_all([first, duplicate])
    assert not Execution.objects.filter(idempotency_key__in=["first", "second"]).exists()
    Execution.insert_all([first, second])
    assert Execution.objects.filter(idempotency_key__in=["first", "second"]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_group_refused_within_a_transaction_leaves_that_transaction_usable(alice):
    first = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "first"})
    duplicate = Execution(tenant=alice.tenant, **{**FIELDS, "idempotency_key": "first"})
    with transaction.atomic():
        Execution.insert_all([first])
        with pytest.raises(IntegrityError):
            Execution.insert_all([duplicate])
        assert Execution.objects.filter(idempotency_key="first").count() == 1
    assert Execution.objects.filter(idempotency_key="first").count() == 1


@pytest.mark.django_db(transaction=True)
def test_remove_unqueued_deletes_the_queued_rows_it_names_and_nothing_else(alice):
    group = [Execution.new(tenant=alice.tenant, language="python", code=f"print({n})") for n in range(4)]
    Execution.insert_all(group)
    other = Execution.new(tenant=alice.tenant, language="python", code="print('other')")
    Execution.insert_all([other])
    # One of them was taken by a worker meanwhile: it is not removed.
    Execution.objects.filter(id=group[1].id).update(status="running")

    assert Execution.remove_unqueued([execution.id for execution in group] + [uuid.uuid4()]) == 3
    assert set(Execution.objects.values_list("id", flat=True)) == {group[1].id, other.id}
    assert Execution.remove_unqueued([]) == 0
