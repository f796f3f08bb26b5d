"""A burst of submissions from several tenants through the production server, with client retries.

Every 202 must end in exactly one terminal row, each run exactly once, and the counts of accepted
requests, rows and finished jobs must match. BURST_SIZE sets the size (`make burst` runs 10,000);
the figures go to burst-report.json in VAR_DIR (var/, or var/test-postgres under `make test`).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from executions.models import Execution, Tenant
from tests.conftest import start_web_server, start_workers, stop_web_server, stop_workers

BURST_SIZE = int(os.environ.get("BURST_SIZE", "500"))
TENANTS = 3
CLIENTS = 16
# Share of requests a client sends twice with the same Idempotency-Key, as if its first answer was lost.
RETRIED = 0.05
TERMINAL = {"completed", "failed", "timed_out", "oom_killed", "output_limit_exceeded", "error"}


@pytest.fixture
def server(transactional_db):
    process, port = start_web_server(WEB_WORKERS="2", QUEUE_MAX_DEPTH=str(2 * BURST_SIZE))
    yield port
    stop_web_server(process)


class Client:
    """One keep-alive connection, like a real client library; reconnects when the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, key: str, code: str, idempotency_key: str) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/plain", "Idempotency-Key": idempotency_key}
        for attempt in range(2):
            try:
                self.connection.request("POST", "/api/v1/execute", code.encode(), headers)
                response = self.connection.getresponse()
                return response.status, json.loads(response.read())
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise


def burst(port: int, keys: list[str]) -> tuple[dict[str, str], list[int], int]:
    """Send BURST_SIZE submissions; the accepted ones (task id -> expected stdout), every status, repeats."""
    plan = [(keys[i % len(keys)], f"print('burst {i}')", f"burst-{i}-{uuid.uuid4()}") for i in range(BURST_SIZE)]
    repeats = random.Random(7).sample(range(BURST_SIZE), int(BURST_SIZE * RETRIED))
    plan += [plan[i] for i in repeats]

    def send(chunk):
        client, results = Client(port), []
        for key, code, idempotency_key in chunk:
            results.append((code, idempotency_key, *client.post(key, code, idempotency_key)))
        return results

    chunks = [plan[i::CLIENTS] for i in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [result for chunk in pool.map(send, chunks) for result in chunk]
    accepted: dict[str, str] = {}
    by_key: dict[str, str] = {}
    statuses = []
    for code, idempotency_key, status, body in results:
        statuses.append(status)
        if status in (200, 202):
            # A repeated key must name the execution the first request created, never a new one.
            assert by_key.setdefault(idempotency_key, body["task_id"]) == body["task_id"]
            accepted[body["task_id"]] = code.split("'")[1] + "\n"
        else:
            assert status in (429, 503), body
            assert set(body) == {"error"}
    return accepted, statuses, len(repeats)


def test_every_accepted_submission_of_a_burst_runs_exactly_once(server):
    # The tenants' own quotas are not what this measures: lift them for the burst.
    tenants = [
        Tenant.objects.create(name=f"burst-{n}", rate_per_minute=10**6, max_queued=10**6) for n in range(TENANTS)
    ]
    keys = [tenant.create_api_key()[1] for tenant in tenants]
    workers = start_workers(3)
    try:
        started = time.monotonic()
        accepted, statuses, repeats = burst(server, keys)
        submitted_in = time.monotonic() - started
        deadline = time.monotonic() + 60 + BURST_SIZE  # far beyond the slowest drain seen here
        while Execution.objects.exclude(status__in=TERMINAL).exists():
            assert time.monotonic() < deadline, "the burst did not drain"
            time.sleep(1)
        drained_in = time.monotonic() - started
    finally:
        stop_workers(workers)

    rows = {str(row.id): row for row in Execution.objects.all()}
    # Each run leaves its own container id on its row: distinct ids count the jobs that ran.
    containers = {row.container_id for row in rows.values() if row.container_id}
    report = {
        "submissions": BURST_SIZE,
        "client_retries": repeats,
        "accepted": len(accepted),
        "refused": sum(status not in (200, 202) for status in statuses),
        "rows": len(rows),
        "completed": sum(row.status == "completed" for row in rows.values()),
        "finished_jobs": len(containers),
        "lost": len(set(accepted) - set(rows)) + sum(row.status not in TERMINAL for row in rows.values()),
        "duplicated": len(rows) - len(accepted) + sum(row.attempts != 1 for row in rows.values()),
        "submit_seconds": round(submitted_in, 1),
        "drain_seconds": round(drained_in, 1),
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
    }
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    (settings.VAR_DIR / "burst-report.json").write_text(json.dumps(report, indent=2))
    print("burst:", json.dumps(report))

    assert set(rows) == set(accepted)
    assert report["lost"] == 0 and report["duplicated"] == 0
    for task_id, expected in accepted.items():
        row = rows[task_id]
        # Each ran once, and its own script: no result lands on another execution.
        assert (row.status, row.stdout, row.attempts) == ("completed", expected, 1), task_id
    assert len(containers) == len(accepted)
