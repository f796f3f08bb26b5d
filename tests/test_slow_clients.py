"""Hostile HTTP clients against the production server (sandbox_project/serve.py): slow bodies, huge headers."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time

import pytest

from executions.models import Execution
from tests.conftest import start_web_server, stop_web_server

THREADS = 2


@pytest.fixture
def server(transactional_db):
    """One server process with two request threads."""
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS=str(THREADS), REQUEST_BODY_TIMEOUT_SECONDS="2")
    yield port
    stop_web_server(process)


def stalled_submission(port: int, key: str) -> socket.socket:
    """Headers and the first bytes of a body that never comes."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /api/v1/execute HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\nprint(".encode()
    )
    return sock


def read_status(sock: socket.socket) -> int:
    sock.settimeout(10)
    return int(sock.recv(64).split(b"\r\n")[0].split()[1])


def test_stalled_bodies_get_408_at_the_deadline_and_hold_no_thread(alice, server):
    # More stalled clients than the server has threads: the event loop reads bodies, not the threads.
    stalled = [stalled_submission(server, alice.key) for _ in range(THREADS * 5)]
    started = time.monotonic()
    try:
        for _ in range(THREADS * 2):
            client = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
            client.request("POST", "/api/v1/execute", b"print(1)", {"Authorization": f"Bearer {alice.key}"})
            assert client.getresponse().status == 202
        assert time.monotonic() - started < 2
        assert [read_status(sock) for sock in stalled] == [408] * len(stalled)
        assert time.monotonic() - started < 2 + 1.5
    finally:
        for sock in stalled:
            sock.close()
    # What arrived of the stalled bodies ("print(") never ran as a whole script.
    assert Execution.objects.count() == THREADS * 2


def test_a_trickled_body_has_one_deadline_for_the_whole_of_it(alice, server):
    sock = socket.create_connection(("127.0.0.1", server))
    sock.sendall(
        f"POST /api/v1/execute HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {alice.key}\r\n"
        "Content-Length: 100\r\n\r\n".encode()
    )
    started = time.monotonic()
    try:
        # A byte every 0.2 s would never trip a per-read timeout.
        for _ in range(15):
            sock.sendall(b"#")
            time.sleep(0.2)
        assert read_status(sock) == 408
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert time.monotonic() - started < 2 + 1.5
    assert Execution.objects.count() == 0


def test_a_body_over_the_limit_is_refused_before_it_is_read(alice, server, settings):
    sock = socket.create_connection(("127.0.0.1", server))
    sock.sendall(
        f"POST /api/v1/execute HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {alice.key}\r\n"
        f"Content-Length: {settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1}\r\n\r\n".encode()
    )
    assert read_status(sock) == 413
    sock.close()
    # Chunked, with no length announced: refused once it passes the limit.
    client = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    chunks = (b"#" * 65536 for _ in range(settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 65536 + 2))
    client.request("POST", "/api/v1/execute", chunks, {"Authorization": f"Bearer {alice.key}"}, encode_chunked=True)
    assert client.getresponse().status == 413
    assert Execution.objects.count() == 0


def test_a_header_name_with_an_underscore_is_dropped(alice, server):
    # X_Api_Key and X-Api-Key would both be HTTP_X_API_KEY to Django.
    client = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    client.request("POST", "/api/v1/execute", b"print(1)", {"X_Api_Key": alice.key})
    assert client.getresponse().status == 401
    client = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    client.request("POST", "/api/v1/execute", b"print(1)", {"X-Api-Key": alice.key})
    assert client.getresponse().status == 202


def test_a_body_cut_short_creates_nothing(alice, server):
    sock = stalled_submission(server, alice.key)
    # The client goes away mid-body: what arrived ("print(") must not run as the whole script.
    sock.close()
    time.sleep(0.5)
    assert Execution.objects.count() == 0


def test_slow_headers_lose_their_connection(server):
    sock = socket.create_connection(("127.0.0.1", server), timeout=30)
    sock.sendall(b"POST /api/v1/execute HTTP/1.1\r\nHost: local")
    started = time.monotonic()
    assert sock.recv(64) == b""
    assert time.monotonic() - started < 2 + 1.5


def test_huge_headers_are_refused_without_a_server_error(alice, server):
    for request in (
        b"GET /api/v1/executions HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /api/v1/executions HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ):
        sock = socket.create_connection(("127.0.0.1", server), timeout=30)
        sock.sendall(request)
        status_line = sock.recv(64).split(b"\r\n")[0]
        sock.close()
        assert status_line.split()[1] in (b"400", b"414", b"431"), status_line


def test_a_deadline_cancels_only_the_requests_still_reading_and_no_other_cancellation_is_its_own():
    """sandbox_project.rsgi.Deadlines, on a real event loop (pure logic: no server)."""
    from sandbox_project.rsgi import Deadlines

    async def scenario():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(0.3)
        never = loop.create_future()

        async def reader(body: asyncio.Future):
            task = asyncio.current_task()
            slot = deadlines.enter(loop, task)
            started = loop.time()
            try:
                return await body
            except asyncio.CancelledError:
                if deadlines.expired(task):
                    return ("408", loop.time() - started)
                raise
            finally:
                deadlines.leave(task, slot)

        arrives = loop.create_future()
        loop.call_later(0.1, arrives.set_result, b"print(1)")
        stalled, prompt, shut_down = (asyncio.ensure_future(reader(f)) for f in (never, arrives, loop.create_future()))
        await asyncio.sleep(0.05)
        # Cancelled by someone else (a server stopping): not a deadline, and it stays cancelled.
        shut_down.cancel()
        outcome = await asyncio.gather(stalled, prompt, shut_down, return_exceptions=True)
        # Afterwards nothing is left to tick for.
        await asyncio.sleep(Deadlines.TICK * 2)
        return outcome, deadlines

    (stalled, prompt, shut_down), deadlines = asyncio.run(scenario())
    assert stalled[0] == "408" and 0.3 <= stalled[1] <= 0.3 + Deadlines.TICK + 0.1
    assert prompt == b"print(1)"
    assert isinstance(shut_down, asyncio.CancelledError)
    assert (deadlines.slots, deadlines.expired_tasks, deadlines.ticking) == ({}, set(), False)
