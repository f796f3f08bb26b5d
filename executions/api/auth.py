from __future__ import annotations

import time

from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from executions.models import ApiKey, Limits, Membership, Tenant, key_digest, key_revoked

# last_used_at is a hint for operators, so it is written at most this often, not per request.
LAST_USED_RESOLUTION_SECONDS = 60


class KeyCache:
    """The keys this process found recently, by digest, for at most API_KEY_CACHE_SECONDS.

    Looking a key and its tenant up was a quarter of a submission's CPU (0.8 of 3.2 ms, by
    bench/profile_ingest.py), and a client sends the same key again and again. A revoked key, a
    disabled tenant or a changed quota reaches every process within API_KEY_CACHE_SECONDS; this
    process at once (but for a lookup already under way), since saving a tenant or a key and
    ApiKey.revoke() empty the cache. Only live keys are kept, so a flood of wrong keys cannot grow
    it, and a hit is an exact match of the whole key's digest.
    """

    # The time source, replaceable in tests.
    clock = staticmethod(time.monotonic)

    def __init__(self):
        # digest -> (until when, the key with its tenant, the tenant's limits()).
        self.entries: dict[str, tuple[float, ApiKey, Limits]] = {}

    def find(self, plain: str) -> ApiKey | None:
        seconds = settings.API_KEY_CACHE_SECONDS
        if seconds <= 0:
            return ApiKey.find(plain)
        digest = key_digest(plain)
        now = self.clock()
        entry = self.entries.get(digest)
        if entry is not None and entry[0] > now:
            return copy_key(entry[1])
        key = ApiKey.find(plain)
        if key is None:
            self.entries.pop(digest, None)
            return None
        if len(self.entries) > 10_000:
            self.entries = {d: e for d, e in self.entries.items() if e[0] > now}
        self.entries[digest] = (now + seconds, key, key.tenant.limits())
        return copy_key(key)

    def recent(self, plain: str) -> tuple[ApiKey, Limits] | None:
        """The key and its tenant's limits() if find() found it within API_KEY_CACHE_SECONDS; never
        a query (the fast lane's). Not a copy: the caller must not change them. Keeping the limits
        saves making them per request (8-10 us of CPU); a tenant saved and the TENANT_* settings
        changed empty the cache."""
        entry = self.entries.get(key_digest(plain))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1], entry[2]

    def known(self, plain: str) -> bool:
        """Whether find() found this key, however long ago, and nothing emptied the cache since."""
        return key_digest(plain) in self.entries

    def touched(self, plain: str, when) -> None:
        """Note a write of last_used_at, so that the cached key does not write it again."""
        entry = self.entries.get(key_digest(plain))
        if entry is not None:
            entry[1].last_used_at = when

    def clear(self) -> None:
        self.entries = {}


def copy_key(key: ApiKey) -> ApiKey:
    """A copy of the key and its tenant for one request, so that no request changes another's."""
    copy = copy_instance(key)
    copy.tenant = copy_instance(key.tenant)
    return copy


def copy_instance(instance: models.Model) -> models.Model:
    """A shallow copy of a saved row's instance, with its own state (and so no cached relations).

    Not from_db(): building it field by field through __init__ and its signals took 16 us of a
    cached GET's 220, this 3.
    """
    copy = instance.__class__.__new__(instance.__class__)
    copy.__dict__.update(instance.__dict__)
    copy._state = ModelState()
    copy._state.db, copy._state.adding = instance._state.db, False
    return copy


KEYS = KeyCache()


@receiver(key_revoked, sender=ApiKey)
@receiver([post_save, post_delete], sender=Tenant)
@receiver([post_save, post_delete], sender=ApiKey)
def forget_keys(**kwargs) -> None:
    KEYS.clear()


@receiver(setting_changed)
def forget_limits(setting: str, **kwargs) -> None:
    # The cached limits() read the platform's defaults (tests change them).
    if setting.startswith("TENANT_"):
        KEYS.clear()


def plain_key(authorization: str, x_api_key: str) -> str | None:
    """The key a request presents, from its Authorization and X-API-Key headers (the first if both);
    ValueError if Authorization is not `Bearer <key>`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ValueError(authorization)
        return value.strip()
    return x_api_key.strip() or None


def use_recorded(key: ApiKey, now) -> bool:
    """Whether the key's last_used_at is recent enough not to be written again."""
    return key.last_used_at is not None and (now - key.last_used_at).total_seconds() <= LAST_USED_RESOLUTION_SECONDS


def record_use(key: ApiKey, plain: str) -> None:
    """Write the key's last_used_at, unless it is recent enough."""
    now = timezone.now()
    if not use_recorded(key, now):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        KEYS.touched(plain, now)


class TenantDisabled(exceptions.PermissionDenied):
    default_detail = "This tenant is disabled."
    default_code = "tenant_disabled"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` or `X-API-Key: <key>`; the request then acts for the key's tenant."""

    def authenticate(self, request):
        plain = self.presented_key(request)
        if plain is None:
            return None
        key = KEYS.find(plain)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        if not key.tenant.is_active:
            raise TenantDisabled()
        record_use(key, plain)
        return key.tenant, key

    def presented_key(self, request) -> str | None:
        try:
            return plain_key(request.META.get("HTTP_AUTHORIZATION", ""), request.META.get("HTTP_X_API_KEY", ""))
        except ValueError:
            raise exceptions.AuthenticationFailed(
                "Use `Authorization: Bearer <api key>`.", code="invalid_api_key"
            ) from None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class NoTenant(exceptions.PermissionDenied):
    default_detail = "Your account is not a member of any tenant."
    default_code = "no_tenant"


class CsrfFailed(exceptions.PermissionDenied):
    default_detail = "CSRF check failed: reload the page and try again."
    default_code = "csrf_failed"


class SessionTenantAuthentication(authentication.SessionAuthentication):
    """A user signed in to the browser page acts for their tenant; CSRF is enforced as for any form.

    It only looks at requests that carry no API key (ApiKeyAuthentication comes first), so API
    clients behave exactly as before.
    """

    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        self.enforce_csrf(request)
        membership = Membership.current(user, request._request.session.get(Membership.SESSION_KEY))
        if membership is None:
            raise NoTenant()
        if not membership.tenant.is_active:
            raise TenantDisabled()
        return membership.tenant, membership

    def enforce_csrf(self, request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            raise CsrfFailed(f"{exc.detail} Reload the page and try again.") from None


class IsTenant(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, (ApiKey, Membership)):
            raise exceptions.NotAuthenticated("An API key is required.", code="missing_api_key")
        return True
