"""Where a webhook may go: a callback URL is checked, and its host resolved, here and only here.

A tenant's callback URL is the platform making requests on the tenant's behalf from inside the
operator's network, so only public addresses are allowed: not loopback, private, link-local,
multicast, reserved, shared (CGNAT) or cloud-metadata addresses, in IPv4 or IPv6, nor IPv6 forms
that carry such an IPv4 address inside them. The check resolves the name itself and returns the
addresses it checked, and the caller connects to exactly those: a name that resolves elsewhere a
moment later (DNS rebinding) changes nothing. WEBHOOK_ALLOWED_NETWORKS opens specific networks.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
# Instance metadata services that answer on addresses the classes below would not all catch.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack...
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure's wire server: a public address, reachable only from its VMs
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
TEREDO = ipaddress.ip_network("2001::/32")
# ::a.b.c.d, the deprecated IPv4-compatible form (:: and ::1 are caught as unspecified and loopback).
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# ::ffff:0:a.b.c.d, SIIT's IPv4-translated form.
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")

# How names are resolved: socket.getaddrinfo's signature. Tests swap it to make a name resolve
# where they need (the machine has no DNS of its own).
resolver = socket.getaddrinfo
# getaddrinfo takes no timeout and cannot be interrupted: names are resolved in these threads, shared
# by the process, and the caller waits WEBHOOK_RESOLVE_TIMEOUT_SECONDS at most. A lookup that outlives
# its caller holds one of them until the system's resolver gives up; when all are held, new lookups
# wait their turn within their own deadline.
RESOLVER_THREADS = 8


class Refused(Exception):
    """The URL may not be called; the message says why, in terms a tenant can act on."""

    def __init__(self, message: str, code: str = "callback_url_refused"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    # The path and query, as sent in the request line.
    target: str
    # Every address the host resolved to, each checked: connect to these and nothing else.
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def check(url: str, lookups: Lookups | None = None) -> Destination:
    """The destination of `url` with its checked addresses, or Refused. `lookups`: the names of
    several URLs, being resolved at once (else this one's starts now)."""
    scheme, host, port, target = parse(url)
    addresses = resolve(host, port, lookups or Lookups())
    for address in addresses:
        reason = forbidden(address)
        if reason:
            shown = "" if is_literal(host) else f"{host} resolves to {address}, "
            raise Refused(f"{shown}{address} is {reason}: callbacks go to public addresses only.")
    return Destination(scheme, host, port, target, tuple(str(address) for address in addresses))


def is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse(url: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise Refused(f"must be a URL of at most {MAX_URL_LENGTH} characters.", "invalid_callback_url")
    if any(c <= " " or c == "\x7f" for c in url):
        raise Refused("must not contain spaces or control characters.", "invalid_callback_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"is not a valid URL ({exc}).", "invalid_callback_url") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("must be an http:// or https:// URL.", "invalid_callback_url")
    if not parts.hostname:
        raise Refused("has no host.", "invalid_callback_url")
    if parts.username is not None or parts.password is not None:
        # A password in a URL ends up in logs and the admin; and user@host is a classic disguise.
        raise Refused("must not carry a user name or password.", "invalid_callback_url")
    if parts.fragment:
        raise Refused("must not have a #fragment.", "invalid_callback_url")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), target


@functools.cache
def resolver_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")


def lookup(host: str, port: int):
    # The module's resolver as it is when the lookup runs (tests swap it).
    return resolver(host, port, type=socket.SOCK_STREAM)


class Lookups:
    """The names of some URLs resolved at once, within one deadline for them all: a batch's dozen
    callbacks take as long as its slowest name, never the sum of them."""

    def __init__(self, urls: Iterable[str] = ()):
        self.timeout = settings.WEBHOOK_RESOLVE_TIMEOUT_SECONDS
        self.deadline = time.monotonic() + self.timeout
        self.pending: dict[tuple[str, int], Future] = {}
        for url in urls:
            try:
                _, host, port, _ = parse(url)
            except Refused:
                # Refused again, by name, when the URL itself is checked.
                continue
            if not is_literal(host):
                self.start(host, port)

    def start(self, host: str, port: int) -> Future:
        if (host, port) not in self.pending:
            self.pending[host, port] = resolver_pool().submit(lookup, host, port)
        return self.pending[host, port]

    def result(self, host: str, port: int) -> list:
        future = self.start(host, port)
        try:
            return future.result(timeout=max(0, self.deadline - time.monotonic()))
        except FutureTimeout:
            # Not started yet (every thread busy): it never will be. Started: it ends on its own.
            future.cancel()
            raise Refused(
                f"its host {host} did not resolve within {self.timeout:g} s.", "callback_url_unresolvable"
            ) from None


def resolve(host: str, port: int, lookups: Lookups) -> list[IPAddress]:
    if is_literal(host):
        # No lookup to wait for (and none to queue behind slow ones).
        return [ipaddress.ip_address(host)]
    try:
        found = lookups.result(host, port)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"its host {host} does not resolve ({exc}).", "callback_url_unresolvable") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in found:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # An IPv6 scope (fe80::1%eth0) is not part of the address.
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"its host {host} has no IPv4 or IPv6 address.", "callback_url_unresolvable")
    return addresses


def forbidden(address: IPAddress) -> str | None:
    """Why `address` may not be called, or None if it may."""
    # Never opened, whatever the allow-list says: it hands out the host's cloud credentials. Nor
    # through an IPv6 form that carries it, which a broad allow-list (::/0) would otherwise open.
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for embedded in embedded_ipv4(address):
        if embedded in METADATA_ADDRESSES:
            return f"an IPv6 address embedding {embedded}, a cloud metadata address"
    if any(address in network for network in allowed_networks(tuple(settings.WEBHOOK_ALLOWED_NETWORKS))):
        return None
    return classify(address)


def classify(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        reason = classify_v6(address)
        if reason:
            return reason
    checks = (
        ("unspecified", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a shared (CGNAT) address", address in CGNAT),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
    )
    for reason, hit in checks:
        if hit:
            return reason
    # Whatever else is not globally routable (documentation, benchmarking, site-local ...).
    return None if address.is_global else "not a public address"


def classify_v6(address: ipaddress.IPv6Address) -> str | None:
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address"
    if address in IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback):
        return "an IPv4-compatible address"
    if address in LOCAL_NAT64:
        return "a local-use NAT64 address"
    if address in TEREDO:
        return "a Teredo address"
    if address.is_site_local:
        return "a site-local address"
    # 6to4 and NAT64 carry an IPv4 address, which must itself be allowed.
    embedded = address.sixtofour
    if embedded is None and address in NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is not None:
        reason = classify(embedded)
        if reason:
            return f"an IPv6 address embedding {embedded}, {reason}"
    return None


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, -compatible or -translated, 6to4,
    NAT64 (the well-known prefix, and the local-use one with the IPv4 address last), and Teredo's
    server and client."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = [embedded for embedded in (address.ipv4_mapped, address.sixtofour) if embedded is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in (IPV4_COMPATIBLE, IPV4_TRANSLATED, NAT64, LOCAL_NAT64)):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


@functools.cache
def allowed_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # Checked by a system check (executions.E009); a bad entry is skipped here rather than fatal.
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def invalid_networks(cidrs: list[str]) -> list[str]:
    bad = []
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            bad.append(cidr)
    return bad
