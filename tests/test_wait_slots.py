"""Requests waiting with ?wait=N never starve quick ones, on the production server (sandbox_project/serve.py)."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from executions import runs
from executions.models import Execution
from tests.conftest import start_web_server, stop_web_server

THREADS = 4
SLOTS = 2


@pytest.fixture
def server(transactional_db):
    """One process, four request threads, two of which may wait; no sandbox worker, so waits last."""
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS=str(THREADS), WAIT_SLOTS=str(SLOTS))
    yield port
    stop_web_server(process)


def submit(port: int, key: str, query: str = "", timeout: float = 40) -> tuple[int, dict, float]:
    started = time.monotonic()
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    client.request("POST", f"/api/v1/execute{query}", b"print(1)", {"Authorization": f"Bearer {key}"})
    response = client.getresponse()
    return response.status, json.loads(response.read()), time.monotonic() - started


def test_quick_requests_are_served_while_every_slot_waits(alice, server):
    answers = []
    waiters = [
        threading.Thread(target=lambda: answers.append(submit(server, alice.key, "?wait=30")))
        for _ in range(SLOTS)
    ]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 10
    while Execution.objects.count() < SLOTS and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)

    # Every slot is taken: one more ?wait gets its 202 at once.
    status, _, seconds = submit(server, alice.key, "?wait=30")
    assert (status, seconds < 2) == (202, True)
    # The other threads serve quick requests promptly.
    for _ in range(20):
        status, _, seconds = submit(server, alice.key, timeout=5)
        assert (status, seconds < 1) == (202, True), seconds
    assert answers == [] and all(waiter.is_alive() for waiter in waiters)

    # The waiters are answered as soon as their executions finish.
    for execution in Execution.objects.order_by("created_at")[:SLOTS]:
        Execution.objects.filter(id=execution.id).update(status="running")
        runs.finish(str(execution.id), {"status": "completed", "stdout": "1\n", "exit_code": 0})
    for waiter in waiters:
        waiter.join(10)
    assert sorted((status, body["stdout"]) for status, body, _ in answers) == [(200, "1\n")] * SLOTS
