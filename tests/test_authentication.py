from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from executions.api.auth import KEYS
from executions.models import ApiKey
from tests.conftest import assert_nothing_created
from tests.helpers import assert_error


def test_it_rejects_a_missing_key(db, anonymous):
    response = anonymous.post("/api/v1/execute", "print(1)", content_type="text/plain")
    assert_error(response, 401, "missing_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_created()


def test_it_rejects_a_wrong_key(db, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer rce_000000000000_nope")
    assert_error(anonymous.get("/api/v1/executions"), 401, "invalid_api_key")


def test_it_rejects_a_key_with_a_known_prefix_and_wrong_secret(alice, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key[:-4]}AAAA")
    assert_error(anonymous.get("/api/v1/executions"), 401, "invalid_api_key")


def test_it_rejects_a_revoked_key(alice):
    ApiKey.objects.filter(pk=alice.key_row.pk).update(revoked_at=timezone.now())
    assert_error(alice.client.get("/api/v1/executions"), 401, "invalid_api_key")


def test_it_rejects_another_scheme(alice, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION=f"Basic {alice.key}")
    assert_error(anonymous.get("/api/v1/executions"), 401, "invalid_api_key")


def test_it_accepts_x_api_key(alice, anonymous):
    anonymous.credentials(HTTP_X_API_KEY=alice.key)
    assert anonymous.get("/api/v1/executions").status_code == 200


def test_it_refuses_a_disabled_tenant(alice):
    alice.tenant.is_active = False
    alice.tenant.save()
    assert_error(alice.client.get("/api/v1/executions"), 403, "tenant_disabled")


def test_it_stores_only_a_digest_of_the_key(alice):
    row = ApiKey.objects.get(pk=alice.key_row.pk)
    assert alice.key not in (row.digest, row.prefix, row.name)
    assert alice.key.startswith(f"rce_{row.prefix}_")


def test_it_writes_last_used_at_at_most_once_a_minute(alice, django_assert_num_queries):
    assert alice.client.get("/api/v1/executions").status_code == 200
    first = ApiKey.objects.get(pk=alice.key_row.pk).last_used_at
    assert first is not None
    # The list query only (the key comes from the cache of keys): no write while last_used_at is fresh.
    with django_assert_num_queries(1):
        alice.client.get("/api/v1/executions")
    ApiKey.objects.filter(pk=alice.key_row.pk).update(last_used_at=first - timedelta(minutes=5))
    # The cached copy of the key expires, and the next lookup reads the older time.
    KEYS.clear()
    alice.client.get("/api/v1/executions")
    assert ApiKey.objects.get(pk=alice.key_row.pk).last_used_at > first
