"""The queue as the platform writes it: admission, fair scheduling and rq's job format, in Redis scripts.

rq's workers take jobs from one shared list (`rq:queue:sandbox`). A tenant's jobs reach that list
only while fewer than its max_running are there or running; the rest wait in the tenant's own
backlog, oldest first, and move in one by one as its earlier jobs end (release()). So another
tenant's new job is never behind more than max_running of this tenant's, whatever its backlog.

Admission is one script, one round trip: the request is counted in its tenant's rate window, the
tenant's max_queued and the platform's QUEUE_MAX_DEPTH are checked, and the jobs are written,
put in the backlog and dispatched, all at once or not at all.

The job hash is rq's own format, made by rq's public API (Queue.create_job, Job.to_dict) and
written by the script; tests/test_scheduler.py checks that rq's own worker runs what it writes.
Keys per tenant: `inflight` (a sorted set of its jobs queued or running, for max_queued),
`backlog` (a list of those waiting for their turn), `dispatched` (a sorted set of those in the
shared list or running, for max_running) and `max-running` (its cap, for release()). The platform
keeps `rce:backlogged`, the number of jobs in all backlogs, so that the depth is O(1).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import django_rq
from django.conf import settings
from rq.job import Job
from rq.utils import now as rq_now

from executions import store

# How long a job may sit in rq before rq itself gives up on it; the sandbox's own deadline is
# much shorter, so this only bounds a worker that hangs on the engine or the database.
JOB_TIMEOUT_MARGIN_SECONDS = 120
JOB_FUNCTION = "executions.runs.run_execution"
RATE_KEY = "rce:rate:{}:{}"
TENANT_KEY = "rce:tenant:{}:{}"
BACKLOGGED_KEY = "rce:backlogged"

ADMITTED, RATE_LIMITED, QUOTA_EXCEEDED, OVERLOADED = 0, 1, 2, 3

# Moves the tenant's oldest waiting jobs to the shared list while it has a free slot.
DISPATCH = """
local function dispatch(backlog, dispatched, cap_key, shared, backlogged, now)
    local cap = tonumber(redis.call('GET', cap_key) or '1')
    local moved = 0
    while redis.call('ZCARD', dispatched) < cap do
        local id = redis.call('LPOP', backlog)
        if not id then break end
        redis.call('ZADD', dispatched, now, id)
        redis.call('RPUSH', shared, id)
        moved = moved + 1
    end
    if moved > 0 then redis.call('DECRBY', backlogged, moved) end
end
"""

# Both scripts take the tenant's keys and the platform's first (tenant_keys()): inflight, backlog,
# dispatched, max-running, the shared list, backlogged.

# KEYS: those six, then the rate window and rq's set of queues. ARGV: the rate limit (0: not
# counted), max queued (-1: not checked), max depth, max running (0: keep the tenant's), now, the
# job count, then per job: its id, its hash key, its field count, its fields and values.
ADMIT = DISPATCH + """
local rate_limit = tonumber(ARGV[1])
if rate_limit > 0 then
    local count = redis.call('INCR', KEYS[7])
    if count == 1 then redis.call('EXPIRE', KEYS[7], 120) end
    if count > rate_limit then return {1, count} end
end
local count = tonumber(ARGV[6])
local max_queued = tonumber(ARGV[2])
if max_queued >= 0 then
    local mine = redis.call('ZCARD', KEYS[1])
    if mine + count > max_queued then return {2, mine} end
    local waiting = redis.call('LLEN', KEYS[5]) + tonumber(redis.call('GET', KEYS[6]) or '0')
    if waiting + count > tonumber(ARGV[3]) then return {3, waiting} end
end
local now = ARGV[5]
local i = 7
for _ = 1, count do
    local id, key, fields = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * fields))
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('RPUSH', KEYS[2], id)
    -- Per job: a write that fails half-way through a batch leaves the jobs before it counted.
    redis.call('INCR', KEYS[6])
    i = i + 3 + 2 * fields
end
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[4], ARGV[4]) end
redis.call('SADD', KEYS[8], KEYS[5])
dispatch(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], now)
return {0, 0}
"""

# KEYS: those six, then the job's hash. ARGV: the job id, now, withdraw (1: the job has not run:
# take it out of the lists and delete its hash).
RELEASE = DISPATCH + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[3] == '1' then
    local waiting = redis.call('LREM', KEYS[2], 0, ARGV[1])
    if waiting > 0 then redis.call('DECRBY', KEYS[6], waiting) end
    redis.call('LREM', KEYS[5], 0, ARGV[1])
    redis.call('DEL', KEYS[7])
end
dispatch(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Quotas:
    """What admission checks; None for a job that was admitted before (a requeue)."""

    rate_per_minute: int
    max_queued: int
    max_running: int


@dataclass(frozen=True)
class Refusal:
    reason: int
    # The tenant's count (QUOTA_EXCEEDED), the platform's waiting jobs (OVERLOADED) or the
    # seconds left in the rate window (RATE_LIMITED).
    value: int


@functools.cache
def queue():
    # "auto": a job this module writes is in Redis when the call returns, whatever transaction
    # the caller is in; the caller commits its row first.
    return django_rq.get_queue(settings.SANDBOX_QUEUE, connection=store.connection(), commit_mode="auto")


@functools.cache
def script(source: str):
    return store.connection().register_script(source)


def run(source: str, keys: list, args: list):
    # On the connection of the moment, which tests replace; the script object only caches its sha.
    return script(source)(keys=keys, args=args, client=store.connection())


def tenant_key(tenant_id: int, name: str) -> str:
    return TENANT_KEY.format(tenant_id, name)


def tenant_keys(tenant_id: int) -> list[str]:
    """The keys both scripts take first: the tenant's four, the shared list and the backlog count."""
    names = ("inflight", "backlog", "dispatched", "max-running")
    return [*(tenant_key(tenant_id, name) for name in names), queue().key, BACKLOGGED_KEY]


def job_id(execution_id, attempts: int) -> str:
    # One job id per attempt: a re-queued execution can never collide with its lost job.
    return f"execution-{execution_id}-{attempts}"


def job_timeout() -> int:
    return int(settings.SANDBOX_TIMEOUT_SECONDS) + JOB_TIMEOUT_MARGIN_SECONDS


def job_args(execution_id, tenant_id: int, attempts: int) -> list:
    """One job's id, hash key and fields, as ADMIT takes them."""
    job = queue().create_job(
        JOB_FUNCTION,
        args=(str(execution_id), tenant_id),
        job_id=job_id(execution_id, attempts),
        timeout=job_timeout(),
        result_ttl=600,
        failure_ttl=86400,
    )
    job.enqueued_at = rq_now()
    fields = job.to_dict()
    return [job.id, job.key, len(fields), *(item for pair in fields.items() for item in pair)]


def admit(tenant_id: int, quotas: Quotas | None, executions: list[tuple[str, int]]) -> Refusal | None:
    """Count the request and queue the jobs of (execution id, attempts), or refuse them all.

    Raises redis.RedisError if Redis cannot be reached: then nothing was queued.
    """
    now = time.time()
    keys = [*tenant_keys(tenant_id), RATE_KEY.format(tenant_id, int(now // 60)), queue().redis_queues_keys]
    args = [
        quotas.rate_per_minute if quotas else 0,
        quotas.max_queued if quotas else -1,
        settings.QUEUE_MAX_DEPTH,
        quotas.max_running if quotas else 0,
        now,
        len(executions),
    ]
    for execution_id, attempts in executions:
        args += job_args(execution_id, tenant_id, attempts)
    reason, value = run(ADMIT, keys, args)
    if reason == ADMITTED:
        return None
    if reason == RATE_LIMITED:
        return Refusal(reason, 60 - int(now % 60))
    return Refusal(reason, int(value))


def release(tenant_id: int, job: str, withdraw: bool = False) -> None:
    """The job ended (or, with withdraw, will never run): free its place and dispatch the next."""
    run(RELEASE, [*tenant_keys(tenant_id), Job.key_for(job)], [job, time.time(), int(withdraw)])


def counts(tenant_id: int) -> tuple[int, int]:
    """(the tenant's executions queued or running, every execution waiting for a worker)."""
    with store.connection().pipeline(transaction=False) as pipe:
        pipe.zcard(tenant_key(tenant_id, "inflight"))
        pipe.llen(queue().key)
        pipe.get(BACKLOGGED_KEY)
        mine, shared, backlogged = pipe.execute()
    return int(mine), int(shared) + int(backlogged or 0)


def depth() -> int:
    """Executions waiting for a worker: in the shared list, or in a tenant's backlog."""
    return counts(0)[1]
