from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from executions.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Run SANDBOX_SLOTS sandbox workers (rq workers on the sandbox queues) and SANDBOX_RESERVE_SLOTS more "
        "for tenants' first runs, and WEBHOOK_WORKERS webhook workers; replace any that dies and settle what "
        "it held; SIGTERM or Ctrl-C stops them after the execution in hand."
    )

    def add_arguments(self, parser):
        parser.add_argument("--slots", type=int, help="how many workers (default: SANDBOX_SLOTS)")
        parser.add_argument("--reserve", type=int, help="how many in reserve (default: SANDBOX_RESERVE_SLOTS)")

    def handle(self, *args, slots: int | None = None, reserve: int | None = None, **options):
        reserve = settings.SANDBOX_RESERVE_SLOTS if reserve is None else reserve
        Supervisor(slots or settings.SANDBOX_SLOTS, reserve, webhook_workers=settings.WEBHOOK_WORKERS).run()
