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
        now = time.time()
        window = int(now // 60)
        self.retry_after = 60 - int(now % 60)
        # The same window as admission's, which counts the submissions it takes itself.
        key = scheduler.RATE_KEY.format(tenant.id, window)
        try:
            with store.connection().pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                count, _ = pipe.execute()
        except redis.RedisError:
            # Counting needs Redis; so does every submission, which then gets its own 503.
            log.warning("rate limit not checked: Redis unreachable")
            return True
        return count <= tenant.limits().rate_per_minute

    def wait(self) -> float:
        return self.retry_after
