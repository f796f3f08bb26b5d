"""The queue as the platform writes it: admission, fair scheduling and rq's job format, in Redis scripts.

rq's workers take jobs from two lists: `rq:queue:sandbox-express` first, then `rq:queue:sandbox`.
A tenant's submissions wait in its own backlog (oldest first) and the dispatcher moves them into
those lists one at a time, late, when a worker is about to want one:

- a tenant with nothing in the lists or running, while other tenants have, gets its oldest job into
  the express list at once; so does one with less than half as many as the busiest other tenant
  that has a backlog. Every worker takes express jobs first, and SANDBOX_RESERVE_SLOTS workers a
  host take only those: another tenant's first runs start at once, whatever one tenant keeps
  running;
- the shared list holds at most READY jobs; each next one comes from the tenant with the fewest
  jobs in the lists or running (and, among those, the one served longest ago), within its own
  max_running if it has one (0: none). A tenant alone fills every slot; two tenants share them.
  A judged job counts as the sandboxes it runs at once, min(its tests, JUDGE_PARALLEL_TESTS),
  both here and against max_running (its next job's too: a tenant running nothing may start any).

Dispatching happens on each admission, each job's start (started()) and each job's end (release()).

Admission is one script, one round trip: the request is counted in its tenant's rate window, the
tenant's max_queued and the platform's QUEUE_MAX_DEPTH are checked, and the jobs are written, put
in the backlog and dispatched, all at once or not at all. One run of the script takes a group of
requests (the web's fast lane writes them in groups), each admitted or refused on its own.

The job hash is rq's own format, made by rq's public API (Queue.create_job, Job.to_dict) and
written by the script; tests/test_scheduler.py checks that rq's own worker runs what it writes.
Keys per tenant, `rce:tenant:<id>:...`: `inflight` (a sorted set of its jobs queued or running,
for max_queued), `backlog` (a list of those waiting for dispatch), `dispatched` (a sorted set of
those in the lists or running), `running-weights` and `running-extra` (each dispatched judged
job's sandboxes beyond its first, and their sum) and `max-running` (its cap). Platform-wide: `rce:backlogged` (jobs in
all backlogs, so that the depth is O(1)), `rce:active` (tenants with a backlog, scored by how many
they have dispatched, plus a fraction of when they were last served), `rce:served` (each tenant's
last dispatch number), `rce:dispatches` (the counter of those numbers) and `rce:dispatched-total`
(jobs in the lists or running, all tenants). The scripts build the
per-tenant keys from the tenant id: one Redis, not a cluster.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import django_rq
import redis
from django.conf import settings
from rq.job import Job
from rq.utils import utcformat
from rq.utils import now as rq_now

from executions import limits, ownjobs, store

log = logging.getLogger(__name__)

# How long a job may sit in rq before rq itself gives up on it; the sandbox's own deadline is
# much shorter, so this only bounds a worker that hangs on the engine or the database.
JOB_TIMEOUT_MARGIN_SECONDS = 120
JOB_FUNCTION = "executions.runs.run_execution"
# A tenant's count of requests in a minute (tenant id, minute since the epoch).
RATE_KEY = "rce:rate:{}:{}"
TENANT_KEY = "rce:tenant:{}:{}"
BACKLOGGED_KEY = "rce:backlogged"
ACTIVE_KEY = "rce:active"
SERVED_KEY = "rce:served"
DISPATCHES_KEY = "rce:dispatches"
TOTAL_KEY = "rce:dispatched-total"
# Jobs the shared list may hold: few, so that the order is decided when a worker is about to want
# one, not when the job arrived. Two keep a worker that finishes from waiting on a dispatch.
READY = 2

# UNWRITTEN: a job of the request could not be written (a key in the way): none of its jobs was.
ADMITTED, RATE_LIMITED, QUOTA_EXCEEDED, OVERLOADED, UNWRITTEN = 0, 1, 2, 3, 4

# The dispatcher, shared by the scripts. G holds the platform's keys: shared, express, backlogged,
# active, served, dispatches, dispatched-total (KEYS in that order, after each script's own).
DISPATCH = """
local G = {}
local function tkey(tenant, name) return 'rce:tenant:' .. tenant .. ':' .. name end
-- The sandboxes a tenant's dispatched jobs run at once: a judged job runs up to G.parallel.
local function running(tenant)
    return redis.call('ZCARD', tkey(tenant, 'dispatched')) + tonumber(redis.call('GET', tkey(tenant, 'running-extra')) or '0')
end
-- A job's sandboxes at once beyond its first: its weight's, within G.parallel.
local function running_extra(tenant, id)
    return math.min(tonumber(redis.call('HGET', tkey(tenant, 'weights'), id) or '0'), G.parallel - 1)
end
local function score(tenant)
    local served = tonumber(redis.call('HGET', G.served, tenant) or '0')
    return running(tenant) + served / 1e12
end
local function rescore(tenant)
    if redis.call('LLEN', tkey(tenant, 'backlog')) == 0 then
        redis.call('ZREM', G.active, tenant)
    else
        redis.call('ZADD', G.active, score(tenant), tenant)
    end
end
-- Express: the tenant has nothing dispatched while others have, or less than half of what the
-- busiest other tenant with a backlog has: its jobs go ahead of that tenant's.
local function express(tenant)
    local mine = running(tenant)
    if mine == 0 then return tonumber(redis.call('GET', G.total) or '0') > 0 end
    local top = redis.call('ZREVRANGE', G.active, 0, 1, 'WITHSCORES')
    for i = 1, #top, 2 do
        if top[i] ~= tenant then return mine * 2 < math.floor(tonumber(top[i + 1])) end
    end
    return false
end
local function dispatch_one(tenant, now)
    local id = redis.call('LPOP', tkey(tenant, 'backlog'))
    if not id then
        redis.call('ZREM', G.active, tenant)
        return
    end
    redis.call('DECR', G.backlogged)
    redis.call('RPUSH', express(tenant) and G.express or G.shared, id)
    redis.call('ZADD', tkey(tenant, 'dispatched'), now, id)
    local extra = running_extra(tenant, id)
    if extra > 0 then
        redis.call('HSET', tkey(tenant, 'running-weights'), id, extra)
        redis.call('INCRBY', tkey(tenant, 'running-extra'), extra)
    end
    redis.call('INCR', G.total)
    redis.call('HSET', G.served, tenant, redis.call('INCR', G.dispatches))
    rescore(tenant)
end
-- Within max_running, counting the sandboxes of its next job too; a tenant running nothing may
-- start any job, or a judged job heavier than the cap would never run.
local function eligible(tenant)
    local cap = tonumber(redis.call('GET', tkey(tenant, 'max-running')) or '0')
    if cap == 0 then return true end
    local mine = running(tenant)
    if mine == 0 then return true end
    local oldest = redis.call('LINDEX', tkey(tenant, 'backlog'), 0)
    return mine + 1 + (oldest and running_extra(tenant, oldest) or 0) <= cap
end
local function dispatch(now, ready)
    -- Tenants with nothing dispatched: their oldest job to the express list, at once.
    for _, tenant in ipairs(redis.call('ZRANGEBYSCORE', G.active, '-inf', '(1')) do
        dispatch_one(tenant, now)
    end
    while redis.call('LLEN', G.shared) < ready do
        local picked = nil
        for _, tenant in ipairs(redis.call('ZRANGE', G.active, 0, -1)) do
            if eligible(tenant) then
                picked = tenant
                break
            end
        end
        if not picked then break end
        dispatch_one(picked, now)
    end
end
local function platform(first, parallel)
    G.shared, G.express, G.backlogged = KEYS[first], KEYS[first + 1], KEYS[first + 2]
    G.active, G.served, G.dispatches, G.total = KEYS[first + 3], KEYS[first + 4], KEYS[first + 5], KEYS[first + 6]
    G.parallel = math.max(1, tonumber(parallel))
end
"""

# KEYS: rq's set of queues, then the platform's seven. ARGV: now, READY, the platform's max depth,
# rq's prefix of job keys, JUDGE_PARALLEL_TESTS, the number of requests, the number of fields every job has alike and
# those fields and values (rq's, made once: job_template()), then per request: the tenant id, its
# rate window's key, its rate limit (0: not counted), max queued (-1: not checked), max running
# (-1: keep the tenant's; 0: none) and its job count, then per job: its id, its weight, its time
# (created_at and enqueued_at), its data and its description. Returns each request's {reason, value}.
# A job's weight is the sandboxes it runs (a judged execution's tests): the request counts, and the
# job takes places in max_queued, as that many executions would. `weights` keeps each heavier job's
# weight beyond 1 and `extra` their sum, which release() gives back.
# Each request is admitted or refused on its own, as if it were alone; the dispatcher runs once,
# after all of them.
ADMIT = DISPATCH + """
platform(2, ARGV[5])
local now, ready, max_depth, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local requests, alike = tonumber(ARGV[6]), tonumber(ARGV[7])
local JOB = 5
-- One job's fields, rq's alike and then its own four, whose values each job overwrites.
local fields = {}
for k = 1, 2 * alike do fields[k] = ARGV[7 + k] end
local own = 2 * alike
fields[own + 1], fields[own + 3], fields[own + 5], fields[own + 7] = 'created_at', 'enqueued_at', 'data', 'description'

-- A call from Lua costs several times what its command does, so each key is read once and
-- written once a run, whatever the number of requests: per rate window its count so far and what
-- is not written yet; per tenant its queued count (once read) and the jobs it admitted; the
-- platform's waiting jobs (once read) and the jobs this run adds to them. Nothing but this script
-- writes them meanwhile, so each request is decided as if it were alone.
local rates, tenants, order, waiting, pushed, admitted = {}, {}, {}, nil, 0, false

local function count(rate, n)
    local r = rates[rate]
    if not r then
        local counted = redis.call('INCRBY', rate, n)
        if counted == n then redis.call('EXPIRE', rate, 120) end
        rates[rate] = {counted = counted, unwritten = 0}
        return counted
    end
    r.counted, r.unwritten = r.counted + n, r.unwritten + n
    return r.counted
end

local function tenant_of(tenant)
    local t = tenants[tenant]
    if not t then
        t = {jobs = {}}
        tenants[tenant] = t
        order[#order + 1] = tenant
    end
    return t
end

local function admit_one(tenant, rate, rate_limit, max_queued, max_running, first, n)
    local last = first + JOB * (n - 1)
    local extra = 0
    for j = first, last, JOB do extra = extra + tonumber(ARGV[j + 1]) - 1 end
    if rate_limit > 0 then
        local counted = count(rate, 1 + extra)
        if counted > rate_limit then return {1, counted} end
    end
    local t = tenant_of(tenant)
    if max_queued >= 0 then
        if not t.mine then
            t.mine = redis.call('ZCARD', tkey(tenant, 'inflight')) + tonumber(redis.call('GET', tkey(tenant, 'extra')) or '0')
        end
        if t.mine + n + extra > max_queued then return {2, t.mine} end
        if not waiting then
            waiting = redis.call('LLEN', G.shared) + redis.call('LLEN', G.express)
                + tonumber(redis.call('GET', G.backlogged) or '0')
        end
        if waiting + pushed + n > max_depth then return {3, waiting + pushed} end
    end
    -- The jobs first: if one cannot be written, the ones before it are taken back and the
    -- request is refused alone, its jobs neither counted nor queued.
    for j = first, last, JOB do
        local time = ARGV[j + 2]
        fields[own + 2], fields[own + 4], fields[own + 6], fields[own + 8] = time, time, ARGV[j + 3], ARGV[j + 4]
        local written = redis.pcall('HSET', prefix .. ARGV[j], unpack(fields))
        if type(written) == 'table' and written.err then
            for k = first, j - JOB, JOB do redis.call('DEL', prefix .. ARGV[k]) end
            return {4, written.err}
        end
    end
    local scored, added_extra = {}, 0
    for j = first, last, JOB do
        local id, weight = ARGV[j], tonumber(ARGV[j + 1])
        scored[#scored + 1], scored[#scored + 2] = now, id
        if weight > 1 and redis.call('HSETNX', tkey(tenant, 'weights'), id, weight - 1) == 1 then
            redis.call('INCRBY', tkey(tenant, 'extra'), weight - 1)
            added_extra = added_extra + weight - 1
        end
        t.jobs[#t.jobs + 1] = id
    end
    if n > 0 then
        local added = redis.call('ZADD', tkey(tenant, 'inflight'), unpack(scored))
        if t.mine then t.mine = t.mine + added + added_extra end
    end
    pushed = pushed + n
    if max_running >= 0 then t.max_running = max_running end
    t.admitted, admitted = true, true
    return {0, 0}
end

local replies = {}
local i = 8 + 2 * alike
for r = 1, requests do
    local n = tonumber(ARGV[i + 5])
    replies[r] = admit_one(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), i + 6, n)
    i = i + 6 + JOB * n
end
for rate, r in pairs(rates) do
    if r.unwritten > 0 then redis.call('INCRBY', rate, r.unwritten) end
end
-- The backlogs and their count together: nothing can fail between two writes of a script that
-- has written (Redis refuses a script for memory only before its first write).
for _, tenant in ipairs(order) do
    local t = tenants[tenant]
    for k = 1, #t.jobs, 1000 do
        redis.call('RPUSH', tkey(tenant, 'backlog'), unpack(t.jobs, k, math.min(k + 999, #t.jobs)))
    end
end
if pushed > 0 then redis.call('INCRBY', G.backlogged, pushed) end
for _, tenant in ipairs(order) do
    local t = tenants[tenant]
    if t.max_running then redis.call('SET', tkey(tenant, 'max-running'), t.max_running) end
    if t.admitted then rescore(tenant) end
end
if admitted then
    redis.call('SADD', KEYS[1], G.shared, G.express)
    dispatch(now, ready)
end
return replies
"""

# KEYS: the tenant's inflight, backlog and dispatched, the job's hash, the tenant's weights and
# extra, then the platform's seven. ARGV: the job id, now, withdraw (1: the job has not run: take it
# out of the lists, delete its hash), the tenant id, READY, JUDGE_PARALLEL_TESTS.
RELEASE = DISPATCH + """
platform(7, ARGV[6])
local tenant = ARGV[4]
redis.call('ZREM', KEYS[1], ARGV[1])
local extra = redis.call('HGET', KEYS[5], ARGV[1])
if extra then
    redis.call('HDEL', KEYS[5], ARGV[1])
    redis.call('DECRBY', KEYS[6], extra)
end
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
    redis.call('DECR', G.total)
    local sandboxes = redis.call('HGET', tkey(tenant, 'running-weights'), ARGV[1])
    if sandboxes then
        redis.call('HDEL', tkey(tenant, 'running-weights'), ARGV[1])
        redis.call('DECRBY', tkey(tenant, 'running-extra'), sandboxes)
    end
end
if ARGV[3] == '1' then
    local waiting = redis.call('LREM', KEYS[2], 0, ARGV[1])
    if waiting > 0 then redis.call('DECRBY', G.backlogged, waiting) end
    redis.call('LREM', G.shared, 0, ARGV[1])
    redis.call('LREM', G.express, 0, ARGV[1])
    redis.call('DEL', KEYS[4])
end
if redis.call('ZSCORE', G.active, tenant) then rescore(tenant) end
dispatch(ARGV[2], tonumber(ARGV[5]))
return 1
"""

# KEYS: the platform's seven. ARGV: now, READY, JUDGE_PARALLEL_TESTS.
STARTED = DISPATCH + """
platform(1, ARGV[3])
dispatch(ARGV[1], tonumber(ARGV[2]))
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
    # What Redis answered the write of a job (UNWRITTEN).
    error: str = ""


@functools.cache
def queue():
    # "auto": a job this module writes is in Redis when the call returns, whatever transaction
    # the caller is in; the caller commits its row first.
    return django_rq.get_queue(settings.SANDBOX_QUEUE, connection=store.connection(), commit_mode="auto")


@functools.cache
def express_queue():
    return django_rq.get_queue(settings.SANDBOX_EXPRESS_QUEUE, connection=store.connection(), commit_mode="auto")


@functools.cache
def script(source: str):
    return store.connection().register_script(source)


def run(source: str, keys: list, args: list):
    # On the connection of the moment, which tests replace; the script object only caches its sha.
    return script(source)(keys=keys, args=args, client=store.connection())


def tenant_key(tenant_id: int, name: str) -> str:
    return TENANT_KEY.format(tenant_id, name)


def platform_keys() -> list[str]:
    """The keys every script takes last: the lists, the backlog count and the dispatcher's own."""
    return [queue().key, express_queue().key, BACKLOGGED_KEY, ACTIVE_KEY, SERVED_KEY, DISPATCHES_KEY, TOTAL_KEY]


def job_id(execution_id, attempts: int) -> str:
    # One job id per attempt: a re-queued execution can never collide with its lost job.
    return f"execution-{execution_id}-{attempts}"


def execution_of(job: str) -> str:
    """The execution id in a job id that job_id() made."""
    return job.removeprefix("execution-").rsplit("-", 1)[0]


def refusal(job: Job) -> str | None:
    """Why a job a sandbox worker dequeued is not one the platform wrote, or None if it is: a sandbox
    worker runs only run_execution, with an execution's arguments and nothing else attached
    (executions.ownjobs)."""
    return ownjobs.refusal(job, JOB_FUNCTION, execution_arguments, "execution")


def execution_arguments(job: Job, args: tuple) -> bool:
    return len(args) == 2 and args[0] == execution_of(job.id) and is_tenant_id(args[1])


def is_tenant_id(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def job_timeout() -> int:
    return int(max(limits.longest_execution_seconds(), limits.longest_judging_seconds())) + JOB_TIMEOUT_MARGIN_SECONDS


def job_args(execution_id, tenant_id: int, attempts: int, weight: int, stamp: str) -> list:
    """A job's own part of ADMIT's arguments: its id, weight, time, data and description.

    rq's fields for our job are the same but for the id, the call and the times: rq's own
    create_job() and to_dict() made them once (job_template()), ADMIT writes them with each job, and
    only these are sent per job. Making each job with rq took 70-140 us of a submission's 200-400;
    tests/test_scheduler.py checks that the hash written is the one rq makes, and that rq's own
    worker runs it.
    """
    execution = str(execution_id)
    return [
        job_id(execution_id, attempts),
        weight,
        stamp,
        # rq's Job.data: the call (function, instance, args, kwargs) as rq's JSON serializer writes
        # it (a UUID's text and an int or None need no escaping), but not zlib-compressed as
        # Job.to_dict() stores it: rq reads either (Job.restore takes data that does not inflate as
        # it is), and compressing each job's 70 bytes took 5-9 us of a submission's CPU.
        f'["{JOB_FUNCTION}", null, ["{execution}", {"null" if tenant_id is None else int(tenant_id)}], {{}}]'.encode(),
        # rq's get_call_string(): the description.
        f"{JOB_FUNCTION}({execution!r}, {tenant_id!r})",
    ]


# The fields of a job's hash that differ from job to job.
OWN_FIELDS = ("created_at", "enqueued_at", "data", "description")


@functools.cache
def job_template(timeout: int, queue_name: str) -> tuple:
    """The count, then the names and values, of the fields every job's hash has alike, as ADMIT
    takes them. Cached by what the fields depend on, which tests change."""
    fields = {name: value for name, value in rq_job_fields("00000000-0000-0000-0000-000000000000", 0, 0).items() if name not in OWN_FIELDS}
    return (len(fields), *(item for pair in fields.items() for item in pair))


def rq_job_fields(execution_id, tenant_id: int, attempts: int) -> dict:
    """The job's fields as rq's public API makes them."""
    job = queue().create_job(
        JOB_FUNCTION,
        args=(str(execution_id), tenant_id),
        job_id=job_id(execution_id, attempts),
        timeout=job_timeout(),
        result_ttl=600,
        failure_ttl=86400,
    )
    job.enqueued_at = rq_now()
    return job.to_dict()


def admit(
    tenant_id: int, quotas: Quotas | None, executions: list[tuple], states: list[tuple[str, str, int]] = ()
) -> Refusal | None:
    """Count the request and queue the jobs of (execution id, attempts[, weight]), or refuse them all.

    `states` are the executions' queued states (store.state_entry), written in the same round trip
    before the jobs can be taken, so that a worker's "running" always comes after them. Raises
    redis.RedisError if Redis cannot be reached, or a job could not be written: then nothing was queued.
    """
    refusal = admit_each([(tenant_id, quotas, executions)], states)[0]
    if refusal is not None and refusal.reason == UNWRITTEN:
        raise redis.ResponseError(refusal.error)
    return refusal


def admit_each(
    requests: list[tuple[int, Quotas | None, list[tuple]]], states: list[tuple[str, str, int]] = ()
) -> list[Refusal | None]:
    """admit() for several requests, each admitted or refused on its own, in one round trip.

    One run of the admission script takes them all, each counted and checked as if it were alone.
    Raises redis.RedisError if Redis cannot be reached: then some of the states may have been
    written, but no job was queued.
    """
    now = time.time()
    keys = [queue().redis_queues_keys, *platform_keys()]
    # EVALSHA by hand, not redis-py's pipeline: it asks Redis whether its scripts exist (SCRIPT
    # EXISTS) on every execute, a second round trip. After a restart of Redis (which forgets
    # scripts) the first round trip gets NOSCRIPT: load the script and send again.
    commands = [("SET", key, value, "EX", seconds) for key, value, seconds in states]
    commands.append(("EVALSHA", script(ADMIT).sha, len(keys), *keys, *admission(requests, now)))
    for attempt in (1, 2):
        replies = store.round_trip(commands)
        for reply in replies:
            if isinstance(reply, redis.exceptions.NoScriptError) and attempt == 1:
                store.connection().script_load(ADMIT)
                break
            if isinstance(reply, redis.ResponseError):
                raise reply
        else:
            break
    return [admission_refusal(reply, now) for reply in replies[-1]]


def admission(requests: list[tuple[int, Quotas | None, list[tuple]]], now: float) -> list:
    """ADMIT's arguments for requests of (tenant id, quotas, jobs of (execution id, attempts[, weight]))."""
    stamp = utcformat(rq_now())
    args = [now, READY, settings.QUEUE_MAX_DEPTH, Job.key_for(""), settings.JUDGE_PARALLEL_TESTS, len(requests)]
    args += job_template(job_timeout(), queue().name)
    for tenant_id, quotas, executions in requests:
        args += [
            tenant_id,
            RATE_KEY.format(tenant_id, int(now // 60)),
            quotas.rate_per_minute if quotas else 0,
            quotas.max_queued if quotas else -1,
            quotas.max_running if quotas else -1,
            len(executions),
        ]
        for execution_id, attempts, *weight in executions:
            args += job_args(execution_id, tenant_id, attempts, weight[0] if weight else 1, stamp)
    return args


def admission_refusal(reply: list, now: float) -> Refusal | None:
    reason, value = reply
    if reason == ADMITTED:
        return None
    if reason == RATE_LIMITED:
        return Refusal(reason, rate_window_left(now))
    if reason == UNWRITTEN:
        error = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        log.warning("a request's jobs could not be written to Redis: %s", error)
        return Refusal(reason, 0, error)
    return Refusal(reason, int(value))


def rate_window_left(now: float) -> int:
    """Seconds until the rate window (RATE_KEY's minute) of `now` ends: a refused request's Retry-After."""
    return 60 - int(now % 60)


def started() -> None:
    """A worker took a job from a list: dispatch the next one, so that the lists stay ready."""
    run(STARTED, platform_keys(), [time.time(), READY, settings.JUDGE_PARALLEL_TESTS])


def release(tenant_id: int, job: str, withdraw: bool = False) -> None:
    """The job ended (or, with withdraw, will never run): free its place and dispatch the next."""
    keys = [
        tenant_key(tenant_id, "inflight"),
        tenant_key(tenant_id, "backlog"),
        tenant_key(tenant_id, "dispatched"),
        Job.key_for(job),
        tenant_key(tenant_id, "weights"),
        tenant_key(tenant_id, "extra"),
        *platform_keys(),
    ]
    run(RELEASE, keys, [job, time.time(), int(withdraw), tenant_id, READY, settings.JUDGE_PARALLEL_TESTS])


def counts(tenant_id: int) -> tuple[int, int]:
    """(the tenant's executions queued or running, every execution waiting for a worker)."""
    with store.connection().pipeline(transaction=False) as pipe:
        pipe.zcard(tenant_key(tenant_id, "inflight"))
        pipe.llen(queue().key)
        pipe.llen(express_queue().key)
        pipe.get(BACKLOGGED_KEY)
        pipe.get(tenant_key(tenant_id, "extra"))
        mine, shared, express, backlogged, extra = pipe.execute()
    return int(mine) + int(extra or 0), int(shared) + int(express) + int(backlogged or 0)


def depth() -> int:
    """Executions waiting for a worker: in the lists, or in a tenant's backlog."""
    return counts(0)[1]
