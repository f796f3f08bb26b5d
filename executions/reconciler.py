"""Find executions that lost their job or their worker, and move each to where it belongs.

A row `queued` whose job is gone from Redis is queued again once, then ends `error`. A row
`running` for longer than any run can take has lost its worker (killed, or its host died): it ends
`error`. Both use conditional UPDATEs, so a worker that is in fact alive never loses a result.
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
# How long past its deadline a running row waits before it is declared orphaned.
RUNNING_GRACE = timedelta(seconds=jobs.JOB_TIMEOUT_MARGIN_SECONDS)
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


def fail_orphaned(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SANDBOX_TIMEOUT_SECONDS) - RUNNING_GRACE
    fixed = 0
    orphaned = Execution.objects.filter(status=Status.RUNNING, started_at__lt=cutoff).select_related("tenant")
    for execution in orphaned.only("id", "worker_name", "tenant__name").iterator():
        if Execution.objects.filter(id=execution.id, status=Status.RUNNING).update(
            status=Status.ERROR,
            finished_at=now,
            error="the worker running this execution stopped before it finished",
        ):
            fixed += 1
            jobs.log_state(execution.id, Status.ERROR, execution.tenant.name, "reconciler", lost_worker=execution.worker_name)
    return fixed


def reconcile() -> dict[str, int]:
    return {"requeued_or_failed": requeue_lost(), "orphaned": fail_orphaned()}
