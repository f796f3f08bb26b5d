"""A tenant's backlog and its long runs never stand in front of another tenant's new execution (real rq workers)."""

from __future__ import annotations

from executions import scheduler, store
from executions.models import Execution
from tests.conftest import listed_jobs, start_workers, stop_workers, wait_for_status

SLEEP = "import time; time.sleep(0.3)"
TERMINAL = set(Execution.TERMINAL_STATUSES)


def backlog(persona) -> int:
    return store.connection().llen(scheduler.tenant_key(persona.tenant.id, "backlog"))


def test_a_backlog_beyond_max_running_waits_outside_the_queue(alice, bob):
    alice.tenant.max_running = 2
    alice.tenant.save()
    for _ in range(5):
        alice.submit("print(1)")
    bob.submit("print(2)")
    # Two of alice's in the shared queue, then bob's; alice's other three wait their turn.
    assert len(listed_jobs()) == 3
    assert (backlog(alice), backlog(bob)) == (3, 0)
    assert scheduler.counts(alice.tenant.id) == (5, 6)


def test_another_tenant_starts_before_the_backlog(alice, bob, transactional_db):
    alice.tenant.max_running = 2
    alice.tenant.save()
    backlog = [alice.submit(SLEEP) for _ in range(20)]
    workers = start_workers(2)
    try:
        wait_for_status(backlog[0], {"running", *TERMINAL})
        before = Execution.objects.filter(tenant=alice.tenant).exclude(status="queued").count()
        task_id = bob.submit("print('bob')")
        mine = wait_for_status(task_id, TERMINAL, timeout=60)
        ahead = Execution.objects.filter(tenant=alice.tenant, started_at__lt=mine.started_at).count()
    finally:
        stop_workers(workers)
    assert mine.status == "completed"
    # Only the jobs of alice's already in the queue or running may start first (plus one per
    # worker for a dequeue race), not the rest of her backlog.
    assert ahead <= before + 2 + len(workers), (ahead, before)
    assert Execution.objects.filter(tenant=alice.tenant, status="queued").count() > 0


def test_max_running_holds_the_excess_in_the_queue(alice, three_workers):
    alice.tenant.max_running = 1
    alice.tenant.save()
    task_ids = [alice.submit(SLEEP) for _ in range(4)]
    runs = [wait_for_status(task_id, TERMINAL, timeout=60) for task_id in task_ids]
    assert [run.status for run in runs] == ["completed"] * 4
    # With one slot, no two of her runs overlap, although three workers were free.
    spans = sorted((run.started_at, run.finished_at) for run in runs)
    for (_, finished), (started, _) in zip(spans, spans[1:]):
        assert finished <= started


def test_a_tenants_first_run_takes_the_reserve_while_another_fills_every_slot(alice, bob, transactional_db):
    loops = [alice.submit("import time; time.sleep(4)") for _ in range(6)]
    workers = start_workers(2) + start_workers(1, "sandbox-express")
    try:
        # Alice alone uses every slot.
        for task_id in loops[:2]:
            wait_for_status(task_id, {"running"}, timeout=60)
        task_id = bob.submit("print('bob')")
        mine = wait_for_status(task_id, TERMINAL, timeout=60)
        # The reserve ran it at once, while alice's first runs still ran and her backlog waited.
        assert mine.status == "completed"
        first_ended = Execution.objects.get(id=loops[0]).finished_at
        running_then = Execution.objects.filter(tenant=alice.tenant, started_at__lt=mine.started_at).count()
    finally:
        stop_workers(workers)
    assert first_ended is None or mine.finished_at < first_ended
    assert running_then == 2
