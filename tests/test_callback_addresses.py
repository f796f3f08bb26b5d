"""Which callback URLs may be called: public addresses only, resolved by the platform itself."""

from __future__ import annotations

import socket
import time

import pytest

from executions import destinations

pytestmark = pytest.mark.no_database

REFUSED = {
    "loopback": ["127.0.0.1", "127.8.9.10", "[::1]"],
    "private": ["10.1.2.3", "172.16.0.1", "192.168.1.1", "[fd12:3456::1]"],
    "link-local": ["169.254.1.1", "[fe80::1]"],
    "multicast": ["224.0.0.1", "239.255.255.250", "[ff02::1]"],
    "unspecified": ["0.0.0.0", "[::]"],
    "reserved": ["240.0.0.1", "255.255.255.255"],
    "shared (CGNAT)": ["100.64.0.1", "100.127.255.254"],
    "cloud metadata": ["169.254.169.254", "[fd00:ec2::254]", "100.100.100.200", "168.63.129.16"],
    "IPv4-mapped": ["[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[::ffff:93.184.216.34]"],
    "IPv4-compatible": ["[::127.0.0.1]", "[::10.0.0.1]"],
    "6to4 embedding a private address": ["[2002:7f00:1::1]", "[2002:a00:1::]", "[2002:a9fe:a9fe::]"],
    "NAT64 embedding a private address": ["[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[64:ff9b::a9fe:a9fe]"],
    "local-use NAT64": ["[64:ff9b:1::5db8:d822]"],
    "Teredo": ["[2001:0:4136:e378:8000:63bf:3fff:fdd2]"],
    "site-local": ["[fec0::1]"],
    "documentation": ["192.0.2.1", "198.51.100.7", "203.0.113.9", "[2001:db8::1]"],
    "benchmarking": ["198.18.0.1"],
}


def resolving_to(*addresses: str):
    """A resolver for which every name resolves to `addresses`."""

    def resolve(host, port, type=0, **kwargs):
        found = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            found.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return found

    return resolve


@pytest.mark.parametrize(
    "host", [host for hosts in REFUSED.values() for host in hosts], ids=lambda host: host.strip("[]")
)
def test_it_refuses_addresses_that_are_not_public(host):
    with pytest.raises(destinations.Refused) as refused:
        destinations.check(f"http://{host}/hook")
    assert refused.value.code == "callback_url_refused"
    assert "public addresses only" in refused.value.message


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[2002:5db8:d822::1]"])
def test_it_accepts_public_addresses(host):
    destination = destinations.check(f"https://{host}:8443/hook?x=1")
    assert destination.addresses == (host.strip("[]"),)
    assert (destination.port, destination.target) == (8443, "/hook?x=1")
    assert destination.host_header == f"{host}:8443"


def test_it_refuses_a_name_that_resolves_to_loopback():
    # Resolved by the machine itself (/etc/hosts): the name is not what is checked, its address is.
    with pytest.raises(destinations.Refused, match=r"localhost resolves to 127\.0\.0\.1, 127\.0\.0\.1 is a loopback"):
        destinations.check("http://localhost:8000/hook")


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
def test_it_refuses_other_spellings_of_loopback(spelling):
    with pytest.raises(destinations.Refused, match="loopback"):
        destinations.check(f"http://{spelling}/hook")


def test_it_refuses_a_name_when_any_of_its_addresses_is_refused(monkeypatch):
    monkeypatch.setattr(destinations, "resolver", resolving_to("93.184.216.34", "10.0.0.5"))
    with pytest.raises(destinations.Refused, match=r"hooks\.example resolves to 10\.0\.0\.5, 10\.0\.0\.5 is a private"):
        destinations.check("https://hooks.example/in")


def test_it_keeps_the_addresses_it_checked_for_the_connection(monkeypatch):
    monkeypatch.setattr(destinations, "resolver", resolving_to("93.184.216.34", "2606:2800:220:1::1"))
    destination = destinations.check("https://hooks.example/in")
    assert destination.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert (destination.host, destination.host_header, destination.port) == ("hooks.example", "hooks.example", 443)


def test_it_refuses_a_name_that_does_not_resolve(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(destinations, "resolver", fail)
    with pytest.raises(destinations.Refused) as refused:
        destinations.check("https://nowhere.example/in")
    assert refused.value.code == "callback_url_unresolvable"


def slow_resolver(seconds: float, *addresses: str):
    """resolving_to(), after `seconds`; the names it was asked for, in `asked`."""
    answer = resolving_to(*addresses)

    def resolve(host, port, type=0, **kwargs):
        resolve.asked.append(host)
        time.sleep(seconds)
        return answer(host, port, type)

    resolve.asked = []
    return resolve


def test_a_name_that_does_not_resolve_in_time_is_refused_without_waiting_for_it(monkeypatch, settings):
    settings.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 0.2
    monkeypatch.setattr(destinations, "resolver", slow_resolver(3, "93.184.216.34"))
    started = time.monotonic()
    with pytest.raises(destinations.Refused) as refused:
        destinations.check("https://slow.example/in")
    assert time.monotonic() - started < 1
    assert refused.value.code == "callback_url_unresolvable"
    assert refused.value.message == "its host slow.example did not resolve within 0.2 s."


def test_several_names_resolve_at_once_within_one_deadline(monkeypatch, settings):
    settings.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 2
    resolver = slow_resolver(0.3, "93.184.216.34")
    monkeypatch.setattr(destinations, "resolver", resolver)
    urls = [f"https://hooks{n % 7}.example/in/{n}" for n in range(21)]
    started = time.monotonic()
    lookups = destinations.Lookups(urls)
    assert all(destinations.check(url, lookups).addresses == ("93.184.216.34",) for url in urls)
    # Seven names, each looked up once, side by side: one after another would take 2.1 s.
    assert time.monotonic() - started < 1
    assert sorted(resolver.asked) == sorted(f"hooks{n}.example" for n in range(7))


def test_an_address_in_the_url_needs_no_lookup(monkeypatch, settings):
    settings.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 0.1
    resolver = slow_resolver(1, "93.184.216.34")
    monkeypatch.setattr(destinations, "resolver", resolver)
    assert destinations.check("https://93.184.216.34/in").addresses == ("93.184.216.34",)
    assert destinations.check("https://[2606:2800:220:1::1]/in").addresses == ("2606:2800:220:1::1",)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "gopher://93.184.216.34:70/",
        "http://user:pass@93.184.216.34/hook",
        "http://93.184.216.34@127.0.0.1/hook",
        "http:///hook",
        "http://93.184.216.34:99999/",
        "http://93.184.216.34/ho ok",
        "http://93.184.216.34/#frag",
        "93.184.216.34/hook",
        "https://" + "a" * 2000 + ".example/",
    ],
)
def test_it_refuses_urls_that_are_not_plain_http(url):
    with pytest.raises(destinations.Refused) as refused:
        destinations.check(url)
    assert refused.value.code in ("invalid_callback_url", "callback_url_refused")


def test_the_allow_list_opens_the_networks_it_names(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/30", "fd12::/16"]
    assert destinations.check("http://127.0.0.2:9000/hook").addresses == ("127.0.0.2",)
    assert destinations.check("http://[fd12::7]/hook").addresses == ("fd12::7",)
    with pytest.raises(destinations.Refused):
        destinations.check("http://127.0.0.4/hook")
    # The IPv4-mapped form of an allowed address is not in an IPv4 network.
    with pytest.raises(destinations.Refused):
        destinations.check("http://[::ffff:127.0.0.1]/hook")


def test_the_allow_list_never_opens_metadata_addresses(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["169.254.0.0/16", "0.0.0.0/0", "::/0"]
    assert destinations.check("http://169.254.1.1/").addresses == ("169.254.1.1",)
    for host in ("169.254.169.254", "[fd00:ec2::254]"):
        with pytest.raises(destinations.Refused, match="metadata"):
            destinations.check(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:169.254.169.254]",
        "[::169.254.169.254]",
        "[::ffff:0:a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b:1::a9fe:a9fe]",
        "[2001:0:4136:e378:8000:63bf:5601:5601]",
        "[2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2]",
        "[::ffff:100.100.100.200]",
        "[64:ff9b::a83f:8110]",
    ],
    ids=["mapped", "compatible", "translated", "6to4", "NAT64", "local NAT64", "Teredo client", "Teredo server",
         "mapped Alibaba", "NAT64 Azure"],
)
def test_the_allow_list_never_opens_a_metadata_address_inside_an_ipv6_one(settings, host):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    with pytest.raises(destinations.Refused, match="embedding .*, a cloud metadata address"):
        destinations.check(f"http://{host}/latest/meta-data/")


def test_a_broad_allow_list_still_opens_other_ipv6_forms(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["::/0"]
    assert destinations.check("http://[64:ff9b::5db8:d822]/").addresses == ("64:ff9b::5db8:d822",)
    assert destinations.check("http://[::ffff:10.0.0.1]/").addresses == ("::ffff:a00:1",)
