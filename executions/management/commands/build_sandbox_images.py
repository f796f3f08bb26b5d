from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from executions.sandbox import images
from executions.sandbox.runner import docker_api


class Command(BaseCommand):
    help = "Build the sandbox image if it is missing (from the Dockerfile, or offline from Debian)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild even if the image exists.")
        parser.add_argument(
            "--method",
            choices=["auto", "dockerfile", "offline"],
            default="auto",
            help="auto: the Dockerfile where a registry is reachable, else offline (mmdebstrap).",
        )

    def handle(self, *args, force: bool, method: str, **options):
        api = docker_api()
        image = images.sandbox_image()
        if images.image_exists(api, image) and not force:
            self.stdout.write(f"{image} exists")
            return
        self.stdout.write(
            f"building the sandbox image {image}: from image/Dockerfile where a registry answers, else "
            "offline from Debian's packages (mmdebstrap); about 1-3 minutes, once per recipe"
        )
        self.stdout.flush()
        try:
            used = images.build(api, image, method)
        except Exception as exc:
            raise CommandError(f"could not build {image}: {exc}") from exc
        self.stdout.write(f"built {image} ({used})")
