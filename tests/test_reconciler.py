from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from executions import reconciler, runs, scheduler, store
from executions.models import Execution
from tests.conftest import listed_jobs


def age(task_id: str, **delta) -> None:
    Execution.objects.filter(id=task_id).update(created_at=timezone.now() - timedelta(**delta))


def test_it_leaves_a_queued_execution_with_a_live_job_alone(alice):
    task_id = alice.submit("print(1)")
    age(task_id, minutes=10)
    assert reconciler.requeue_lost() == 0
    assert Execution.objects.get(id=task_id).attempts == 1


def test_it_leaves_a_young_queued_execution_alone(alice, redis_conn):
    alice.submit("print(1)")
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 0


def test_it_requeues_a_lost_job_until_the_attempts_run_out(alice, redis_conn):
    task_id = alice.submit("print(1)")
    age(task_id, minutes=5)
    for attempt in range(2, runs.MAX_ATTEMPTS + 1):
        redis_conn.flushdb()
        assert reconciler.requeue_lost() == 1
        execution = Execution.objects.get(id=task_id)
        assert (execution.status, execution.attempts) == ("queued", attempt)
        assert listed_jobs() == [f"execution-{task_id}-{attempt}"]
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 1
    execution = Execution.objects.get(id=task_id)
    assert execution.status == "error"
    assert "never ran" in execution.error and execution.finished_at is not None


def test_a_job_lost_after_an_engine_fault_is_queued_again(alice, redis_conn):
    # One budget of attempts for every platform fault: the engine's refusal queued it again once
    # (attempts 2); its job lost then is a first loss, not a second.
    task_id = alice.submit("print(1)")
    execution = Execution.objects.get(id=task_id)
    runs.requeue_unstarted(execution, "worker-1", RuntimeError("engine refused"))
    age(task_id, minutes=5)
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 1
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.attempts) == ("queued", 3)
    assert listed_jobs() == [f"execution-{task_id}-3"]


def test_it_requeues_a_job_that_a_lost_worker_took_from_the_list(alice, redis_conn):
    taken, fresh = alice.submit("print(1)"), alice.submit("print(2)")
    age(taken, minutes=5)
    age(fresh, minutes=5)
    # Both were dispatched; a worker's blocking pop took both, over connections whose hosts are gone.
    assert listed_jobs() == [f"execution-{taken}-1", f"execution-{fresh}-1"]
    redis_conn.delete(scheduler.queue().key)
    dispatched = scheduler.tenant_key(alice.tenant.id, "dispatched")
    redis_conn.zadd(dispatched, {f"execution-{taken}-1": time.time() - 61})
    assert reconciler.requeue_lost() == 1
    assert Execution.objects.get(id=taken).attempts == 2
    # Taken within the grace: its worker may be about to start it.
    assert Execution.objects.get(id=fresh).attempts == 1
    assert f"execution-{taken}-2" in listed_jobs()


def running(task_id: str, seconds_ago: float, worker: str = "w1", container: str = "c1") -> None:
    Execution.objects.filter(id=task_id).update(
        status="running",
        started_at=timezone.now() - timedelta(seconds=seconds_ago),
        worker_name=worker,
        container_id=container,
    )


def test_it_fails_an_execution_whose_worker_died(alice):
    stuck, fresh = alice.submit("print(1)"), alice.submit("print(2)")
    running(stuck, seconds_ago=40)
    running(fresh, seconds_ago=1)
    assert reconciler.fail_orphaned() == 1
    assert Execution.objects.get(id=stuck).status == "error"
    assert "worker" in Execution.objects.get(id=stuck).error
    assert Execution.objects.get(id=fresh).status == "running"


def test_it_leaves_a_live_workers_execution_alone_until_no_run_could_last_that_long(alice, redis_conn):
    task_id = alice.submit("print(1)")
    running(task_id, seconds_ago=60, worker="alive")
    redis_conn.set(reconciler.ALIVE_KEY.format("alive"), 1)
    assert reconciler.fail_orphaned() == 0
    running(task_id, seconds_ago=600, worker="alive")
    assert reconciler.fail_orphaned() == 1
    assert Execution.objects.get(id=task_id).status == "error"


def test_it_runs_again_an_execution_whose_sandbox_never_started_until_the_attempts_run_out(alice, redis_conn):
    task_id = alice.submit("print(1)")
    for attempt in range(2, runs.MAX_ATTEMPTS + 1):
        redis_conn.flushdb()
        running(task_id, seconds_ago=40, container="")
        assert reconciler.fail_orphaned() == 1
        execution = Execution.objects.get(id=task_id)
        assert (execution.status, execution.attempts, execution.started_at) == ("queued", attempt, None)
        assert listed_jobs() == [f"execution-{task_id}-{attempt}"]
    # Lost once more, it ends in error.
    running(task_id, seconds_ago=40, container="")
    assert reconciler.fail_orphaned() == 1
    assert Execution.objects.get(id=task_id).status == "error"


def test_a_late_result_never_overwrites_the_reconcilers_verdict(alice):
    task_id = alice.submit("print(1)")
    running(task_id, seconds_ago=3600)
    reconciler.fail_orphaned()
    assert runs.finish(task_id, {"status": "completed", "exit_code": 0}) == "stale"
    assert Execution.objects.get(id=task_id).status == "error"


def test_a_parked_result_is_written_by_the_next_pass_and_keeps_its_row_from_being_failed(alice):
    task_id = alice.submit("print(1)")
    running(task_id, seconds_ago=3600)
    # What a worker does when the database refuses its result.
    assert store.park_result(task_id, {"status": "completed", "exit_code": 0, "stdout": "1\n", "finished_at": timezone.now()})
    assert reconciler.fail_orphaned() == 0
    assert reconciler.reconcile()["parked_results_written"] == 1
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.stdout, execution.exit_code) == ("completed", "1\n", 0)
    assert execution.finished_at is not None
    assert not store.is_parked(task_id)
    assert reconciler.reconcile()["parked_results_written"] == 0


def test_one_pass_at_a_time(alice, redis_conn):
    redis_conn.set(reconciler.LOCK_KEY, "another-worker")
    assert reconciler.reconcile() is None
    redis_conn.delete(reconciler.LOCK_KEY)
    assert reconciler.reconcile() == {
        "parked_results_written": 0, "requeued_or_failed": 0, "orphaned": 0, "cancels_settled": 0, "places_freed": 0
    }
    assert not redis_conn.exists(reconciler.LOCK_KEY)


def test_it_checks_a_large_backlog_in_batches_and_requeues_only_the_lost(alice, redis_conn):
    old = timezone.now() - timedelta(minutes=10)
    rows = Execution.objects.bulk_create(
        Execution(tenant=alice.tenant, language="python", code=f"print({i})") for i in range(1200)
    )
    Execution.objects.update(created_at=old)
    kept = rows[::2]
    for execution in kept:
        scheduler.admit(alice.tenant.id, None, [(execution.id, execution.attempts)])
    assert reconciler.requeue_lost() == 600
    attempts = dict(Execution.objects.values_list("id", "attempts"))
    assert {attempts[execution.id] for execution in kept} == {1}
    assert {attempts[execution.id] for execution in rows[1::2]} == {2}
    assert len(reconciler.live_jobs(list(Execution.objects.all()))) == 1200


def test_it_settles_a_reaped_workers_executions_at_once(alice, redis_conn):
    lost, never_started, other = alice.submit("print(1)"), alice.submit("print(2)"), alice.submit("print(3)")
    # Younger than any grace, and with a heartbeat key still there: its supervisor saw it die.
    running(lost, seconds_ago=1, worker="dead")
    running(never_started, seconds_ago=1, worker="dead", container="")
    running(other, seconds_ago=1, worker="alive")
    redis_conn.set(reconciler.ALIVE_KEY.format("dead"), 1)
    assert reconciler.release_dead_worker("dead") == 2
    assert Execution.objects.get(id=lost).status == "error"
    assert Execution.objects.get(id=never_started).status == "queued"
    assert Execution.objects.get(id=other).status == "running"


def test_a_pass_keeps_its_lock_short_and_renews_it(alice, redis_conn, monkeypatch):
    # A holder lost mid-pass (its host stopped) keeps the others out LOCK_SECONDS at most.
    seen = []
    monkeypatch.setattr(reconciler, "fail_orphaned", lambda: seen.append(redis_conn.pttl(reconciler.LOCK_KEY)) or 0)
    assert reconciler.reconcile("worker-1")["orphaned"] == 0
    assert 0 < seen[0] <= reconciler.LOCK_SECONDS * 1000 <= 30_000
    assert not redis_conn.exists(reconciler.LOCK_KEY)


def test_a_pass_that_lost_its_lock_stops_and_leaves_the_new_holders_lock(alice, redis_conn, monkeypatch):
    def taken_over():
        redis_conn.set(reconciler.LOCK_KEY, "another-worker")
        return 0

    monkeypatch.setattr(reconciler, "fail_orphaned", taken_over)
    monkeypatch.setattr(reconciler, "release_ended", lambda: pytest.fail("the pass went on without its lock"))
    assert reconciler.reconcile("worker-1") is None
    assert redis_conn.get(reconciler.LOCK_KEY) == b"another-worker"
