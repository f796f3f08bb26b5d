"""?wait=N: answer a submission with its finished execution if it ends within N seconds.

A waiting request holds a server thread but no CPU: it blocks on a Redis subscription to the
channel the worker publishes on when the result is cached, not on database polls. Each process
lets at most settings.WAIT_SLOTS requests wait at once, so its other threads stay free for quick
requests; a request that finds no free slot gets its 202 at once, as without ?wait.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from django.db import connection

from executions import store
from executions.models import Execution

log = logging.getLogger(__name__)

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def slots() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(settings.WAIT_SLOTS)
        return _slots


def finished(execution_id: str, tenant_id: int) -> dict | None:
    """The API representation of the execution if it has finished, from the cache or the database."""
    cached = store.cached_result(execution_id, tenant_id)
    return cached if cached is not None else finished_row(execution_id, tenant_id)


def finished_row(execution_id: str, tenant_id: int) -> dict | None:
    """The API representation of the execution if its row says it has finished."""
    execution = Execution.objects.filter(id=execution_id, tenant_id=tenant_id).first()
    if execution is not None and execution.is_terminal:
        return execution.to_dict()
    return None


def wait_for(execution: Execution, seconds: float) -> dict | None:
    """The finished execution if it ends within `seconds`, else None (also when no slot is free)."""
    if not slots().acquire(blocking=False):
        return None
    try:
        return subscribe_and_wait(str(execution.id), execution.tenant_id, seconds)
    except redis.RedisError:
        # The execution is accepted whatever happens to the wait: answer 202, the client polls.
        log.warning("execution %s: waiting failed, answering 202", execution.id, exc_info=True)
        return None
    finally:
        slots().release()


def release_database() -> None:
    # A waiting request must not pin a database connection for seconds: the database's connection
    # limit would then cap the waits, not the slots. The next query reconnects.
    if not connection.in_atomic_block:
        connection.close()


def subscribe_and_wait(execution_id: str, tenant_id: int, seconds: float) -> dict | None:
    deadline = time.monotonic() + seconds
    pubsub = store.connection().pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(store.FINISHED_CHANNEL.format(execution_id))
        # Subscribed first, then looked: a finish between the two cannot be missed.
        result = finished(execution_id, tenant_id)
        release_database()
        while result is None and (remaining := deadline - time.monotonic()) > 0:
            # Short polls of the socket keep each read well inside the client's socket timeout.
            if pubsub.get_message(timeout=min(remaining, 1.0)) is not None:
                result = finished(execution_id, tenant_id)
        # One last look, for a result whose announcement was lost (its cache write failed).
        return result or finished(execution_id, tenant_id)
    finally:
        pubsub.close()
