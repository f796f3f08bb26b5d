from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from executions.models import API_KEY_PREFIX, ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, named by its prefix (as the admin shows it) or by the whole key."

    def add_arguments(self, parser):
        parser.add_argument("key", help="rce_<prefix>_…, or the <prefix> alone.")

    def handle(self, *args, key: str, **options):
        # Only the lookup prefix is needed: an operator revoking a leaked key may not have all of it.
        prefix = key.removeprefix(API_KEY_PREFIX).partition("_")[0]
        row = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        if row is None:
            raise CommandError(f"no API key with prefix {prefix!r}")
        if not row.revoke():
            raise CommandError(f"key {row} of {row.tenant.name!r} was revoked already")
        self.stdout.write(f"Revoked key {row} of {row.tenant.name!r}.")
