from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from executions.models import Tenant


class Command(BaseCommand):
    help = "Create another API key for a tenant and print it as the last line of stdout."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The tenant's name.")
        parser.add_argument("--name", default="", help="A label for the key, e.g. where it is used.")

    def handle(self, *args, tenant: str, name: str, **options):
        row = Tenant.objects.filter(name=tenant).first()
        if row is None:
            raise CommandError(f"no tenant {tenant!r}")
        key, plain = row.create_api_key(name=name)
        self.stderr.write(f"Created key {key} for {tenant!r}. It is shown once; store it now.")
        self.stdout.write(plain)
