"""The worker side: the rq job that runs one execution in its sandbox and records how it ended.

The database row is the source of truth. The job moves it forward through the model's transitions
(conditional UPDATEs), so a duplicate or late job can never overwrite a result, and every path ends
in a terminal status, through a database outage too (results are parked in Redis meanwhile).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
import socket
import time
from collections.abc import Callable

import redis
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rq import get_current_job

from executions import events, judging, limits, metrics, scheduler, store
from executions.models import Execution, log_state
from executions.sandbox import judge, languages, premade, runner

log = logging.getLogger(__name__)

DATABASE_RETRY_DELAYS = (0.5, 1, 2, 4)
# An execution whose script never ran is queued again for the platform's faults (no engine could
# take it, its job or its worker was lost: executions.reconciler) up to this many attempts in all;
# its next fault of either kind ends it `error`. One budget for both, as both count in `attempts`.
MAX_ATTEMPTS = 5
RESULT_HOLD_SECONDS = 3600
Status = Execution.Status
# What a run cancelled midway keeps: its output so far, never its status or finish time.
CANCELLED_RUN_FIELDS = (
    "stdout", "stderr", "stdout_truncated", "stderr_truncated", "exit_code", "duration_ms", "container_id", "test_results"
)


def worker_name() -> str:
    job = get_current_job()
    name = getattr(job, "worker_name", None) if job else None
    return name or f"{socket.gethostname()}.{os.getpid()}"


def run_execution(execution_id: str, tenant_id: int | None = None) -> str:
    """The rq job: run the execution, then free its tenant's place in the scheduler, whatever happened."""
    try:
        # This job left a list: the next one goes in now, while this one runs.
        scheduler.started()
    except redis.RedisError:
        log.warning("execution %s: could not dispatch the next job", execution_id, exc_info=True)
    try:
        return run(execution_id)
    finally:
        job = get_current_job()
        if tenant_id is not None and job is not None:
            try:
                scheduler.release(tenant_id, job.id)
            except redis.RedisError:
                # The reconciler frees places whose execution has ended (reconciler.release_ended).
                log.warning("execution %s: could not free its place in the scheduler", execution_id, exc_info=True)


def run(execution_id: str) -> str:
    """Claim the row, run the script in the sandbox, write the terminal status."""
    close_old_connections()
    name = worker_name()
    claimed = patiently(lambda: Execution.objects.claim(execution_id, name), f"execution {execution_id}: claim")
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
        try:
            fields = run_in_sandbox(execution, lambda: mirror_running(execution))
        except runner.EngineUnavailable as exc:
            if execution.attempts < MAX_ATTEMPTS:
                return requeue_unstarted(execution, name, exc)
            fields = {"status": Status.ERROR, "error": f"no container engine could run it: {exc}"}
    status = finish(execution_id, fields, execution)
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


def mirror_running(execution: Execution) -> None:
    """The running state, for reads that come from the cache (executions.store)."""
    store.mirror_state(str(execution.id), execution.tenant_id, execution.to_dict(), scheduler.job_timeout())


def run_in_sandbox(execution: Execution, started: Callable[[], None]) -> dict:
    """The fields of the terminal row: the run's (or the judging's) outcome, or `error` with a
    message; `started` is called once as the run begins (after the script's delivery, in a sandbox
    made ahead: a read then sees "queued" a few milliseconds longer, the script starts that much sooner).
    EngineUnavailable goes up: the script never arrived, and the caller queues it again."""
    doing = "while judging" if execution.is_judged else "in the sandbox runner"
    try:
        if execution.is_judged:
            started()
            return judge_in_sandboxes(execution)
        return run_once(execution, started)
    except runner.EngineUnavailable:
        raise
    except runner.SandboxError as exc:
        log.error("execution %s: sandbox error %s: %s", execution.id, doing, exc)
        return {"status": Status.ERROR, "error": str(exc)}
    except Exception as exc:
        log.exception("execution %s: unexpected fault %s", execution.id, doing)
        return {"status": Status.ERROR, "error": f"internal error {doing} ({type(exc).__name__})"}


def run_once(execution: Execution, started: Callable[[], None]) -> dict:
    execution_id = str(execution.id)
    result = premade.run(
        execution.language,
        execution.code,
        execution.stdin,
        files=execution.program_files(),
        args=tuple(execution.args),
        limits=sandbox_limits(execution),
        labels={"rce.execution": execution_id},
        on_created=lambda cid: patiently(
            lambda: Execution.objects.filter(id=execution_id).update(container_id=cid),
            f"execution {execution_id}: record container",
        ),
        cancelled=lambda: store.cancel_requested(execution_id),
        live=functools.partial(events.OutputPublisher, execution_id),
        on_started=started,
    )
    return {
        "status": result.status,
        "exit_code": result.exit_code,
        "stdout": as_text(result.stdout),
        "stderr": as_text(result.stderr),
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "duration_ms": result.duration_ms,
        "container_id": result.container_id,
        "compile_output": as_text(result.compile_output),
        "compile_duration_ms": result.compile_duration_ms,
    }


def judge_in_sandboxes(execution: Execution) -> dict:
    """The fields of a judged execution's terminal row: its verdicts."""
    execution_id = str(execution.id)
    comparison = judging.Comparison.of(execution.comparison, execution.abs_tolerance, execution.rel_tolerance)
    judged = judge.judge(
        execution.language,
        execution.code,
        execution.tests,
        comparison,
        stop_on_first_failure=execution.stop_on_first_failure,
        files=execution.program_files(),
        limits=sandbox_limits(execution),
        labels={"rce.execution": execution_id},
        cancelled=lambda: store.cancel_requested(execution_id),
    )
    status = {"completed": Status.COMPLETED, "compilation_error": Status.COMPILATION_ERROR}.get(judged.status, Status.CANCELLED)
    return {
        **deciding_test_output(judged.results),
        "status": status,
        "verdict": judged.verdict,
        "tests_passed": judged.passed,
        "tests_failed": judged.failed,
        "test_results": judged.results,
        "duration_ms": judged.duration_ms,
        "compile_output": as_text(judged.compile_output),
        "compile_duration_ms": judged.compile_duration_ms,
    }


def deciding_test_output(results: list[dict]) -> dict:
    """The execution's own output fields: those of the test that decided its verdict (the first that
    failed, else the last that ran), so that a one-test judged execution reads like a plain run."""
    ran = [result for result in results if "stdout" in result]
    if not ran:
        return {}
    shown = next((result for result in ran if result["verdict"] != judging.ACCEPTED), ran[-1])
    return {name: shown[name] for name in ("stdout", "stderr", "stdout_truncated", "stderr_truncated", "exit_code")}


def requeue_unstarted(execution: Execution, worker: str, exc: Exception) -> str:
    """The engine failed before the script arrived, so it never ran: a platform fault, retried. The
    execution goes back to the queue as its next attempt, for any worker; this one takes no job until
    its engine answers again (executions.worker)."""
    log.warning("execution %s: the engine failed before the script arrived (%s); queued again", execution.id, exc)
    if not Execution.objects.requeue(execution):
        # Cancelled meanwhile: nothing ran, nothing to keep, and its end can be announced now.
        Execution.objects.settle_cancelled(execution.id)
        return "skipped"
    log_state(execution.id, Status.QUEUED, execution.tenant.name, worker, attempts=execution.attempts)
    try:
        # Admitted before, so not counted or checked again.
        scheduler.admit(
            execution.tenant_id, None, [(execution.id, execution.attempts, execution.weight)], [store.queued_state(execution)]
        )
    except redis.RedisError:
        # A queued row without its job: the reconciler queues it again (reconciler.requeue_lost).
        log.warning("execution %s: could not queue it again", execution.id, exc_info=True)
    return Status.QUEUED


def sandbox_limits(execution: Execution) -> runner.Limits:
    """The language's run limits with the execution's own, never above the language's maxima,
    whatever the row says: admission checked them, and this keeps a row written any other way
    within the catalog's."""
    language = languages.get(execution.language)
    if language is None:
        raise runner.SandboxError(f"unsupported language {execution.language!r}")
    base = runner.Limits.for_stage(language.limits)
    maxima = limits.language_maxima(language)
    return dataclasses.replace(
        base,
        timeout_seconds=min(maxima.timeout_seconds, execution.timeout_seconds or base.timeout_seconds),
        memory_mb=min(maxima.memory_mb, execution.memory_mb or base.memory_mb),
    )


def as_text(data: bytes) -> str:
    # Output is untrusted bytes: invalid UTF-8 becomes U+FFFD, and so does NUL, which PostgreSQL
    # cannot store in text.
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def finish(execution_id: str, fields: dict, execution: Execution | None = None) -> str:
    """Write the terminal status, or keep the result through a database outage. `execution`: the
    row as the worker read it when it claimed it, which the result is cached from (no query).

    After a few quick retries the result is parked in Redis, where every worker's maintenance pass
    writes it once the database is back. With Redis down too, this worker holds the result and
    keeps trying both for RESULT_HOLD_SECONDS.
    """
    fields["finished_at"] = timezone.now()
    deadline = time.monotonic() + RESULT_HOLD_SECONDS
    write = functools.partial(write_result, execution_id, fields, execution)
    try:
        return patiently(write, f"execution {execution_id}: result")
    except DatabaseError as exc:
        close_old_connections()
        failure = exc
    # Redis down too: keep trying both, at the longest retry delay.
    delay = DATABASE_RETRY_DELAYS[-1]
    while not store.park_result(execution_id, fields):
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


def write_result(execution_id: str, fields: dict, claimed: Execution | None = None) -> str:
    """Record the result, then cache and announce it: "stale" if the row was no longer running.

    `claimed` is the row as it was when the worker claimed it: nothing but the job changes a running
    row, so with `fields` it is the row just written, and the cached result needs no query.
    """
    ended = None
    if claimed is not None:
        ended = copy.copy(claimed)
        for name, value in fields.items():
            setattr(ended, name, value)
    if not Execution.objects.finish(execution_id, fields, ended):
        return "stale"
    cache_result(execution_id, ended)
    return fields["status"]


def apply_parked_results() -> int:
    """Write every result a worker parked during a database outage; the number written."""
    applied = 0
    for execution_id, fields in store.parked_results().items():
        fields["finished_at"] = parse_datetime(fields["finished_at"])
        recorded = Execution.objects.finish(execution_id, fields)
        # Out of the hash as soon as the row holds it, before readers are told it finished.
        store.unpark(execution_id)
        if recorded:
            cache_result(execution_id)
        else:
            # Cancelled meanwhile: it keeps its output, as in run().
            keep_cancelled_output(execution_id, fields)
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


def keep_cancelled_output(execution_id: str, fields: dict) -> bool:
    """If the row was cancelled, keep what the run printed until then and return True."""
    output = {name: fields[name] for name in CANCELLED_RUN_FIELDS if name in fields}
    if not Execution.objects.keep_cancelled_output(execution_id, output):
        return False
    cache_result(execution_id)
    return True


def cache_result(execution_id, execution: Execution | None = None) -> None:
    """Cache a finished execution's representation for reads, and announce it to waiting requests;
    `execution`: its row as written, if the caller has it (else it is read)."""
    if execution is None:
        try:
            execution = Execution.objects.get(id=execution_id)
        except DatabaseError:
            # The result is written; only the cache misses out.
            return
    store.cache_result(str(execution.id), execution.tenant_id, execution.to_dict(), execution.status)
