from __future__ import annotations

import getpass
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from executions.models import Membership, Tenant


class Command(BaseCommand):
    help = (
        "Let a user sign in to the browser page for a tenant, creating the user if needed. "
        "A new user's password is asked for, or read from stdin with --password-stdin; never an argument."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The tenant's name.")
        parser.add_argument("username")
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read a new user's password from the first line of stdin."
        )

    def handle(self, *args, tenant: str, username: str, password_stdin: bool, **options):
        found = Tenant.objects.filter(name=tenant).first()
        if found is None:
            raise CommandError(f"no tenant {tenant!r}; create it with create_tenant")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        # Ask for the password before writing anything, so that a refusal leaves nothing half-done.
        password = None if user else self.new_password(username, password_stdin)
        with transaction.atomic():
            if user is None:
                user = User.objects.create_user(username=username, password=password)
                self.stderr.write(f"Created user {username!r}.")
            _, created = Membership.objects.get_or_create(user=user, tenant=found)
        state = "is now" if created else "was already"
        self.stderr.write(f"{username!r} {state} a member of tenant {tenant!r}: sign in at /login/.")

    def new_password(self, username: str, from_stdin: bool) -> str:
        if from_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif sys.stdin.isatty():
            password = getpass.getpass(f"Password for {username}: ")
            if getpass.getpass("Again: ") != password:
                raise CommandError("the passwords differ")
        else:
            raise CommandError("a new user needs a password: run this in a terminal, or use --password-stdin")
        if not password:
            raise CommandError("the password is empty")
        User = get_user_model()
        try:
            validate_password(password, User(username=username))
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages)) from None
        return password
