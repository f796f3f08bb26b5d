"""A worker claims its execution's row, waiting a moment for one not committed yet (runs.claim).

The fast lane admits a group's jobs while it commits their rows, so an idle worker may take a job
before its row is there.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from executions import runs
from executions.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_waits_for_a_row_committed_a_moment_later(alice):
    execution = Execution.new(tenant=alice.tenant, language="python", code="print(1)")

    def commit_later():
        try:
            time.sleep(0.1)
            Execution.insert_all([execution])
        finally:
            connection.close()

    writer = threading.Thread(target=commit_later)
    writer.start()
    started = time.monotonic()
    try:
        assert runs.claim(str(execution.id), "w1")
    finally:
        writer.join(10)
    assert time.monotonic() - started >= 0.1
    claimed = Execution.objects.get(id=execution.id)
    assert (claimed.status, claimed.worker_name) == ("running", "w1")


def test_a_row_that_never_comes_is_given_up(alice, monkeypatch):
    monkeypatch.setattr(runs, "ROW_WAIT_SECONDS", 0.2)
    execution = Execution.new(tenant=alice.tenant, language="python", code="print(1)")
    started = time.monotonic()
    assert not runs.claim(str(execution.id), "w1")
    assert 0.2 <= time.monotonic() - started < 2


def test_a_row_no_longer_queued_is_not_waited_for(alice):
    execution = Execution.new(tenant=alice.tenant, language="python", code="print(1)")
    Execution.insert_all([execution])
    assert runs.claim(str(execution.id), "w1")
    started = time.monotonic()
    assert not runs.claim(str(execution.id), "w2")
    assert time.monotonic() - started < 0.5
    assert Execution.objects.get(id=execution.id).worker_name == "w1"
