"""Execution.insert(): the row save(force_insert=True) would write, by the statement compiled once."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import IntegrityError, transaction

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
    ):
        generic = [field.get_db_prep_save(field.pre_save(execution, True), connection) for field in Execution._meta.local_concrete_fields]
        # psycopg's Jsonb wrappers compare by identity: their objects are compared.
        assert [getattr(value, "obj", value) for value in execution.insert_params(connection)] == [
            getattr(value, "obj", value) for value in generic
        ]
