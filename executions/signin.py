"""Sign-in attempts, limited per user name and per client address: the browser page's sign-in and
the admin's both use these forms.

Failed attempts are counted in Redis for SIGNIN_WINDOW_SECONDS from the first one; past
SIGNIN_ATTEMPTS_PER_USER for a name, or SIGNIN_ATTEMPTS_PER_ADDRESS from an address, every attempt
is refused before the password is even checked, right or wrong, until the window ends. Counting
failures only, so a user who signs in often is never stopped. If Redis cannot be reached, sign-ins
go on unlimited (and it is logged): the admin must stay reachable in an outage.
"""

from __future__ import annotations

import hashlib
import logging

import redis
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from executions import store

log = logging.getLogger(__name__)

TOO_MANY = "Too many failed sign-ins for this user or from this address. Try again in %(minutes)d minutes."


def keys(username: str, address: str) -> list[str]:
    # Hashed: a user name is free text, and case does not make a different user to guess at.
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [store.SIGNIN_USER_KEY.format(name), store.SIGNIN_ADDRESS_KEY.format(address)]


def blocked(username: str, address: str) -> bool:
    try:
        user_count, address_count = store.connection().mget(keys(username, address))
    except redis.RedisError:
        log.error("sign-in limit: Redis unreachable; attempt not limited")
        return False
    return int(user_count or 0) >= settings.SIGNIN_ATTEMPTS_PER_USER or int(
        address_count or 0
    ) >= settings.SIGNIN_ATTEMPTS_PER_ADDRESS


def failed(username: str, address: str) -> None:
    try:
        with store.connection().pipeline() as pipe:
            for key in keys(username, address):
                # The window starts with the first failure; INCR keeps its expiry.
                pipe.set(key, 0, ex=settings.SIGNIN_WINDOW_SECONDS, nx=True)
                pipe.incr(key)
            pipe.execute()
    except redis.RedisError:
        log.error("sign-in limit: Redis unreachable; failed attempt not counted")


def client_address(request) -> str:
    """The address a sign-in came from. Behind SIGNIN_TRUSTED_PROXIES reverse proxies, each of which
    appends the address it was reached from to X-Forwarded-For, it is the entry the outermost of
    them appended (entries further left are the client's own say, and not believed); without such
    an entry, the connection's."""
    if request is None:
        return "unknown"
    hops = settings.SIGNIN_TRUSTED_PROXIES
    if hops > 0:
        forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= hops and forwarded[-hops]:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or "unknown"


class LimitedSignIn:
    """For a Django authentication form: refuse when over the limit, count each failure."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if blocked(username, address):
            log.warning("sign-in refused: too many failures (address %s)", address)
            minutes = -(-settings.SIGNIN_WINDOW_SECONDS // 60)
            raise ValidationError(TOO_MANY % {"minutes": minutes}, code="too_many_attempts")
        try:
            return super().clean()
        except ValidationError:
            failed(username, address)
            raise


class SignInForm(LimitedSignIn, AuthenticationForm):
    pass


class AdminSignInForm(LimitedSignIn, AdminAuthenticationForm):
    pass
