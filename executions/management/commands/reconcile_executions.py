from __future__ import annotations

from django.core.management.base import BaseCommand

from executions import reconciler
from executions.sandbox import janitor
from executions.sandbox.runner import docker_api


class Command(BaseCommand):
    help = "Re-queue executions whose job was lost, fail those whose worker died, remove stale containers."

    def handle(self, *args, **options):
        counts = reconciler.reconcile("reconcile_executions")
        if counts is None:
            self.stderr.write("another process is reconciling right now; run again later")
            counts = {}
        counts["containers_removed"] = len(janitor.sweep(docker_api()))
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
