"""Password guessing: failed sign-ins are limited per user name and per client address, on the
browser page's sign-in and the admin's."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import PASSWORD

LOGIN_PAGES = ["/login/", "/admin/login/"]


@pytest.fixture
def limits(settings):
    settings.SIGNIN_ATTEMPTS_PER_USER = 3
    settings.SIGNIN_ATTEMPTS_PER_ADDRESS = 5
    settings.SIGNIN_WINDOW_SECONDS = 900
    return settings


@pytest.fixture
def staff(db, fast_passwords):
    return User.objects.create_user(username="operator", password=PASSWORD, is_staff=True, is_superuser=True)


def sign_in(url: str, username: str, password: str, address: str = "10.0.0.1") -> tuple[int, bytes, bool]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(url, {"username": username, "password": password})
    return response.status_code, response.content, "_auth_user_id" in client.session


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_it_stops_guessing_one_users_password(url, staff, limits):
    for _ in range(3):
        assert sign_in(url, "operator", "guess")[2] is False
    status, content, signed_in = sign_in(url, "operator", PASSWORD)
    assert (status, signed_in) == (200, False)
    assert b"Try again in 15 minutes" in content
    # From another address, and with another case, it is still the same user's limit.
    assert sign_in(url, "OPERATOR", PASSWORD, address="10.0.0.2")[2] is False


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_it_stops_one_address_guessing_many_users(url, staff, limits):
    for number in range(5):
        assert sign_in(url, f"user{number}", "guess")[2] is False
    status, content, signed_in = sign_in(url, "operator", PASSWORD)
    assert signed_in is False and b"Too many failed sign-ins" in content
    # Another address may still sign in.
    assert sign_in(url, "operator", PASSWORD, address="10.0.0.9")[2] is True


def test_the_limits_are_shared_by_both_sign_ins(staff, limits):
    for url in ("/login/", "/admin/login/", "/login/"):
        sign_in(url, "operator", "guess")
    assert b"Too many failed sign-ins" in sign_in("/admin/login/", "operator", PASSWORD, "10.0.0.3")[1]


def test_successful_sign_ins_are_never_limited(staff, limits):
    for _ in range(10):
        assert sign_in("/login/", "operator", PASSWORD)[2] is True


def test_the_limit_ends_with_its_window(staff, limits):
    from executions import store

    for _ in range(3):
        sign_in("/login/", "operator", "guess")
    assert sign_in("/login/", "operator", PASSWORD)[2] is False
    ttls = [store.connection().ttl(key) for key in store.connection().keys("rce:signin:*")]
    assert ttls and all(0 < ttl <= 900 for ttl in ttls)
    for key in store.connection().keys("rce:signin:*"):
        store.connection().delete(key)
    assert sign_in("/login/", "operator", PASSWORD)[2] is True


def forwarded_sign_in(url: str, forwarded_for: str, proxy: str = "10.9.9.9") -> bool:
    client = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded_for)
    client.post(url, {"username": "operator", "password": PASSWORD})
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_behind_a_trusted_proxy_each_client_is_counted_on_its_own(url, staff, limits):
    limits.SIGNIN_TRUSTED_PROXIES = 1
    # One client guesses under other users' names through the proxy, until its address is refused...
    for number in range(5):
        sign_in_through = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="198.51.100.7")
        sign_in_through.post(url, {"username": f"nobody{number}", "password": "guess"})
    assert forwarded_sign_in(url, "198.51.100.7") is False
    # ...another client of the same proxy still signs in, and the guesser cannot pass for it by
    # writing the header's left part itself.
    assert forwarded_sign_in(url, "203.0.113.5") is True
    assert forwarded_sign_in(url, "203.0.113.5, 198.51.100.7") is False


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_without_trusted_proxies_the_forwarded_header_is_not_believed(url, staff, limits):
    for number in range(5):
        Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{number}").post(
            url, {"username": f"nobody{number}", "password": "guess"}
        )
    assert forwarded_sign_in(url, "203.0.113.5") is False
