from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from executions.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "For `make run`: create the tenant `default` once, and print its key and a curl example."

    def handle(self, *args, **options):
        key_file = settings.VAR_DIR / "default_api_key"
        plain = key_file.read_text().strip() if key_file.exists() else ""
        tenant = Tenant.objects.filter(name="default").first()
        if tenant is None or not (plain and ApiKey.find(plain)):
            with transaction.atomic():
                tenant = tenant or Tenant.objects.create(name="default")
                _, plain = tenant.create_api_key(name="make run")
            # Kept so that the next `make run` can print it again; readable by this user only.
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(plain + "\n")
        port = os.environ.get("PORT", "8000")
        self.stdout.write(
            f"\nTenant 'default', API key (also in {key_file}):\n\n    {plain}\n\n"
            f"Try it:\n\n"
            f"    KEY={plain}\n"
            f"    curl -s -X POST -H \"Authorization: Bearer $KEY\" --data-binary \"print('hi')\" "
            f"http://localhost:{port}/api/v1/execute\n"
            f"    curl -s -H \"Authorization: Bearer $KEY\" http://localhost:{port}/api/v1/executions/<task_id>\n"
            f"\nOr in a browser, at http://localhost:{port}/, after `python manage.py add_member default USERNAME`.\n"
        )
