"""`manage.py add_member TENANT USERNAME`: a sign-in for the browser page, without a password on the command line."""

from __future__ import annotations

import io
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from executions.models import Membership, Tenant


def add_member(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    err = StringIO()
    call_command("add_member", *args, stdout=StringIO(), stderr=err)
    return err.getvalue()


def test_it_creates_a_user_with_a_password_from_stdin(db, monkeypatch, fast_passwords):
    Tenant.objects.create(name="acme")
    add_member("acme", "dora", "--password-stdin", stdin="a fine long passphrase\n", monkeypatch=monkeypatch)
    user = User.objects.get(username="dora")
    assert user.check_password("a fine long passphrase")
    assert Membership.objects.filter(user=user, tenant__name="acme").exists()


def test_it_adds_an_existing_user_without_asking_for_a_password(db, fast_passwords):
    Tenant.objects.create(name="acme")
    Tenant.objects.create(name="globex")
    User.objects.create_user(username="dora", password="x")
    out = add_member("globex", "dora")
    assert "is now a member" in out
    assert "was already" in add_member("globex", "dora")
    assert Membership.objects.filter(user__username="dora").count() == 1


def test_it_refuses_a_weak_or_missing_password_and_creates_nothing(db, monkeypatch):
    Tenant.objects.create(name="acme")
    with pytest.raises(CommandError, match="password refused"):
        add_member("acme", "dora", "--password-stdin", stdin="123\n", monkeypatch=monkeypatch)
    with pytest.raises(CommandError, match="empty"):
        add_member("acme", "dora", "--password-stdin", stdin="\n", monkeypatch=monkeypatch)
    # Not a terminal and no --password-stdin: nothing to read a password from.
    with pytest.raises(CommandError, match="needs a password"):
        add_member("acme", "dora", stdin="", monkeypatch=monkeypatch)
    assert not User.objects.exists() and not Membership.objects.exists()


def test_it_refuses_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="no tenant"):
        add_member("nope", "dora")
    assert not User.objects.exists()
