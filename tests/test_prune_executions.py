from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from executions.models import Batch, Delivery, DeliveryAttempt, Execution, Tenant


def execution(persona, days_old: float, status: str = "completed") -> str:
    row = Execution.objects.create(
        tenant=persona.tenant,
        language="python",
        code="print(1)",
        status=status,
        created_at=timezone.now() - timedelta(days=days_old),
    )
    return str(row.id)


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_executions", *args, stdout=out)
    return out.getvalue()


def remaining() -> set[str]:
    return {str(pk) for pk in Execution.objects.values_list("id", flat=True)}


def test_it_deletes_what_is_older_than_each_tenants_retention(alice, bob, settings):
    settings.TENANT_RETENTION_DAYS = 30
    Tenant.objects.filter(pk=bob.tenant.pk).update(retention_days=7)
    alice_old, alice_young = execution(alice, 31), execution(alice, 29)
    bob_old, bob_young = execution(bob, 8, "failed"), execution(bob, 6)
    output = prune()
    assert remaining() == {alice_young, bob_young}
    assert "alice: deleted 1" in output and "bob: deleted 1" in output
    assert alice_old not in remaining() and bob_old not in remaining()


def test_it_never_deletes_a_queued_or_running_execution(alice):
    kept = {execution(alice, 90, "queued"), execution(alice, 90, "running")}
    execution(alice, 90, "error")
    prune()
    assert remaining() == kept


def test_it_works_in_batches(alice):
    for _ in range(7):
        execution(alice, 40)
    young = execution(alice, 1)
    assert "deleted 7" in prune("--batch-size", "2")
    assert remaining() == {young}


def test_a_dry_run_deletes_nothing(alice):
    ids = {execution(alice, 40), execution(alice, 40)}
    assert "alice: would delete 2" in prune("--dry-run")
    assert remaining() == ids


def test_a_retention_of_zero_keeps_everything(alice):
    Tenant.objects.filter(pk=alice.tenant.pk).update(retention_days=0)
    ids = {execution(alice, 4000)}
    prune()
    assert remaining() == ids


def test_an_executions_webhook_deliveries_go_with_it(alice, settings):
    settings.TENANT_RETENTION_DAYS = 30
    old, young = execution(alice, 31), execution(alice, 1)
    for task_id in (old, young):
        delivery = Delivery.make(alice.tenant.id, "https://hooks.example/in", execution_id=task_id)
        delivery.record(500, "HTTP 500", 0.01, None)
    output = prune()
    assert "alice: deleted 1" in output
    assert list(Delivery.objects.values_list("execution_id", flat=True)) == [uuid.UUID(young)]
    assert DeliveryAttempt.objects.count() == 1


def batch_of(persona, days_old: float, count: int) -> tuple[Batch, list[str]]:
    created_at = timezone.now() - timedelta(days=days_old)
    batch = Batch.objects.create(tenant=persona.tenant, callback_url="https://hooks.example/in", created_at=created_at)
    ids = [execution(persona, days_old) for _ in range(count)]
    Execution.objects.filter(id__in=ids).update(batch=batch)
    delivery = Delivery.make(persona.tenant.id, batch.callback_url, batch_id=batch.id)
    delivery.payload()
    delivery.record(200, "", 0.01, None)
    return batch, ids


def test_a_batch_goes_with_its_last_execution_and_its_delivery_with_it(alice, settings):
    settings.TENANT_RETENTION_DAYS = 30
    old, _ = batch_of(alice, 31, 3)
    young, young_ids = batch_of(alice, 1, 2)
    # In batches of two rows: the old batch's last execution goes in the second.
    assert "alice: deleted 3" in prune("--batch-size", "2")
    assert list(Batch.objects.values_list("id", flat=True)) == [young.id]
    # Its delivery's body held the pruned executions' output.
    assert list(Delivery.objects.values_list("batch_id", flat=True)) == [young.id]
    assert DeliveryAttempt.objects.count() == 1
    assert remaining() == set(young_ids)


def test_a_batch_keeps_while_any_of_its_executions_does(alice, settings):
    settings.TENANT_RETENTION_DAYS = 30
    batch, (pruned, running) = batch_of(alice, 31, 2)
    Execution.objects.filter(id=running).update(status="running")
    prune()
    assert remaining() == {running}
    assert Batch.objects.filter(id=batch.id).exists() and Delivery.objects.filter(batch=batch).exists()


def test_a_batch_left_empty_earlier_goes_too(alice, settings):
    settings.TENANT_RETENTION_DAYS = 30
    old, ids = batch_of(alice, 31, 1)
    Execution.objects.filter(id__in=ids).delete()
    recent, _ = batch_of(alice, 1, 0)
    prune()
    assert list(Batch.objects.values_list("id", flat=True)) == [recent.id]
    assert list(Delivery.objects.values_list("batch_id", flat=True)) == [recent.id]


def test_a_dry_run_keeps_batches(alice, settings):
    settings.TENANT_RETENTION_DAYS = 30
    batch_of(alice, 31, 2)
    prune("--dry-run")
    assert Batch.objects.count() == 1 and Delivery.objects.count() == 1
