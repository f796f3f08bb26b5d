"""What the queue carries: submitting an execution, and the rq job that runs it.

The database row is the source of truth. The job moves it forward with conditional UPDATEs, so a
duplicate or late job can never overwrite a result, and every path ends in a terminal status.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import time
from datetime import timedelta

import django_rq
import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rq import RateLimit, get_current_job
from rq.rate_limit import RateLimitRegistry

from executions import limits as execution_limits
from executions import metrics
from executions.models import Execution, Tenant
from executions.sandbox import runner

log = logging.getLogger(__name__)

# How long a job may sit in rq before rq itself gives up on it; the sandbox's own deadline is
# much shorter, so this only bounds a worker that hangs on the engine or the database.
JOB_TIMEOUT_MARGIN_SECONDS = 120
RESULT_KEY = "rce:execution:{}"
# Set when a running execution is cancelled; its worker polls it and kills the sandbox.
CANCEL_KEY = "rce:cancel:{}"
# Published once an execution's result is cached, for requests waiting on it (?wait=N).
FINISHED_CHANNEL = "rce:finished:{}"
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Results a worker could not write because the database was down: execution id -> fields (JSON).
PARKED_RESULTS_KEY = "rce:parked-results"
DATABASE_RETRY_DELAYS = (0.5, 1, 2, 4)
RESULT_HOLD_SECONDS = 3600
Status = Execution.Status


def log_state(task_id, state: str, tenant: str, worker: str = "-", **extra) -> None:
    """One logfmt line per state change, the same in web and worker: grep a task id to follow it."""
    fields = {"task_id": task_id, "state": state, "tenant": tenant, "worker": worker, **extra}
    log.info("execution %s", " ".join(f"{key}={value}" for key, value in fields.items()))


class QueueUnavailable(Exception):
    """Redis could not take the job; the execution was not accepted."""


@functools.cache
def queue():
    # "auto": enqueue at once. Callers enqueue after their row is committed, and must see a
    # Redis failure then, not later in an on_commit hook. One per process: a new queue means a
    # new connection pool, and so a TCP connect and handshake (about 2 ms here) on every call,
    # several times a request. The pool reconnects by itself after an outage or a fork.
    return django_rq.get_queue(settings.SANDBOX_QUEUE, commit_mode="auto")


def job_timeout() -> int:
    return int(settings.SANDBOX_TIMEOUT_SECONDS) + JOB_TIMEOUT_MARGIN_SECONDS


def job_id(execution: Execution) -> str:
    # One job id per attempt: a re-queued execution can never collide with its lost job.
    return f"execution-{execution.id}-{execution.attempts}"


def slot_key(tenant_id: int) -> str:
    """The rq rate limit key shared by one tenant's jobs."""
    return f"tenant-{tenant_id}"


def enqueue(execution: Execution) -> None:
    """Queue the execution's job, at most max_running of its tenant's in the queue or running.

    Fair scheduling is rq's concurrency rate limit keyed by tenant: the rest of a tenant's backlog
    waits in rq's per-key set and enters the shared queue, oldest first, as its earlier jobs end.
    So another tenant's new job is never behind more than max_running of this tenant's in the
    queue, whatever the backlog, and starts as soon as a worker is free.
    """
    shared = queue()
    job = shared.create_job(
        "executions.jobs.run_execution",
        args=(str(execution.id),),
        job_id=job_id(execution),
        timeout=job_timeout(),
        result_ttl=600,
        failure_ttl=86400,
        rate_limit=RateLimit(slot_key(execution.tenant_id), execution.tenant.limits().max_running),
    )
    # rq's enqueue_call takes three round trips; this is one MULTI (after redis-py's SCRIPT EXISTS
    # for rq's slot-taking script): the job is saved, waits in its tenant's backlog and takes a
    # free slot all at once, or not at all.
    with shared.connection.pipeline() as pipe:
        pipe.sadd(shared.redis_queues_keys, shared.key)
        shared._enqueue_rate_limited_job(job, pipeline=pipe)
        pipe.execute()


def enqueue_all(executions: list[Execution]) -> None:
    """Queue every job, one by one: rq refuses rate-limited jobs in one pipeline (enqueue_many).

    A failure half-way raises; the caller removes the rows whose job did not start, and a job that
    did reach the queue then finds no row and runs nothing.
    """
    for execution in executions:
        enqueue(execution)


class QueueQuotaExceeded(Exception):
    """The tenant has max_queued executions queued or running; the execution was not accepted."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


class Overloaded(Exception):
    """More than QUEUE_MAX_DEPTH executions wait, all tenants together: back-pressure."""


# One round trip for both counts. KEYS: the tenant's slots (allowed) and its waiting backlog
# (rate_limited) in rq's rate limiter, the shared queue, rq's set of rate limit keys.
# ARGV: the prefix of rq's rate limit keys. Waiting jobs are in the queue or a backlog, never both.
QUEUE_COUNTS = """
local mine = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local waiting = redis.call('LLEN', KEYS[3])
for _, key in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    waiting = waiting + redis.call('ZCARD', ARGV[1] .. key .. ':rate_limited')
end
return {mine, waiting}
"""


def queue_counts(tenant_id: int) -> tuple[int, int]:
    """(the tenant's executions queued or running, every execution waiting for a worker)."""
    shared = queue()
    registry = RateLimitRegistry(slot_key(tenant_id), connection=shared.connection)
    script = shared.connection.register_script(QUEUE_COUNTS)
    prefix = registry.config_key[: -len(registry.key)]
    keys = [registry.allowed_key, registry.rate_limited_key, shared.key, RateLimitRegistry.rl_keys_key]
    mine, waiting = script(keys=keys, args=[prefix])
    return int(mine), int(waiting)


def queue_depth() -> int:
    """Executions waiting for a worker: in the shared queue, or behind their tenant's max_running."""
    return queue_counts(0)[1]


def admit(tenant: Tenant, count: int = 1) -> None:
    """Refuse `count` new executions over the global queue ceiling or the tenant's max_queued."""
    try:
        mine, waiting = queue_counts(tenant.id)
    except redis.RedisError as exc:
        raise QueueUnavailable(str(exc)) from exc
    if waiting + count > settings.QUEUE_MAX_DEPTH:
        raise Overloaded()
    limit = tenant.limits().max_queued
    if mine + count > limit:
        raise QueueQuotaExceeded(limit)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used, within its window, for a different request."""


def submit(
    tenant: Tenant,
    language: str,
    code: str,
    stdin: str = "",
    idempotency_key: str = "",
    limits: execution_limits.ExecutionLimits | None = None,
) -> tuple[Execution, bool]:
    """Create the row, then queue its job, and return it with whether it is new.

    Over a queue quota nothing is created (admit). If Redis refuses, the row is removed: nothing
    half-done. A request that repeats an
    Idempotency-Key within IDEMPOTENCY_WINDOW gets the original execution back, and nothing new.
    `limits` must have been checked against the caller's maxima; the default is the platform's.
    """
    limits = limits or execution_limits.check_limits(None, None, execution_limits.platform_maxima())
    request = (language, code, stdin, limits.timeout_seconds, limits.memory_mb)
    if idempotency_key:
        previous = replay(tenant, idempotency_key, request)
        if previous:
            return previous, False
    admit(tenant)
    execution = new_execution(tenant, language, code, stdin, limits, idempotency_key)
    try:
        # Only a key can collide. Then a savepoint, so that losing that race leaves any outer
        # transaction usable; without one, a lone INSERT needs no BEGIN and COMMIT around it.
        if idempotency_key:
            with transaction.atomic():
                execution.save(force_insert=True)
        else:
            execution.save(force_insert=True)
    except IntegrityError:
        # A concurrent request with the same key created it first.
        previous = replay(tenant, idempotency_key, request) if idempotency_key else None
        if previous is None:
            raise
        return previous, False
    try:
        enqueue(execution)
    except redis.RedisError as exc:
        execution.delete()
        log.warning("execution %s not accepted: the queue is unavailable: %s", execution.id, exc)
        raise QueueUnavailable(str(exc)) from exc
    log_state(execution.id, Status.QUEUED, tenant.name, language=language)
    return execution, True


def new_execution(
    tenant: Tenant,
    language: str,
    code: str,
    stdin: str,
    limits: execution_limits.ExecutionLimits,
    idempotency_key: str = "",
) -> Execution:
    """An unsaved row for a submission, with the limits its run will get."""
    return Execution(
        tenant=tenant,
        language=language,
        code=code,
        stdin=stdin,
        idempotency_key=idempotency_key,
        timeout_seconds=limits.timeout_seconds,
        memory_mb=limits.memory_mb,
    )


def submit_batch(tenant: Tenant, requests: list[tuple[str, str, str, execution_limits.ExecutionLimits]]) -> list[Execution]:
    """Create the rows of (language, code, stdin, limits) in one transaction, then queue their jobs.

    Over a queue quota nothing is created. The jobs are queued after the commit (a worker must
    find its row). If Redis refuses, every row not yet claimed by a worker is removed, so a job
    that did reach the queue finds no row and is skipped: the batch was not accepted (a worker may
    have claimed and run one already if it was quick). A process that dies between the commit and
    the enqueue leaves queued rows that the reconciler queues later.
    """
    admit(tenant, len(requests))
    with transaction.atomic():
        executions = Execution.objects.bulk_create(
            new_execution(tenant, language, code, stdin, limits) for language, code, stdin, limits in requests
        )
    try:
        enqueue_all(executions)
    except redis.RedisError as exc:
        Execution.objects.filter(id__in=[e.id for e in executions], status=Status.QUEUED).delete()
        log.warning("batch of %d not accepted: the queue is unavailable: %s", len(executions), exc)
        raise QueueUnavailable(str(exc)) from exc
    for execution in executions:
        log_state(execution.id, Status.QUEUED, tenant.name, language=execution.language, batch=len(executions))
    return executions


def replay(tenant: Tenant, key: str, request: tuple) -> Execution | None:
    """The execution an earlier request with this key created, if it is still within the window."""
    previous = Execution.objects.owned_by(tenant).filter(idempotency_key=key).first()
    if previous is None:
        return None
    if previous.created_at < timezone.now() - IDEMPOTENCY_WINDOW:
        # The window is over: the key is free again.
        Execution.objects.filter(pk=previous.pk, idempotency_key=key).update(idempotency_key="")
        return None
    if (previous.language, previous.code, previous.stdin, previous.timeout_seconds, previous.memory_mb) != request:
        raise IdempotencyConflict()
    return previous


def worker_name() -> str:
    job = get_current_job()
    name = getattr(job, "worker_name", None) if job else None
    return name or f"{socket.gethostname()}.{os.getpid()}"


def run_execution(execution_id: str) -> str:
    """The rq job: claim the row, run the script in the sandbox, write the terminal status."""
    close_old_connections()
    name = worker_name()
    claimed = patiently(
        lambda: Execution.objects.filter(id=execution_id, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=timezone.now(), worker_name=name
        ),
        f"execution {execution_id}: claim",
    )
    if not claimed:
        # Already run by another job, cancelled, or deleted: never run a script twice.
        log.info("execution %s not claimed by %s: not queued any more", execution_id, name)
        return "skipped"
    taken = time.monotonic()
    execution = Execution.objects.select_related("tenant").get(id=execution_id)
    tenant = execution.tenant.name
    queue_wait = (execution.started_at - execution.created_at).total_seconds()
    metrics.QUEUE_WAIT.observe(queue_wait)
    log_state(execution_id, Status.RUNNING, tenant, name, queue_wait_s=f"{queue_wait:.3f}")
    with metrics.ACTIVE_WORKERS.track_inprogress():
        fields = run_in_sandbox(execution)
    status = finish(execution_id, fields)
    if status == "stale" and keep_cancelled_output(execution_id, fields):
        log_state(execution_id, Status.CANCELLED, tenant, name, duration_ms=fields.get("duration_ms"))
        return Status.CANCELLED
    if status == "stale":
        log.warning("execution %s: finished, but its row was no longer running; result dropped", execution_id)
        return status
    metrics.record_finished(execution.language, status, time.monotonic() - taken)
    log_state(
        execution_id, status, tenant, name, exit_code=fields.get("exit_code"), duration_ms=fields.get("duration_ms")
    )
    return status


def run_in_sandbox(execution: Execution) -> dict:
    """The fields of the terminal row: the run's outcome, or `error` with a message."""
    execution_id = str(execution.id)
    try:
        result = runner.run(
            execution.language,
            execution.code,
            execution.stdin,
            limits=sandbox_limits(execution),
            labels={"rce.execution": execution_id},
            on_created=lambda cid: patiently(
                lambda: Execution.objects.filter(id=execution_id).update(container_id=cid),
                f"execution {execution_id}: record container",
            ),
            cancelled=lambda: cancel_requested(execution_id),
        )
    except runner.SandboxError as exc:
        log.error("execution %s: sandbox error: %s", execution_id, exc)
        return {"status": Status.ERROR, "error": str(exc)}
    except Exception as exc:
        log.exception("execution %s: unexpected fault in the sandbox runner", execution_id)
        return {"status": Status.ERROR, "error": f"internal error in the sandbox runner ({type(exc).__name__})"}
    return {
        "status": result.status,
        "exit_code": result.exit_code,
        "stdout": as_text(result.stdout),
        "stderr": as_text(result.stderr),
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "duration_ms": result.duration_ms,
        "container_id": result.container_id,
    }


def sandbox_limits(execution: Execution) -> runner.Limits:
    """The platform's limits, lowered to the execution's own. Never raised, whatever the row says:
    the API checked them, and this keeps a row written any other way within the platform's."""
    platform = runner.Limits.from_settings()
    return dataclasses.replace(
        platform,
        timeout_seconds=min(platform.timeout_seconds, execution.timeout_seconds or platform.timeout_seconds),
        memory_mb=min(platform.memory_mb, execution.memory_mb or platform.memory_mb),
    )


def as_text(data: bytes) -> str:
    # Output is untrusted bytes: invalid UTF-8 becomes U+FFFD, and so does NUL, which PostgreSQL
    # cannot store in text.
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def finish(execution_id: str, fields: dict) -> str:
    """Write the terminal status, or keep the result through a database outage.

    After a few quick retries the result is parked in Redis, where every worker's maintenance pass
    writes it once the database is back. With Redis down too, this worker holds the result and
    keeps trying both for RESULT_HOLD_SECONDS.
    """
    fields["finished_at"] = timezone.now()
    deadline = time.monotonic() + RESULT_HOLD_SECONDS
    write = functools.partial(write_result, execution_id, fields)
    try:
        return patiently(write, f"execution {execution_id}: result")
    except DatabaseError as exc:
        close_old_connections()
        failure = exc
    # Redis down too: keep trying both, at the longest retry delay.
    delay = DATABASE_RETRY_DELAYS[-1]
    while not park_result(execution_id, fields):
        if time.monotonic() > deadline:
            raise failure
        log.warning("execution %s: database write failed (%s); retrying in %ss", execution_id, failure, delay)
        time.sleep(delay)
        try:
            return write()
        except DatabaseError as exc:
            close_old_connections()
            failure = exc
    log.warning("execution %s: database unavailable (%s); result parked in Redis", execution_id, failure)
    return fields["status"]


def write_result(execution_id: str, fields: dict) -> str:
    """Record the result, then cache and announce it: "stale" if the row was no longer running."""
    if not record_result(execution_id, fields):
        return "stale"
    cache_result(execution_id)
    return fields["status"]


def record_result(execution_id: str, fields: dict) -> bool:
    """The conditional UPDATE from running to terminal."""
    return bool(Execution.objects.filter(id=execution_id, status=Status.RUNNING).update(**fields))


def park_result(execution_id: str, fields: dict) -> bool:
    try:
        queue().connection.hset(PARKED_RESULTS_KEY, execution_id, json.dumps(fields, cls=DjangoJSONEncoder))
    except redis.RedisError:
        return False
    return True


def is_parked(execution_id) -> bool:
    return bool(queue().connection.hexists(PARKED_RESULTS_KEY, str(execution_id)))


def apply_parked_results() -> int:
    """Write every result a worker parked during a database outage; the number written."""
    connection = queue().connection
    applied = 0
    for raw_id, raw in connection.hgetall(PARKED_RESULTS_KEY).items():
        execution_id = raw_id.decode()
        fields = json.loads(raw)
        fields["finished_at"] = parse_datetime(fields["finished_at"])
        recorded = record_result(execution_id, fields)
        # Out of the hash as soon as the row holds it, before readers are told it finished.
        connection.hdel(PARKED_RESULTS_KEY, execution_id)
        if recorded:
            cache_result(execution_id)
        log.info("execution %s: parked result written (%s)", execution_id, fields["status"] if recorded else "stale")
        applied += 1
    return applied


def patiently(action, what: str):
    """Run a database action, retrying through a short outage before giving up."""
    for delay in (*DATABASE_RETRY_DELAYS, None):
        try:
            return action()
        except DatabaseError as exc:
            if delay is None:
                raise
            log.warning("%s: database unavailable (%s); retrying in %ss", what, exc, delay)
            close_old_connections()
            time.sleep(delay)


# What a run cancelled midway keeps: its output so far, never its status or finish time.
CANCELLED_RUN_FIELDS = (
    "stdout", "stderr", "stdout_truncated", "stderr_truncated", "exit_code", "duration_ms", "container_id"
)


def keep_cancelled_output(execution_id: str, fields: dict) -> bool:
    """If the row was cancelled, keep what the run printed until then and return True."""
    cancelled = Execution.objects.filter(id=execution_id, status=Status.CANCELLED)
    kept = {name: fields[name] for name in CANCELLED_RUN_FIELDS if name in fields}
    if not (cancelled.update(**kept) if kept else cancelled.exists()):
        return False
    cache_result(execution_id)
    return True


class NotCancellable(Exception):
    """The execution had already ended with another status."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def cancel(execution: Execution) -> bool:
    """Move a queued or running execution to `cancelled`; False if it already was cancelled.

    Raises NotCancellable if it ended otherwise. The row changes first, with a conditional UPDATE,
    so a worker finishing at the same moment and this cannot both win. A queued job then finds its
    row not queued and never creates a container; a running sandbox's worker polls CANCEL_KEY and
    kills it, so the caller needs no access to the container engine.
    """
    # The status can move under us (queued -> running, or the reconciler's running -> queued):
    # each miss re-reads it, and it can only move a few times before it is terminal.
    for _ in range(5):
        if execution.status == Status.CANCELLED:
            return False
        if execution.status not in Execution.CANCELLABLE_STATUSES:
            raise NotCancellable(execution.status)
        previous, now = execution.status, timezone.now()
        claimed = Execution.objects.filter(id=execution.id, status=previous)
        if claimed.update(status=Status.CANCELLED, finished_at=now):
            break
        execution.refresh_from_db(fields=["status", "attempts"])
    else:
        raise NotCancellable(execution.status)
    execution.status, execution.finished_at = Status.CANCELLED, now
    signal_cancel(execution, previous)
    metrics.record_cancelled(execution.language, previous)
    log_state(execution.id, Status.CANCELLED, execution.tenant.name, previous=previous)
    return True


def signal_cancel(execution: Execution, previous: str) -> None:
    try:
        if previous == Status.RUNNING:
            queue().connection.set(CANCEL_KEY.format(execution.id), 1, ex=job_timeout())
        else:
            # The worker would skip the job anyway; removing it keeps the queue depth true.
            queue().remove(job_id(execution))
    except redis.RedisError:
        # The row is cancelled whatever happens: the worker drops the result, and without the key
        # the sandbox only runs on to its own deadline.
        log.warning("execution %s: cancelled, but Redis is unreachable to tell its worker", execution.id)


def cancel_requested(execution_id: str) -> bool:
    try:
        return bool(queue().connection.exists(CANCEL_KEY.format(execution_id)))
    except redis.RedisError:
        return False


def cache_result(execution_id: str) -> None:
    from executions.api.serializers import ExecutionSerializer

    try:
        execution = Execution.objects.get(id=execution_id)
    except DatabaseError:
        # The result is written; only the cache misses out.
        return
    # The owner first, so that another tenant's read is refused before any parsing: as cheap as a miss.
    payload = f"{execution.tenant_id}:{json.dumps(ExecutionSerializer(execution).data)}"
    try:
        connection = queue().connection
        connection.set(RESULT_KEY.format(execution_id), payload, ex=settings.RESULT_CACHE_TTL_SECONDS)
        connection.publish(FINISHED_CHANNEL.format(execution_id), execution.status)
    except redis.RedisError:
        # The database has the result; the cache only makes reads faster.
        log.warning("execution %s: could not cache the result", execution_id, exc_info=True)


def cached_result(execution_id: str, tenant_id: int) -> dict | None:
    """The cached API representation of a finished execution, if it belongs to this tenant."""
    try:
        raw = queue().connection.get(RESULT_KEY.format(execution_id))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    owner, _, data = raw.partition(b":")
    if owner != str(tenant_id).encode():
        return None
    return json.loads(data)
