"""Delete finished executions older than their tenant's retention, in small batches.

Safe to run from cron while the platform serves traffic: each batch is one short DELETE by
primary key in its own transaction, and only rows in a terminal status go, so a queued or running
execution (one a worker may be writing) is never touched. Their webhook deliveries go with them, and
so does a batch (with its delivery, whose body holds their output) once its last execution has gone.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from executions.models import Batch, Execution, Tenant


class Command(BaseCommand):
    help = "Delete finished executions older than each tenant's retention_days (0: keep for ever)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per DELETE (default 500).")
        parser.add_argument("--pause", type=float, default=0.0, help="Seconds to sleep between batches.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")

    def handle(self, *args, batch_size: int, pause: float, dry_run: bool, **options):
        now = timezone.now()
        total = 0
        for tenant in Tenant.objects.order_by("id").iterator():
            days = tenant.limits().retention_days
            if days <= 0:
                continue
            cutoff = now - timedelta(days=days)
            expired = self.expired(tenant, cutoff)
            if dry_run:
                count = expired.count()
            else:
                count = self.delete_in_batches(expired, batch_size, pause)
                # Batches left without executions by an earlier run, or by a version that kept them.
                self.delete_empty_batches(tenant, cutoff, batch_size, pause)
            if count:
                verb = "would delete" if dry_run else "deleted"
                self.stdout.write(f"{tenant.name}: {verb} {count} executions older than {days} days")
            total += count
        self.stdout.write(f"{'would delete' if dry_run else 'deleted'} {total} executions in all")

    def expired(self, tenant: Tenant, cutoff):
        return Execution.objects.owned_by(tenant).filter(
            created_at__lt=cutoff, status__in=Execution.TERMINAL_STATUSES
        )

    def delete_in_batches(self, expired, batch_size: int, pause: float) -> int:
        deleted = 0
        while True:
            rows = list(expired.order_by("created_at").values_list("id", "batch_id")[:batch_size])
            if not rows:
                return deleted
            ids = [execution_id for execution_id, _ in rows]
            batches = {batch_id for _, batch_id in rows if batch_id is not None}
            with transaction.atomic():
                # The conditions again, so that a row changed since it was read is left alone.
                # Their webhook deliveries go with them; only the executions are counted.
                _, by_model = expired.filter(id__in=ids).delete()
                # A batch whose last execution went, with its delivery.
                Batch.objects.filter(id__in=batches, executions__isnull=True).delete()
            deleted += by_model.get(Execution._meta.label, 0)
            if pause:
                time.sleep(pause)

    def delete_empty_batches(self, tenant: Tenant, cutoff, batch_size: int, pause: float) -> None:
        empty = Batch.objects.owned_by(tenant).filter(created_at__lt=cutoff, executions__isnull=True)
        while True:
            ids = list(empty.order_by("created_at").values_list("id", flat=True)[:batch_size])
            if not ids:
                return
            with transaction.atomic():
                empty.filter(id__in=ids).delete()
            if pause:
                time.sleep(pause)
