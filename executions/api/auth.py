from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from executions.models import ApiKey, Membership

# last_used_at is a hint for operators, so it is written at most this often, not per request.
LAST_USED_RESOLUTION_SECONDS = 60


class TenantDisabled(exceptions.PermissionDenied):
    default_detail = "This tenant is disabled."
    default_code = "tenant_disabled"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` or `X-API-Key: <key>`; the request then acts for the key's tenant."""

    def authenticate(self, request):
        plain = self.presented_key(request)
        if plain is None:
            return None
        key = ApiKey.find(plain)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        if not key.tenant.is_active:
            raise TenantDisabled()
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return key.tenant, key

    def presented_key(self, request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise exceptions.AuthenticationFailed(
                    "Use `Authorization: Bearer <api key>`.", code="invalid_api_key"
                )
            return value.strip()
        value = request.META.get("HTTP_X_API_KEY", "").strip()
        return value or None

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
