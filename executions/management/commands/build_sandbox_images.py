from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from executions.sandbox import images
from executions.sandbox.runner import docker_api


class Command(BaseCommand):
    help = "Build the sandbox images that are missing (from a Dockerfile, or offline from Debian)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild even if the images exist.")
        parser.add_argument(
            "--method",
            choices=["auto", "dockerfile", "offline"],
            default="auto",
            help="auto: a Dockerfile where a registry is reachable, else offline (mmdebstrap).",
        )
        # Downloads and unpacking overlap well: three at a time was quickest on 2 cores.
        parser.add_argument("--parallel", type=int, default=3, help="Images built at once (default 3).")

    def handle(self, *args, force: bool, method: str, parallel: int, **options):
        if images.settings.SANDBOX_IMAGE:
            self.stdout.write(f"SANDBOX_IMAGE is set ({images.settings.SANDBOX_IMAGE}): nothing to build")
            return
        failures = images.build_missing(docker_api(), method, force, parallel, self.stdout.write)
        if failures:
            raise CommandError("; ".join(failures))
