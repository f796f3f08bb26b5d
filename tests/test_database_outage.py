"""The database goes down mid-run, with real processes: a PostgreSQL server of the test's own, the
production web server (sandbox_project/serve.py) and a worker, all pointed at it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from executions import store
from tests.conftest import ROOT, any_script_running, free_port, listed_jobs, manage, start_web_server, stop_workers

pytestmark = pytest.mark.no_database

POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def as_postgres(*command: str) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


class PrivatePostgres:
    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="rce-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        data = self.directory / "data"
        subprocess.run(as_postgres(str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "rce", "--auth=trust"),
                       check=True, stdout=subprocess.DEVNULL)
        self.data = data
        self.server = f"postgres://rce@127.0.0.1:{self.port}"
        self.url = f"{self.server}/rce"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(as_postgres(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), *args),
                       check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-w", "-o", options, "start")

    def crash(self) -> None:
        self.pg_ctl("-m", "immediate", "stop")

    def remove(self) -> None:
        subprocess.run(as_postgres(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.directory, ignore_errors=True)


class Stack:
    """The web server and one worker on the private database, talking HTTP like any client."""

    def __init__(self, postgres: PrivatePostgres):
        self.env = dict(
            os.environ,
            DATABASE_URL=postgres.url,
            REDIS_URL=settings.REDIS_URL.split("?")[0],
            # A maintenance pass every 2 s, so that parked results land soon after the database is back.
            WORKER_MAINTENANCE_INTERVAL="2",
        )
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        subprocess.run(["psql", f"{postgres.server}/postgres", "-qc", "create database rce"], check=True)
        subprocess.run(manage("migrate", "-v0"), env=self.env, check=True, cwd=ROOT)
        created = subprocess.run(manage("create_tenant", "outage"), env=self.env, check=True, cwd=ROOT,
                                 capture_output=True, text=True)
        self.key = created.stdout.strip().splitlines()[-1]
        web, self.port = start_web_server(DATABASE_URL=postgres.url, WEB_WORKERS="1")
        self.processes = [web, subprocess.Popen(manage("rqworker", "sandbox"), env=self.env, cwd=ROOT)]

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "text/plain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def wait_for(self, task_id: str, statuses: set[str], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, body = self.request("GET", f"/api/v1/executions/{task_id}")
            if code == 200 and body["status"] in statuses:
                return body
            time.sleep(0.2)
        raise AssertionError(f"execution {task_id} not in {statuses} after {timeout}s: {code} {body}")

    def stop(self) -> None:
        stop_workers(self.processes)


@pytest.fixture
def outage_stack():
    if POSTGRES_BIN is None or shutil.which("psql") is None:
        pytest.fail("PostgreSQL is not installed: run the tests with `make test`")
    postgres = PrivatePostgres()
    postgres.start()
    stack = Stack(postgres)
    yield postgres, stack
    stack.stop()
    postgres.remove()


def test_a_database_outage_refuses_submissions_and_loses_no_result(outage_stack):
    postgres, stack = outage_stack
    code, body = stack.request("POST", "/api/v1/execute", b"import time\ntime.sleep(4)\nprint('survived')")
    assert code == 202, body
    task_id = body["task_id"]
    stack.wait_for(task_id, {"running"})
    # Crash it once the script runs in its container.
    deadline = time.monotonic() + 30
    while not any_script_running():
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.05)
    time.sleep(0.5)

    postgres.crash()
    # Submissions are refused with the common error shape, and nothing reaches the queue.
    queued_before = len(listed_jobs())
    code, body = stack.request("POST", "/api/v1/execute", b"print('while down')")
    assert code == 503, body
    assert body["error"]["code"] and body["error"]["message"]
    assert len(listed_jobs()) == queued_before

    # The worker finishes the run, cannot write it, and parks the result in Redis.
    deadline = time.monotonic() + 60
    while not store.is_parked(task_id):
        assert time.monotonic() < deadline, "the worker never parked its result"
        time.sleep(0.2)

    postgres.start()
    finished = stack.wait_for(task_id, {"completed", "failed", "error", "timed_out"})
    assert (finished["status"], finished["stdout"]) == ("completed", "survived\n")
    assert not store.is_parked(task_id)
    # The platform serves again, with no restart.
    code, body = stack.request("POST", "/api/v1/execute", b"print('after')")
    assert code == 202, body
    assert stack.wait_for(body["task_id"], {"completed"})["stdout"] == "after\n"
