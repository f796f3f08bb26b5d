"""Find executions that lost their job or their worker, and move each to where it belongs.

A row `queued` whose job is gone from Redis is queued again once, then ends `error`. A row
`running` has lost its worker when the worker's heartbeat key has expired (killed, or its host
died), or when it has run longer than any run can take (a hung worker): it is queued again once if
its sandbox never started, and ends `error` otherwise. Every change is a conditional UPDATE, so a
worker that is in fact alive never loses a result.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from executions import jobs
from executions.models import Execution

Status = Execution.Status

# A queued row younger than this may still be between its INSERT and its enqueue.
QUEUED_GRACE = timedelta(seconds=60)
# How long past its deadline a running row waits before it is declared orphaned, worker or not.
RUNNING_GRACE = timedelta(seconds=jobs.JOB_TIMEOUT_MARGIN_SECONDS)
# A running row this old whose worker has no heartbeat has lost its worker.
ORPHAN_GRACE = timedelta(seconds=30)
# Every worker refreshes this key while it lives (executions/worker.py).
ALIVE_KEY = "rce:worker-alive:{}"
MAX_ATTEMPTS = 2
LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_is_live(execution: Execution) -> bool:
    connection = jobs.queue().connection
    try:
        job = Job.fetch(f"execution-{execution.id}-{execution.attempts}", connection=connection)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in LIVE_JOB_STATUSES


def requeue_lost(now=None) -> int:
    now = now or timezone.now()
    fixed = 0
    stale = Execution.objects.filter(status=Status.QUEUED, created_at__lt=now - QUEUED_GRACE)
    for execution in stale.select_related("tenant").only("id", "attempts", "status", "tenant__name").iterator():
        if job_is_live(execution):
            continue
        if execution.attempts >= MAX_ATTEMPTS:
            state = Status.ERROR
            updated = Execution.objects.filter(id=execution.id, status=Status.QUEUED).update(
                status=state, finished_at=now, error="the execution's job was lost twice; it never ran"
            )
            if updated:
                jobs.cache_result(execution.id)
        else:
            state = Status.QUEUED
            updated = Execution.objects.filter(
                id=execution.id, status=Status.QUEUED, attempts=execution.attempts
            ).update(attempts=execution.attempts + 1)
            if updated:
                execution.attempts += 1
                jobs.enqueue(execution)
        if updated:
            jobs.log_state(execution.id, state, execution.tenant.name, "reconciler", attempts=execution.attempts)
            fixed += updated
    return fixed


def worker_is_alive(name: str) -> bool:
    return bool(name) and bool(jobs.queue().connection.exists(ALIVE_KEY.format(name)))


def fail_orphaned(now=None) -> int:
    now = now or timezone.now()
    hung = now - timedelta(seconds=settings.SANDBOX_TIMEOUT_SECONDS) - RUNNING_GRACE
    fixed = 0
    running = Execution.objects.filter(status=Status.RUNNING, started_at__lt=now - ORPHAN_GRACE)
    for execution in running.select_related("tenant").iterator():
        if execution.started_at >= hung and worker_is_alive(execution.worker_name):
            continue
        if not execution.container_id and execution.attempts < MAX_ATTEMPTS:
            # Its sandbox was never created, so the script never ran: it may run once more.
            state = Status.QUEUED
            updated = Execution.objects.filter(id=execution.id, status=Status.RUNNING).update(
                status=state, started_at=None, worker_name="", attempts=execution.attempts + 1
            )
            if updated:
                execution.attempts += 1
                jobs.enqueue(execution)
        else:
            state = Status.ERROR
            updated = Execution.objects.filter(id=execution.id, status=Status.RUNNING).update(
                status=state, finished_at=now, error="the worker running this execution stopped before it finished"
            )
            if updated:
                # Cached and announced like any result, for readers and requests waiting on it.
                jobs.cache_result(execution.id)
        if updated:
            fixed += 1
            jobs.log_state(
                execution.id, state, execution.tenant.name, "reconciler", lost_worker=execution.worker_name
            )
    return fixed


def reconcile() -> dict[str, int]:
    return {"requeued_or_failed": requeue_lost(), "orphaned": fail_orphaned()}
