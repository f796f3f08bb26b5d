"""Find executions that lost their job or their worker, and move each to where it belongs.

A row `queued` whose job is gone from Redis is queued again, then ends `error` once its attempts
(runs.MAX_ATTEMPTS, shared with the engine's refusals) are spent. A row `running` has lost its
worker when the worker's heartbeat key has expired (killed, or its host died), when its supervisor
has reaped the worker's process (release_dead_worker, at once), or when it has run longer than any
run can take (a hung worker): it is queued again, within the same attempts, if its sandbox never
started, and ends `error` otherwise. A run cancelled while running whose worker never wrote its
output has its end announced without it after SETTLE_GRACE. Every change is a conditional UPDATE,
so a worker that is in fact alive never loses a result. Results that workers parked in Redis while the
database was down are written first.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from itertools import islice

from django.utils import timezone
from redis.exceptions import LockError, LockNotOwnedError
from rq.job import Job, JobStatus

from executions import limits, runs, scheduler, store
from executions.models import Execution, log_state
from executions.sandbox import janitor
from executions.sandbox.runner import docker_api

log = logging.getLogger(__name__)
Status = Execution.Status

# A queued row younger than this may still be between its INSERT and its enqueue; a job a worker
# took from a list this long ago and never started was taken by a worker that is gone (a live one
# starts it within milliseconds). It was 60 s: a host lost while one of its workers waited on a pop
# kept the job Redis handed that pop for a minute more than its running executions.
QUEUED_GRACE = timedelta(seconds=15)
# How long past its deadline a running row waits before it is declared orphaned, worker or not.
RUNNING_GRACE = timedelta(seconds=scheduler.JOB_TIMEOUT_MARGIN_SECONDS)
# A running row this old whose worker has no heartbeat has lost its worker.
ORPHAN_GRACE = timedelta(seconds=30)
# How long a run cancelled while running waits for its worker to write its output (Execution.output_pending)
# before its end is announced without it: its worker stops the sandbox within a second or so.
SETTLE_GRACE = timedelta(seconds=30)
# Every worker refreshes this key while it lives (executions/worker.py).
ALIVE_KEY = "rce:worker-alive:{}"
# Every worker runs the pass; one at a time is enough, and a backlog makes each pass longer.
LOCK_KEY = "rce:reconciler-lock"
# The pass renews its lock between its steps and batches: a holder lost mid-pass (its host stopped)
# keeps the other workers' passes out this long at most, well within the bound for settling a lost
# worker's execution (README, "Slots and supervision").
LOCK_SECONDS = 15
BATCH = 500
# A job waiting in its tenant's backlog (executions.scheduler) is `queued` too.
LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def live_jobs(executions: list[Execution]) -> set[str]:
    """The ids of these executions whose current job is still queued or running: one round trip.

    A queued job waits in its tenant's backlog or in a list. One dispatched more than QUEUED_GRACE
    ago that is in neither list and never started was taken by a worker that is gone: Redis hands a
    blocked pop's job to a connection it has not yet seen die, as a lost host's workers' are, and
    rq's blocking pop over two lists keeps no copy.
    """
    connection = store.connection()
    pipeline = connection.pipeline(transaction=False)
    for execution in executions:
        job = scheduler.job_id(execution.id, execution.attempts)
        pipeline.hget(Job.key_for(job), "status")
        pipeline.zscore(scheduler.tenant_key(execution.tenant_id, "dispatched"), job)
    pipeline.lrange(scheduler.queue().key, 0, -1)
    pipeline.lrange(scheduler.express_queue().key, 0, -1)
    *replies, shared, express = pipeline.execute()
    listed = {job.decode() for job in shared + express}
    taken_before = time.time() - QUEUED_GRACE.total_seconds()
    live = set()
    for execution, status, dispatched_at in zip(executions, replies[0::2], replies[1::2]):
        if status is None or JobStatus(status.decode()) not in LIVE_JOB_STATUSES:
            continue
        taken = dispatched_at is not None and scheduler.job_id(execution.id, execution.attempts) not in listed
        if JobStatus(status.decode()) == JobStatus.QUEUED and taken and dispatched_at < taken_before:
            continue
        live.add(str(execution.id))
    return live


def batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch


def requeue_lost(now=None, renew: Callable[[], None] = lambda: None) -> int:
    now = now or timezone.now()
    fixed = 0
    stale = Execution.objects.filter(status=Status.QUEUED, created_at__lt=now - QUEUED_GRACE)
    rows = stale.select_related("tenant").only("id", "attempts", "status", "tenant").order_by("created_at")
    # A backlog of thousands of queued rows is normal under a burst: check their jobs in batches.
    for batch in batched(rows.iterator(chunk_size=BATCH), BATCH):
        renew()
        live = live_jobs(batch)
        fixed += sum(requeue_or_fail(execution) for execution in batch if str(execution.id) not in live)
    return fixed


def requeue_or_fail(execution: Execution) -> int:
    if execution.attempts >= runs.MAX_ATTEMPTS:
        state = Status.ERROR
        updated = fail(execution, Status.QUEUED, f"the execution's job was lost after {execution.attempts} attempts; it never ran")
    else:
        state = Status.QUEUED
        updated = requeue(execution)
    if updated:
        log_state(execution.id, state, execution.tenant.name, "reconciler", attempts=execution.attempts)
    return int(updated)


def requeue(execution: Execution) -> bool:
    """Queue the execution's next attempt; its lost job's place is freed first."""
    lost = scheduler.job_id(execution.id, execution.attempts)
    if not Execution.objects.requeue(execution):
        return False
    scheduler.release(execution.tenant_id, lost, withdraw=True)
    # Reads go to the row (this one holds too few fields to write the queued state) until a worker
    # claims it again.
    store.forget_states([execution.id])
    # Admitted before, so not counted or checked again.
    scheduler.admit(execution.tenant_id, None, [(execution.id, execution.attempts, execution.weight)])
    return True


def fail(execution: Execution, expected: str, message: str) -> bool:
    """End the execution `error` if it is still `expected`, and free its place in the scheduler."""
    if not Execution.objects.fail(execution.id, expected, message):
        return False
    scheduler.release(execution.tenant_id, scheduler.job_id(execution.id, execution.attempts), withdraw=True)
    # Cached and announced like any result, for readers and requests waiting on it (?wait=N).
    runs.cache_result(execution.id)
    return True


def worker_is_alive(name: str) -> bool:
    return bool(name) and bool(store.connection().exists(ALIVE_KEY.format(name)))


def fail_orphaned(now=None) -> int:
    now = now or timezone.now()
    hung = now - timedelta(seconds=limits.longest_execution_seconds()) - RUNNING_GRACE
    # A judged execution runs its tests one sandbox after another: it has longer.
    hung_judged = now - timedelta(seconds=limits.longest_judging_seconds()) - RUNNING_GRACE
    fixed = 0
    running = Execution.objects.filter(status=Status.RUNNING, started_at__lt=now - ORPHAN_GRACE)
    for execution in running.select_related("tenant").iterator():
        cutoff = hung_judged if execution.is_judged else hung
        if execution.started_at >= cutoff and worker_is_alive(execution.worker_name):
            continue
        fixed += settle_orphan(execution)
    return fixed


def release_dead_worker(name: str) -> int:
    """Settle the executions of a worker process known to be dead, at once; how many changed.

    Its supervisor has reaped it (executions/supervisor.py), so it writes nothing more: no heartbeat
    needs to expire and no grace to pass. Its sandboxes go first, so that an execution queued again
    never meets its predecessor's container, and no sandbox runs on without a worker.
    """
    janitor.sweep_worker(docker_api(), name)
    fixed = 0
    running = Execution.objects.filter(status=Status.RUNNING, worker_name=name).select_related("tenant")
    for execution in running:
        janitor.sweep_execution(docker_api(), str(execution.id))
        fixed += settle_orphan(execution)
    # Its runs cancelled while running will never get their output from it.
    for execution_id in Execution.objects.filter(output_pending=True, worker_name=name).values_list("id", flat=True):
        fixed += Execution.objects.settle_cancelled(execution_id)
    return fixed


def settle_orphan(execution: Execution) -> int:
    """A running execution whose worker is gone: queued again if its sandbox never started, else `error`."""
    if store.is_parked(execution.id):
        # Finished during a database outage: its result is on its way.
        return 0
    if not execution.container_id and execution.attempts < runs.MAX_ATTEMPTS:
        # Its sandbox was never created, so the script never ran: it may run once more.
        state = Status.QUEUED
        updated = requeue(execution)
    else:
        state = Status.ERROR
        updated = fail(execution, Status.RUNNING, "the worker running this execution stopped before it finished")
    if updated:
        log_state(execution.id, state, execution.tenant.name, "reconciler", lost_worker=execution.worker_name)
    return int(updated)


def settle_cancelled(now=None) -> int:
    """Announce the end of the runs cancelled while running whose worker has not written their output
    within SETTLE_GRACE (it died, or is stuck): without it, rather than never. The number settled."""
    now = now or timezone.now()
    owed = Execution.objects.filter(output_pending=True, finished_at__lt=now - SETTLE_GRACE).order_by("finished_at")
    return sum(Execution.objects.settle_cancelled(execution_id) for execution_id in owed.values_list("id", flat=True)[:BATCH])


def reconcile(owner: str = "") -> dict[str, int] | None:
    """One pass over everything, by one process at a time; None if another one holds the pass.

    The lock is redis-py's (a token of its own, renewed and released only by its holder). A pass
    whose lock expired and went to another process stops at its next renewal (LockNotOwnedError).
    """
    lock = store.connection().lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(token=f"{owner or 'reconciler'} {uuid.uuid4().hex}"):
        return None
    try:
        # Parked results first: a row whose result is waiting in Redis has not lost its worker.
        done = {"parked_results_written": runs.apply_parked_results()}
        lock.reacquire()
        done["requeued_or_failed"] = requeue_lost(renew=lock.reacquire)
        lock.reacquire()
        done["orphaned"] = fail_orphaned()
        lock.reacquire()
        done["cancels_settled"] = settle_cancelled()
        lock.reacquire()
        done["places_freed"] = release_ended()
        return done
    except LockNotOwnedError:
        log.warning("reconciler: the pass outlived its lock (%d s) and stopped; another one goes on", LOCK_SECONDS)
        return None
    finally:
        try:
            lock.release()
        except LockError:
            # It expired, and maybe went to another pass: not ours to remove.
            pass


def release_ended(now=None) -> int:
    """Free the scheduler places of jobs whose execution has ended or is gone; the number freed.

    A worker frees its job's place when the job ends; one that could not (Redis unreachable then)
    leaves the place taken, and its tenant one execution short of its quotas, until this pass.
    """
    connection = store.connection()
    cutoff = (now or timezone.now()).timestamp() - ORPHAN_GRACE.total_seconds()
    freed = 0
    for key in connection.scan_iter(match=scheduler.tenant_key("*", "inflight"), count=BATCH):
        tenant_id = int(key.decode().split(":")[2])
        old = [member.decode() for member in connection.zrangebyscore(key, "-inf", cutoff)]
        by_execution = {scheduler.execution_of(job): job for job in old}
        live = Execution.objects.filter(id__in=list(by_execution), status__in=Execution.CANCELLABLE_STATUSES)
        for execution_id in set(by_execution) - {str(pk) for pk in live.values_list("id", flat=True)}:
            scheduler.release(tenant_id, by_execution[execution_id], withdraw=True)
            freed += 1
    return freed
