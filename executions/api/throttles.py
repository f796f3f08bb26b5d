from __future__ import annotations

import logging
import time

import redis
from rest_framework.throttling import BaseThrottle

from executions import scheduler, store
from executions.models import Tenant

log = logging.getLogger(__name__)


class TenantRateThrottle(BaseThrottle):
    """Each tenant's requests per minute (Tenant.limits().rate_per_minute), counted in Redis.

    A fixed one-minute window: one pipelined round trip per request, shared by every web process.
    Beyond the limit DRF answers 429 with Retry-After, the seconds left in the window.
    """

    def allow_request(self, request, view) -> bool:
        tenant = request.user
        if not isinstance(tenant, Tenant):
            return True
        allowed, self.retry_after, _ = count(tenant)
        return allowed

    def wait(self) -> float:
        return self.retry_after


def count(tenant: Tenant, *reads: str) -> tuple[bool, int, list]:
    """Count a request against its tenant's rate, and GET the keys `reads` in the same round trip.

    Returns whether the request is within the rate, the seconds left in the window, and the values
    read (each None when Redis is unreachable: then the request is let through uncounted).
    """
    now = time.time()
    try:
        with store.connection().pipeline(transaction=False) as pipe:
            add_count(pipe, tenant.id, now)
            for read in reads:
                pipe.get(read)
            requests, _, *values = pipe.execute()
    except redis.RedisError:
        # Counting needs Redis; so does every submission, which then gets its own 503.
        log.warning("rate limit not checked: Redis unreachable")
        return True, 0, [None] * len(reads)
    return requests <= tenant.limits().rate_per_minute, scheduler.rate_window_left(now), values


def add_count(pipe, tenant_id: int, now: float) -> None:
    """Count a request in its tenant's window: two replies in `pipe`, the count first."""
    # The same window as admission's, which counts the submissions it takes itself.
    key = scheduler.RATE_KEY.format(tenant_id, int(now // 60))
    pipe.incr(key)
    pipe.expire(key, 120)
