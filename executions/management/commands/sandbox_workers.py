from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from executions.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Run SANDBOX_SLOTS sandbox workers (rq workers on the sandbox queue), replace any that dies and "
        "settle what it held; SIGTERM or Ctrl-C stops them after the execution in hand."
    )

    def add_arguments(self, parser):
        parser.add_argument("--slots", type=int, help="how many workers (default: SANDBOX_SLOTS)")

    def handle(self, *args, slots: int | None = None, **options):
        Supervisor(slots or settings.SANDBOX_SLOTS).run()
