"""A tenant has several API keys: each works alone, and revoking one leaves the others working."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from executions.models import ApiKey
from tests.helpers import assert_error


def client_with(header: str, value: str) -> APIClient:
    client = APIClient()
    client.credentials(**{header: value})
    return client


def test_it_accepts_every_live_key_of_a_tenant(alice):
    _, second = alice.tenant.create_api_key(name="ci")
    assert alice.client.get("/api/v1/executions").status_code == 200
    assert client_with("HTTP_AUTHORIZATION", f"Bearer {second}").get("/api/v1/executions").status_code == 200
    assert client_with("HTTP_X_API_KEY", second).get("/api/v1/executions").status_code == 200


def test_it_rejects_only_the_revoked_key(alice):
    row, second = alice.tenant.create_api_key(name="ci")
    assert row.revoke() is True
    assert row.revoke() is False
    for client in (
        client_with("HTTP_AUTHORIZATION", f"Bearer {second}"),
        client_with("HTTP_X_API_KEY", second),
    ):
        body = assert_error(client.get("/api/v1/executions"), 401, "invalid_api_key")
        assert second not in str(body)
    assert alice.client.get("/api/v1/executions").status_code == 200


def test_a_key_shows_its_tenants_data_only(alice, bob):
    task_id = alice.submit("print(1)")
    _, second = alice.tenant.create_api_key()
    client = client_with("HTTP_X_API_KEY", second)
    assert client.get(f"/api/v1/executions/{task_id}").status_code == 200
    assert_error(bob.client.get(f"/api/v1/executions/{task_id}"), 404, "not_found")


def test_create_api_key_prints_a_new_working_key_last(alice):
    out = StringIO()
    call_command("create_api_key", "alice", "--name", "laptop", stdout=out, stderr=StringIO())
    plain = out.getvalue().strip().splitlines()[-1]
    found = ApiKey.find(plain)
    assert found is not None and found.tenant == alice.tenant and found.name == "laptop"
    assert plain not in (found.digest, found.prefix)
    assert ApiKey.objects.filter(tenant=alice.tenant).count() == 2


def test_create_api_key_refuses_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="no tenant"):
        call_command("create_api_key", "nobody", stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.count() == 0


def test_revoke_api_key_takes_the_whole_key_or_its_prefix(alice):
    row, second = alice.tenant.create_api_key()
    call_command("revoke_api_key", second, stdout=StringIO())
    assert ApiKey.find(second) is None
    call_command("revoke_api_key", alice.key_row.prefix, stdout=StringIO())
    assert_error(alice.client.get("/api/v1/executions"), 401, "invalid_api_key")


def test_revoke_api_key_refuses_an_unknown_or_revoked_key(alice):
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "rce_000000000000_x", stdout=StringIO())
    call_command("revoke_api_key", alice.key, stdout=StringIO())
    with pytest.raises(CommandError, match="revoked already"):
        call_command("revoke_api_key", alice.key, stdout=StringIO())
