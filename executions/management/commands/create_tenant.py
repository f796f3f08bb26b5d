from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from executions.models import Tenant


class Command(BaseCommand):
    help = "Create a tenant and print a new API key for it as the last line of stdout."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A short slug: letters, digits, - and _.")

    def handle(self, *args, name: str, **options):
        if Tenant.objects.filter(name=name).exists():
            raise CommandError(f"tenant {name!r} exists already")
        field = Tenant._meta.get_field("name")
        try:
            field.run_validators(name)
        except Exception as exc:
            raise CommandError(f"invalid tenant name {name!r}: use letters, digits, - and _") from exc
        with transaction.atomic():
            tenant = Tenant.objects.create(name=name)
            _, plain = tenant.create_api_key(name="created by create_tenant")
        self.stderr.write(f"Created tenant {name!r}. The key is shown once; store it now.")
        self.stdout.write(plain)
