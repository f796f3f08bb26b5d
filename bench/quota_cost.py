"""What the tenant quotas add to each submission, in Redis time.

    REDIS_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/quota_cost.py [--n 2000] [--tenants 50]

Times, per call: the rate-limit count (TenantRateThrottle's pipelined INCR and EXPIRE), both queue
counts (jobs.queue_counts, one Lua script, with --tenants tenants' backlogs to sum), and rq's
enqueue with and without the per-tenant RateLimit. No database: the jobs are never run. Empties
its Redis database (never 0). A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from rq import RateLimit  # noqa: E402

from executions import jobs  # noqa: E402
from executions.api.throttles import RATE_KEY  # noqa: E402


def per_call_us(function, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        function(i)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=50)
    args = parser.parse_args()
    if settings.REDIS_URL.split("?")[0].rstrip("/").rpartition("/")[2] in ("", "0"):
        raise SystemExit("set REDIS_URL to a scratch database (not 0): this empties it")
    queue = jobs.queue()
    connection = queue.connection
    connection.flushdb()

    def rate(i: int) -> None:
        with connection.pipeline(transaction=False) as pipe:
            pipe.incr(RATE_KEY.format(1, 0))
            pipe.expire(RATE_KEY.format(1, 0), 120)
            pipe.execute()

    def enqueue(limit):
        def call(i: int) -> None:
            queue.enqueue_call(
                "executions.jobs.run_execution", args=("x",), job_id=f"bench-{id(limit)}-{i}", timeout=125,
                result_ttl=600, failure_ttl=86400, rate_limit=limit(i),
            )
        return call

    try:
        plain = per_call_us(enqueue(lambda i: None), args.n)
        limited = per_call_us(enqueue(lambda i: RateLimit(jobs.slot_key(i % args.tenants), 2)), args.n)
        throttle = per_call_us(rate, args.n)
        counts = per_call_us(lambda i: jobs.queue_counts(1), args.n)
    finally:
        connection.flushdb()
    print(f"| per submission ({args.n} calls, {args.tenants} tenants with backlogs) | µs |")
    print("| --- | --- |")
    print(f"| rate-limit count (pipelined INCR + EXPIRE) | {throttle:.0f} |")
    print(f"| queue counts (one Lua script) | {counts:.0f} |")
    print(f"| rq enqueue, no RateLimit | {plain:.0f} |")
    print(f"| rq enqueue with the tenant's RateLimit | {limited:.0f} |")


if __name__ == "__main__":
    main()
