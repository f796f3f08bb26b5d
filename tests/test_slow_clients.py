"""Hostile HTTP clients against the production server (gunicorn): slow bodies, huge headers."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from executions.models import Execution
from tests.conftest import start_gunicorn, stop_gunicorn

THREADS = 2


@pytest.fixture
def gunicorn(transactional_db):
    """One gunicorn process with two threads, so that two stalled clients would take all of it."""
    process, port = start_gunicorn(WEB_WORKERS="1", WEB_THREADS=str(THREADS), REQUEST_BODY_TIMEOUT_SECONDS="2")
    yield port
    stop_gunicorn(process)


def stalled_submission(port: int, key: str) -> socket.socket:
    """Headers and the first bytes of a body that never comes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /api/v1/execute HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\nprint(".encode()
    )
    return sock


def response_of(sock: socket.socket) -> tuple[int, dict]:
    sock.settimeout(30)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_a_stalled_body_gets_408_and_frees_the_server(alice, gunicorn):
    stalled = [stalled_submission(gunicorn, alice.key) for _ in range(THREADS * 2)]
    for sock in stalled:
        status, body = response_of(sock)
        assert status == 408, body
        assert body["error"]["code"] == "request_timeout"
        sock.close()
    assert Execution.objects.count() == 0

    # The server answers the next client at once.
    client = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
    client.request("POST", "/api/v1/execute", b"print(1)", {"Authorization": f"Bearer {alice.key}"})
    assert client.getresponse().status == 202


def test_a_body_trickled_byte_by_byte_gets_408_too(alice, gunicorn):
    sock = stalled_submission(gunicorn, alice.key)
    started = time.monotonic()
    sock.settimeout(0.3)
    # One byte every 0.3 s: each read is quick, the whole body never arrives.
    while time.monotonic() - started < 10:
        try:
            sock.sendall(b"1")
            if sock.recv(1, socket.MSG_PEEK):
                break
        except TimeoutError:
            continue
        except OSError:
            break
    status, body = response_of(sock)
    assert status == 408, body


def test_huge_headers_are_refused_without_a_server_error(alice, gunicorn):
    for request in (
        b"GET /api/v1/executions HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /api/v1/executions HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ):
        sock = socket.create_connection(("127.0.0.1", gunicorn), timeout=30)
        sock.sendall(request)
        status_line = sock.recv(64).split(b"\r\n")[0]
        sock.close()
        assert status_line.split()[1] in (b"400", b"414", b"431"), status_line
