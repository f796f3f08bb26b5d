"""Each web process reuses a key it looked up for API_KEY_CACHE_SECONDS (1 s): never longer.

A key revoked, or a tenant disabled, by another process (the admin on another web worker, the
revoke_api_key command) is refused everywhere within that time; in the process that made the
change, at once.
"""

from __future__ import annotations

import time

import pytest
import requests
from django.utils import timezone

from executions.api.auth import KEYS, KeyCache
from executions.models import ApiKey, Tenant
from tests.conftest import start_web_server, stop_web_server
from tests.helpers import assert_error


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(KeyCache, "clock", staticmethod(lambda: now[0]))
    KEYS.clear()
    return now


def revoke_elsewhere(key_row: ApiKey) -> None:
    # As another process would: a plain UPDATE, which tells this process's cache nothing.
    ApiKey.objects.filter(pk=key_row.pk).update(revoked_at=timezone.now())


def disable_elsewhere(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)


def test_a_key_is_looked_up_once_a_second(alice, clock, django_assert_num_queries):
    assert alice.client.get("/api/v1/executions").status_code == 200
    with django_assert_num_queries(1):
        alice.client.get("/api/v1/executions")
    clock[0] += 1.01
    # The key and its tenant again, then the list.
    with django_assert_num_queries(2):
        alice.client.get("/api/v1/executions")


def test_a_key_revoked_elsewhere_is_refused_within_a_second(alice, bob, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    revoke_elsewhere(alice.key_row)
    clock[0] += 0.5
    # Still within the second this process may reuse what it read.
    assert alice.client.get("/api/v1/executions").status_code == 200
    clock[0] += 0.51
    assert_error(alice.client.get("/api/v1/executions"), 401, "invalid_api_key")
    assert bob.client.get("/api/v1/executions").status_code == 200


def test_a_tenant_disabled_elsewhere_is_refused_within_a_second(alice, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    disable_elsewhere(alice.tenant)
    clock[0] += 1.01
    assert_error(alice.client.post("/api/v1/execute", "print(1)", content_type="text/plain"), 403, "tenant_disabled")


def test_a_key_revoked_in_this_process_is_refused_at_once(alice, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    assert alice.key_row.revoke()
    assert_error(alice.client.get("/api/v1/executions"), 401, "invalid_api_key")


def test_a_tenant_saved_in_this_process_is_read_again_at_once(alice, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    alice.tenant.is_active = False
    alice.tenant.save()
    assert_error(alice.client.get("/api/v1/executions"), 403, "tenant_disabled")


def test_a_wrong_secret_is_refused_while_the_right_key_is_cached(alice, anonymous, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key[:-4]}AAAA")
    assert_error(anonymous.get("/api/v1/executions"), 401, "invalid_api_key")


def test_no_cache_at_zero_seconds(alice, settings, django_assert_num_queries):
    settings.API_KEY_CACHE_SECONDS = 0
    assert alice.client.get("/api/v1/executions").status_code == 200
    with django_assert_num_queries(2):
        alice.client.get("/api/v1/executions")


def test_requests_do_not_share_the_cached_tenant(alice, clock):
    assert alice.client.get("/api/v1/executions").status_code == 200
    first = KEYS.find(alice.key)
    first.tenant.max_queued = 0
    assert KEYS.find(alice.key).tenant.max_queued is None


@pytest.fixture
def server(transactional_db):
    """Two server processes, each with its own cache, as deployed."""
    process, port = start_web_server(WEB_WORKERS="2", WEB_THREADS="4")
    yield port
    stop_web_server(process)


def test_the_server_refuses_a_key_revoked_elsewhere_within_a_second(alice, server):
    session = requests.Session()
    headers = {"Authorization": f"Bearer {alice.key}"}
    url = f"http://127.0.0.1:{server}/api/v1/executions"
    # Enough requests for both processes to have the key in their caches.
    for _ in range(20):
        assert session.get(url, headers=headers).status_code == 200
    revoke_elsewhere(alice.key_row)
    time.sleep(1.1)
    for _ in range(20):
        response = session.get(url, headers=headers)
        assert response.status_code == 401, response.content


def test_each_request_gets_its_own_copy_of_the_key_and_tenant(alice, clock):
    first = KEYS.find(alice.key)
    first.tenant.max_queued = 1
    first.name = "changed by one request"
    second = KEYS.find(alice.key)
    assert second.tenant is not first.tenant and second is not first
    assert (second.tenant.max_queued, second.name) == (alice.tenant.max_queued, alice.key_row.name)
    assert second.tenant.pk == alice.tenant.pk and not second._state.adding


def test_the_limits_kept_with_a_key_are_its_tenants_now(alice, clock, settings):
    KEYS.find(alice.key)
    key, limits = KEYS.recent(alice.key)
    assert key.pk == alice.key_row.pk and limits == alice.tenant.limits()
    # The platform's defaults changed, or the tenant: the limits of the next request follow.
    settings.TENANT_RATE_PER_MINUTE = 7
    KEYS.find(alice.key)
    assert KEYS.recent(alice.key)[1].rate_per_minute == 7
    alice.tenant.rate_per_minute = 3
    alice.tenant.save()
    KEYS.find(alice.key)
    assert KEYS.recent(alice.key)[1].rate_per_minute == 3
