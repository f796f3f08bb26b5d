from __future__ import annotations

import hashlib
import logging
import time

import redis
from redis.exceptions import NoScriptError
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
    key = window_key(tenant_id, now)
    pipe.incr(key)
    pipe.expire(key, WINDOW_TTL_SECONDS)


def window_key(tenant_id: int, now: float) -> str:
    # The same window as admission's, which counts the submissions it takes itself.
    return scheduler.RATE_KEY.format(tenant_id, int(now // 60))


WINDOW_TTL_SECONDS = 120
# add_count() and a GET for each of a group of reads, in one script run: one command to pack and
# one reply to parse per group, where a pipeline had three of each per read (two thirds of a
# fast-lane poll's CPU went to redis-py). KEYS: each read's window key, then the key it reads.
COUNT_AND_GET = """
local replies = {}
for i = 1, #KEYS, 2 do
  replies[#replies + 1] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  replies[#replies + 1] = redis.call('GET', KEYS[i + 1])
end
return replies
"""
COUNT_AND_GET_SHA = hashlib.sha1(COUNT_AND_GET.encode()).hexdigest()


async def count_and_get(client, reads: list[tuple[int, str]], now: float) -> list[tuple[int, bytes | None]]:
    """For each (tenant id, key) of a group of reads: the read's count in its tenant's window and
    the key's value, in one round trip (Redis's errors are the caller's)."""
    keys = [name for tenant_id, key in reads for name in (window_key(tenant_id, now), key)]
    try:
        replies = await client.evalsha(COUNT_AND_GET_SHA, len(keys), *keys, WINDOW_TTL_SECONDS)
    except NoScriptError:
        replies = await client.eval(COUNT_AND_GET, len(keys), *keys, WINDOW_TTL_SECONDS)
    return list(zip(replies[0::2], replies[1::2]))
