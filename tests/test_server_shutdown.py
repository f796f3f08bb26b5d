"""A stopping web server ends its open event streams at once instead of waiting for them."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import start_web_server
from tests.test_execution_events import EventStream

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_a_stopping_server_ends_its_event_streams_and_exits(alice):
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS="2")
    try:
        task_id = alice.submit("print('never run')")
        streams = [EventStream(port, alice.key, task_id) for _ in range(3)]
        assert all(stream.next()["data"] == {"status": "queued"} for stream in streams)
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        # Ended without the execution: the client reconnects elsewhere and resumes.
        assert all(stream.rest() == [] for stream in streams)
        process.wait(20)
        # Far below granian's kill timeout (35 s), which a waiting stream would have run into.
        assert time.monotonic() - stopping < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
