"""The queue format the scheduler writes itself, against real Redis and rq's own worker."""

from __future__ import annotations

import uuid
import zlib
from datetime import timedelta

import django_rq
import pytest
import redis
from django.conf import settings
from django.utils import timezone
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import get_call_string

from executions import reconciler, scheduler, store
from executions.models import Execution

QUOTAS = scheduler.Quotas(rate_per_minute=100, max_queued=100, max_running=1)


def backlog(tenant_id: int) -> list[str]:
    return [job.decode() for job in store.connection().lrange(scheduler.tenant_key(tenant_id, "backlog"), 0, -1)]


def dispatched(tenant_id: int) -> set[str]:
    return {job.decode() for job in store.connection().zrange(scheduler.tenant_key(tenant_id, "dispatched"), 0, -1)}


def both_queues() -> list:
    names = (settings.SANDBOX_EXPRESS_QUEUE, settings.SANDBOX_QUEUE)
    return [django_rq.get_queue(name, connection=store.connection()) for name in names]


def new_rows(persona, count: int) -> list[Execution]:
    return [Execution.objects.create(tenant=persona.tenant, language="python", code=f"print({i})") for i in range(count)]


def admit(persona, rows: list[Execution], quotas=QUOTAS):
    return scheduler.admit(persona.tenant.id, quotas, [(row.id, row.attempts) for row in rows])


def job_of(row: Execution) -> str:
    return scheduler.job_id(row.id, row.attempts)


def test_rqs_own_worker_runs_what_the_script_writes(alice, transactional_db):
    (row,) = new_rows(alice, 1)
    assert admit(alice, [row]) is None
    connection = store.connection()
    job = Job.fetch(job_of(row), connection=connection, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.get_status()) == (scheduler.JOB_FUNCTION, [str(row.id), alice.tenant.id], "queued")
    assert job.timeout == scheduler.job_timeout()
    # rq's plain SimpleWorker, not ours: the contract is with rq itself.
    SimpleWorker(both_queues(), connection=connection, serializer=JSONSerializer).work(burst=True)
    job = Job.fetch(job_of(row), connection=connection, serializer=JSONSerializer)
    assert (job.get_status(), job.return_value()) == (JobStatus.FINISHED, "completed")
    row.refresh_from_db()
    assert (row.status, row.stdout) == ("completed", "0\n")
    # The job freed its place when it ended.
    assert scheduler.counts(alice.tenant.id) == (0, 0)
    assert dispatched(alice.tenant.id) == set()


def test_the_job_hash_written_is_the_one_rq_makes(alice, settings):
    for timeout in (10, 30):
        settings.SANDBOX_TIMEOUT_SECONDS = timeout
        (row,) = new_rows(alice, 1)
        assert admit(alice, [row]) is None
        written = {name.decode(): value.decode("latin-1") for name, value in store.connection().hgetall(Job.key_for(job_of(row))).items()}
        made = scheduler.rq_job_fields(row.id, alice.tenant.id, row.attempts)
        # As Redis stores each value: redis-py's own encoding of it.
        encode = store.connection().get_encoder().encode
        made = {name: encode(value).decode("latin-1") for name, value in made.items()}
        times = ("created_at", "enqueued_at")
        # The call as rq's JSON serializer writes it, stored as it is where rq compresses it (rq's
        # Job.restore reads either).
        assert written["data"].encode("latin-1") == zlib.decompress(made["data"].encode("latin-1"))
        assert {name: value for name, value in written.items() if name not in (*times, "data")} == {
            name: value for name, value in made.items() if name not in (*times, "data")
        }
        assert all(written[name][:16] == made[name][:16] for name in times)
        assert written["timeout"] == str(scheduler.job_timeout())


@pytest.mark.parametrize("tenant_id", [7, None, 10**12])
def test_a_jobs_call_and_description_are_rqs(tenant_id):
    execution_id = uuid.uuid4()
    _, _, _, data, description = scheduler.job_args(execution_id, tenant_id, 1, 1, "stamp")
    call = (scheduler.JOB_FUNCTION, None, (str(execution_id), tenant_id), {})
    assert data == scheduler.queue().serializer.dumps(call)
    assert description == get_call_string(scheduler.JOB_FUNCTION, call[2], {})


def express() -> list[str]:
    return scheduler.express_queue().job_ids


def shared() -> list[str]:
    return scheduler.queue().job_ids


def take(jobs: list[str]) -> None:
    """What a worker does: take a job from a list, and let the next one in."""
    for job in jobs:
        store.connection().lrem(scheduler.queue().key, 1, job)
        store.connection().lrem(scheduler.express_queue().key, 1, job)
    scheduler.started()


def test_a_tenants_jobs_beyond_max_running_wait_in_its_backlog_in_order(alice):
    rows = new_rows(alice, 3)
    admit(alice, rows)
    assert (express(), shared()) == ([], [job_of(rows[0])])
    assert backlog(alice.tenant.id) == [job_of(rows[1]), job_of(rows[2])]
    assert scheduler.counts(alice.tenant.id) == (3, 3)
    take([job_of(rows[0])])
    assert (express(), shared()) == ([], [])
    scheduler.release(alice.tenant.id, job_of(rows[0]))
    # Its end lets the next one in.
    assert shared() == [job_of(rows[1])]
    assert backlog(alice.tenant.id) == [job_of(rows[2])]
    assert dispatched(alice.tenant.id) == {job_of(rows[1])}
    assert scheduler.counts(alice.tenant.id)[0] == 2


def test_the_next_job_comes_from_the_tenant_with_the_fewest_running(alice, bob):
    unlimited = scheduler.Quotas(rate_per_minute=100, max_queued=100, max_running=0)
    a, b = new_rows(alice, 6), new_rows(bob, 3)
    admit(alice, a, unlimited)
    # Alone, alice fills the shared list (READY jobs); the rest waits in her backlog.
    assert (express(), shared()) == ([], [job_of(a[0]), job_of(a[1])])
    admit(bob, b, unlimited)
    # Bob has nothing running while alice has: his first job goes express, ahead of all of hers.
    assert (express(), shared()) == ([job_of(b[0])], [job_of(a[0]), job_of(a[1])])
    take([job_of(b[0]), job_of(a[0]), job_of(a[1])])
    # Bob has 1 running, alice 2: bob's next first; then both have 2, and alice, served longer
    # ago, comes before bob.
    assert shared() == [job_of(b[1]), job_of(a[2])]
    take([job_of(b[1])])
    # Bob 2 (b0, b1), alice 3 (a0, a1, a2): bob again.
    assert shared() == [job_of(a[2]), job_of(b[2])]


def test_withdrawing_a_job_takes_it_out_of_every_list(alice):
    rows = new_rows(alice, 3)
    admit(alice, rows)
    scheduler.release(alice.tenant.id, job_of(rows[2]), withdraw=True)
    scheduler.release(alice.tenant.id, job_of(rows[0]), withdraw=True)
    assert (express(), shared()) == ([], [job_of(rows[1])])
    assert backlog(alice.tenant.id) == []
    assert scheduler.counts(alice.tenant.id) == (1, 1)
    assert not store.connection().exists(Job.key_for(job_of(rows[0])))
    # Releasing twice changes nothing.
    scheduler.release(alice.tenant.id, job_of(rows[0]), withdraw=True)
    assert scheduler.counts(alice.tenant.id) == (1, 1)


def test_a_requeue_is_neither_counted_nor_refused(alice):
    quotas = scheduler.Quotas(rate_per_minute=1, max_queued=1, max_running=3)
    rows = new_rows(alice, 3)
    assert admit(alice, rows[:1], quotas) is None
    assert admit(alice, rows[1:2], quotas).reason == scheduler.RATE_LIMITED
    assert scheduler.admit(alice.tenant.id, None, [(rows[2].id, 1)]) is None
    assert scheduler.counts(alice.tenant.id)[0] == 2
    # And it keeps the tenant's max_running.
    assert store.connection().get(scheduler.tenant_key(alice.tenant.id, "max-running")) == b"3"


def test_the_reconciler_frees_the_places_of_ended_executions(alice):
    rows = new_rows(alice, 3)
    admit(alice, rows)
    # As if the worker running rows[0] had died after its row was ended, and rows[1] were deleted.
    Execution.objects.filter(id=rows[0].id).update(status="error")
    Execution.objects.filter(id=rows[1].id).delete()
    assert reconciler.release_ended() == 0
    later = timezone.now() + reconciler.ORPHAN_GRACE + timedelta(seconds=1)
    assert reconciler.release_ended(later) == 2
    assert scheduler.counts(alice.tenant.id)[0] == 1
    # The one still queued moved up into the shared list.
    assert dispatched(alice.tenant.id) == {job_of(rows[2])}


def test_a_job_whose_row_is_gone_runs_nothing_and_frees_its_place(alice, transactional_db):
    (row,) = new_rows(alice, 1)
    admit(alice, [row])
    Execution.objects.filter(id=row.id).delete()
    connection = store.connection()
    SimpleWorker(both_queues(), connection=connection, serializer=JSONSerializer).work(burst=True)
    assert Job.fetch(job_of(row), connection=connection, serializer=JSONSerializer).return_value() == "skipped"
    assert scheduler.counts(alice.tenant.id) == (0, 0)


def test_a_group_admits_or_refuses_each_request_on_its_own(alice, bob):
    first, second, third = new_rows(alice, 3)
    (other,) = new_rows(bob, 1)
    one_queued = scheduler.Quotas(rate_per_minute=100, max_queued=1, max_running=0)
    two_a_minute = scheduler.Quotas(rate_per_minute=2, max_queued=100, max_running=0)
    refusals = scheduler.admit_each([
        (alice.tenant.id, one_queued, [(first.id, first.attempts)]),
        (alice.tenant.id, one_queued, [(second.id, second.attempts)]),
        (bob.tenant.id, two_a_minute, [(other.id, other.attempts)]),
        (alice.tenant.id, None, [(third.id, third.attempts)]),
    ])
    assert [refusal and refusal.reason for refusal in refusals] == [None, scheduler.QUOTA_EXCEEDED, None, None]
    assert refusals[1].value == 1
    connection = store.connection()
    assert [connection.exists(Job.key_for(job_of(row))) for row in (first, second, other, third)] == [1, 0, 1, 1]
    queued = set(backlog(alice.tenant.id)) | dispatched(alice.tenant.id)
    assert queued == {job_of(first), job_of(third)}
    assert set(backlog(bob.tenant.id)) | dispatched(bob.tenant.id) == {job_of(other)}
    # Bob's request was counted in his window, once: two more and he is over.
    assert scheduler.admit_each([(bob.tenant.id, two_a_minute, [])] * 2)[1].reason == scheduler.RATE_LIMITED


def admit_weighted(persona, rows: list[Execution], weights: list[int], quotas=QUOTAS):
    return scheduler.admit(persona.tenant.id, quotas, [(row.id, row.attempts, weight) for row, weight in zip(rows, weights)])


def test_a_judged_job_counts_its_sandboxes_against_max_running(alice, settings):
    settings.JUDGE_PARALLEL_TESTS = 2
    quotas = scheduler.Quotas(rate_per_minute=100, max_queued=100, max_running=3)
    judged, plain, later, last = new_rows(alice, 4)
    # 20 tests, two at a time: two sandboxes while it runs; then three plain runs.
    admit_weighted(alice, [judged, plain, later, last], [20, 1, 1, 1], quotas)
    assert shared() == [job_of(judged), job_of(plain)]
    take([job_of(judged), job_of(plain)])
    # Two sandboxes and one: the tenant's three. The next waits, though only two jobs run.
    assert shared() == [] and backlog(alice.tenant.id) == [job_of(later), job_of(last)]
    scheduler.release(alice.tenant.id, job_of(judged))
    assert shared() == [job_of(later), job_of(last)]
    assert store.connection().get(scheduler.tenant_key(alice.tenant.id, "running-extra")) == b"0"


def test_a_judged_job_heavier_than_max_running_still_runs_alone(alice, settings):
    settings.JUDGE_PARALLEL_TESTS = 4
    (judged, plain) = new_rows(alice, 2)
    admit_weighted(alice, [plain, judged], [1, 10])
    assert shared() == [job_of(plain)]
    take([job_of(plain)])
    assert shared() == [] and backlog(alice.tenant.id) == [job_of(judged)]
    scheduler.release(alice.tenant.id, job_of(plain))
    # max_running 1, the judged job four sandboxes: it runs once the tenant runs nothing else.
    assert shared() == [job_of(judged)]


def test_fairness_weighs_a_judged_job_by_its_sandboxes(alice, bob, settings):
    settings.JUDGE_PARALLEL_TESTS = 2
    unlimited = scheduler.Quotas(rate_per_minute=100, max_queued=100, max_running=0)
    a, b = new_rows(alice, 3), new_rows(bob, 3)
    admit_weighted(alice, a, [8, 1, 1], unlimited)
    admit_weighted(bob, b, [1, 1, 1], unlimited)
    assert (express(), shared()) == ([job_of(b[0])], [job_of(a[0]), job_of(a[1])])
    take([job_of(b[0]), job_of(a[0]), job_of(a[1])])
    # Alice runs three sandboxes (her judged job's two and a plain run's), more than twice bob's
    # one: his next goes express, ahead of hers (counted by jobs, her two against his one, it did
    # not); at two, his last shares the list with hers.
    assert (express(), shared()) == ([job_of(b[1])], [job_of(b[2]), job_of(a[2])])


def test_a_request_whose_job_cannot_be_written_is_refused_alone(alice, bob):
    first, blocked, third = new_rows(alice, 3)
    (other,) = new_rows(bob, 1)
    connection = store.connection()
    # A key in the way of the second job's hash: its write fails inside the admission script.
    connection.set(Job.key_for(job_of(blocked)), "in the way")
    refusals = scheduler.admit_each([
        (alice.tenant.id, QUOTAS, [(first.id, first.attempts)]),
        (alice.tenant.id, QUOTAS, [(third.id, third.attempts), (blocked.id, blocked.attempts)]),
        (bob.tenant.id, QUOTAS, [(other.id, other.attempts)]),
    ])
    assert [refusal and refusal.reason for refusal in refusals] == [None, scheduler.UNWRITTEN, None]
    assert "WRONGTYPE" in refusals[1].error
    # Its first job was taken back; the requests before and after it were admitted whole.
    assert [connection.exists(Job.key_for(job_of(row))) for row in (first, third, other)] == [1, 0, 1]
    assert set(backlog(alice.tenant.id)) | dispatched(alice.tenant.id) == {job_of(first)}
    assert scheduler.counts(alice.tenant.id)[0] == 1
    assert set(backlog(bob.tenant.id)) | dispatched(bob.tenant.id) == {job_of(other)}
    # Alone (admit(), as a batch and a requeue call it), it is Redis's error, as before.
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        scheduler.admit(alice.tenant.id, QUOTAS, [(blocked.id, blocked.attempts)])
