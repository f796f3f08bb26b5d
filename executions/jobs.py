"""What the queue carries: submitting an execution, and the rq job that runs it.

The database row is the source of truth. The job moves it forward with conditional UPDATEs, so a
duplicate or late job can never overwrite a result, and every path ends in a terminal status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from datetime import timedelta

import django_rq
import redis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.utils import timezone
from rq import get_current_job

from executions import limits as execution_limits
from executions import metrics
from executions.models import Execution, Tenant
from executions.sandbox import runner

log = logging.getLogger(__name__)

# How long a job may sit in rq before rq itself gives up on it; the sandbox's own deadline is
# much shorter, so this only bounds a worker that hangs on the engine or the database.
JOB_TIMEOUT_MARGIN_SECONDS = 120
RESULT_KEY = "rce:execution:{}"
# Published once an execution's result is cached, for requests waiting on it (?wait=N).
FINISHED_CHANNEL = "rce:finished:{}"
IDEMPOTENCY_WINDOW = timedelta(hours=24)
Status = Execution.Status


def log_state(task_id, state: str, tenant: str, worker: str = "-", **extra) -> None:
    """One logfmt line per state change, the same in web and worker: grep a task id to follow it."""
    fields = {"task_id": task_id, "state": state, "tenant": tenant, "worker": worker, **extra}
    log.info("execution %s", " ".join(f"{key}={value}" for key, value in fields.items()))


class QueueUnavailable(Exception):
    """Redis could not take the job; the execution was not accepted."""


def queue():
    # "auto": enqueue at once. Callers enqueue after their row is committed, and must see a
    # Redis failure then, not later in an on_commit hook.
    return django_rq.get_queue(settings.SANDBOX_QUEUE, commit_mode="auto")


def job_timeout() -> int:
    return int(settings.SANDBOX_TIMEOUT_SECONDS) + JOB_TIMEOUT_MARGIN_SECONDS


def job_options(execution: Execution) -> dict:
    return {
        "args": (str(execution.id),),
        "job_id": f"execution-{execution.id}-{execution.attempts}",
        "timeout": job_timeout(),
        "result_ttl": 600,
        "failure_ttl": 86400,
    }


def enqueue(execution: Execution) -> None:
    queue().enqueue_call("executions.jobs.run_execution", **job_options(execution))


def enqueue_all(executions: list[Execution]) -> None:
    """Queue every job or none: rq sends them in one Redis transaction (MULTI/EXEC)."""
    target = queue()
    target.enqueue_many(
        [target.prepare_data("executions.jobs.run_execution", **job_options(e)) for e in executions]
    )


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

    If Redis refuses, the row is removed: nothing half-done. A request that repeats an
    Idempotency-Key within IDEMPOTENCY_WINDOW gets the original execution back, and nothing new.
    `limits` must have been checked against the caller's maxima; the default is the platform's.
    """
    limits = limits or execution_limits.check_limits(None, None, execution_limits.platform_maxima())
    request = (language, code, stdin, limits.timeout_seconds, limits.memory_mb)
    if idempotency_key:
        previous = replay(tenant, idempotency_key, request)
        if previous:
            return previous, False
    try:
        # A savepoint, so that losing the race below leaves any outer transaction usable.
        with transaction.atomic():
            execution = Execution.objects.create(
                tenant=tenant,
                language=language,
                code=code,
                stdin=stdin,
                idempotency_key=idempotency_key,
                timeout_seconds=limits.timeout_seconds,
                memory_mb=limits.memory_mb,
            )
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


def submit_batch(tenant: Tenant, requests: list[tuple[str, str, str, execution_limits.ExecutionLimits]]) -> list[Execution]:
    """Create the rows of (language, code, stdin, limits) in one transaction, then queue their jobs.

    The jobs go in one Redis transaction after the commit (a worker must find its row). If Redis
    refuses, every row not yet claimed by a worker is removed, so a job that did reach the queue
    finds no row and is skipped: the batch was not accepted, and nothing of it runs (a worker can
    claim one first only if Redis ran the transaction and the reply was lost). A process that
    dies between the commit and the enqueue leaves queued rows that the reconciler queues later.
    """
    with transaction.atomic():
        executions = Execution.objects.bulk_create(
            Execution(
                tenant=tenant,
                language=language,
                code=code,
                stdin=stdin,
                timeout_seconds=limits.timeout_seconds,
                memory_mb=limits.memory_mb,
            )
            for language, code, stdin, limits in requests
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
    previous = Execution.objects.filter(tenant=tenant, idempotency_key=key).first()
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
    claimed = Execution.objects.filter(id=execution_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now(), worker_name=name
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
            on_created=lambda cid: Execution.objects.filter(id=execution_id).update(container_id=cid),
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


def finish(execution_id: str, fields: dict, attempts: int = 5) -> str:
    """Write the terminal status; retry through short database outages so the result is not lost."""
    fields["finished_at"] = timezone.now()
    for attempt in range(attempts):
        try:
            updated = Execution.objects.filter(id=execution_id, status=Status.RUNNING).update(**fields)
            break
        except DatabaseError:
            if attempt == attempts - 1:
                raise
            log.warning("execution %s: database write failed, retrying", execution_id, exc_info=True)
            close_old_connections()
            time.sleep(2**attempt)
    if not updated:
        return "stale"
    cache_result(execution_id)
    return fields["status"]


def cache_result(execution_id: str) -> None:
    from executions.api.serializers import ExecutionSerializer

    execution = Execution.objects.get(id=execution_id)
    payload = {"tenant_id": execution.tenant_id, "data": ExecutionSerializer(execution).data}
    try:
        connection = queue().connection
        connection.set(RESULT_KEY.format(execution_id), json.dumps(payload), ex=settings.RESULT_CACHE_TTL_SECONDS)
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
    payload = json.loads(raw)
    if payload.get("tenant_id") != tenant_id:
        return None
    return payload["data"]
