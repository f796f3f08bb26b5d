from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from executions import jobs, reconciler
from executions.models import Execution


def age(task_id: str, **delta) -> None:
    Execution.objects.filter(id=task_id).update(created_at=timezone.now() - timedelta(**delta))


def test_it_leaves_a_queued_execution_with_a_live_job_alone(alice):
    task_id = alice.submit("print(1)")
    age(task_id, minutes=10)
    assert reconciler.requeue_lost() == 0
    assert Execution.objects.get(id=task_id).attempts == 1


def test_it_leaves_a_young_queued_execution_alone(alice, redis_conn):
    task_id = alice.submit("print(1)")
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 0


def test_it_requeues_a_lost_job_once_then_gives_up(alice, redis_conn):
    task_id = alice.submit("print(1)")
    age(task_id, minutes=5)
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 1
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.attempts) == ("queued", 2)
    assert jobs.queue().job_ids == [f"execution-{task_id}-2"]
    redis_conn.flushdb()
    assert reconciler.requeue_lost() == 1
    execution = Execution.objects.get(id=task_id)
    assert execution.status == "error"
    assert "never ran" in execution.error and execution.finished_at is not None


def test_it_fails_an_execution_whose_worker_died(alice):
    stuck, fresh = alice.submit("print(1)"), alice.submit("print(2)")
    Execution.objects.filter(id=stuck).update(status="running", started_at=timezone.now() - timedelta(minutes=10))
    Execution.objects.filter(id=fresh).update(status="running", started_at=timezone.now())
    assert reconciler.fail_orphaned() == 1
    assert Execution.objects.get(id=stuck).status == "error"
    assert "worker" in Execution.objects.get(id=stuck).error
    assert Execution.objects.get(id=fresh).status == "running"


def test_a_late_result_never_overwrites_the_reconcilers_verdict(alice):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(status="running", started_at=timezone.now() - timedelta(hours=1))
    reconciler.fail_orphaned()
    assert jobs.finish(task_id, {"status": "completed", "exit_code": 0}) == "stale"
    assert Execution.objects.get(id=task_id).status == "error"
