"""What a worker does with a finished run's result while the database, and maybe Redis, are down.

Pure logic: the database write and the Redis park are stand-ins, and time does not pass. The real
outage, with real processes, is tests/test_database_outage.py.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError

from executions import runs

pytestmark = pytest.mark.no_database


@pytest.fixture
def outage(monkeypatch):
    """Failing writes and parks, as many as each list says; records the calls and the sleeps."""
    state = {"write_failures": 0, "park_failures": 0, "writes": 0, "parks": 0, "sleeps": []}

    def write_result(execution_id, fields, claimed=None):
        state["writes"] += 1
        if state["writes"] <= state["write_failures"]:
            raise OperationalError("database down")
        return fields["status"]

    def park_result(execution_id, fields):
        state["parks"] += 1
        return state["parks"] > state["park_failures"]

    monkeypatch.setattr(runs, "write_result", write_result)
    monkeypatch.setattr(runs.store, "park_result", park_result)
    monkeypatch.setattr(runs, "close_old_connections", lambda: None)
    monkeypatch.setattr(runs.time, "sleep", state["sleeps"].append)
    return state


def test_a_short_outage_is_waited_out(outage):
    outage["write_failures"] = 3
    assert runs.finish("e1", {"status": "completed"}) == "completed"
    assert (outage["writes"], outage["parks"], outage["sleeps"]) == (4, 0, [0.5, 1, 2])


def test_a_longer_one_parks_the_result_in_redis(outage):
    outage["write_failures"] = 100
    assert runs.finish("e1", {"status": "completed"}) == "completed"
    assert (outage["writes"], outage["parks"], outage["sleeps"]) == (5, 1, [0.5, 1, 2, 4])


def test_with_redis_down_too_the_worker_keeps_trying_both(outage):
    outage["write_failures"], outage["park_failures"] = 100, 2
    assert runs.finish("e1", {"status": "completed"}) == "completed"
    assert (outage["writes"], outage["parks"], outage["sleeps"]) == (7, 3, [0.5, 1, 2, 4, 4, 4])
    # The database may come back first.
    outage.update(writes=0, parks=0, write_failures=6, park_failures=100)
    outage["sleeps"].clear()
    assert runs.finish("e2", {"status": "failed"}) == "failed"
    assert (outage["writes"], outage["parks"], outage["sleeps"]) == (7, 2, [0.5, 1, 2, 4, 4, 4])


def test_after_the_hold_the_worker_gives_up(outage, monkeypatch):
    monkeypatch.setattr(runs, "RESULT_HOLD_SECONDS", -1)
    outage["write_failures"], outage["park_failures"] = 100, 100
    with pytest.raises(OperationalError):
        runs.finish("e1", {"status": "completed"})
    assert (outage["writes"], outage["parks"]) == (5, 1)
