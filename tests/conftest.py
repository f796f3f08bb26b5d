"""Shared personas and real services for the tests: two tenants (alice, bob), real Redis, real Docker."""

from __future__ import annotations

import functools
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from executions import scheduler, store
from executions.models import Execution, Tenant
from executions.sandbox import janitor, premade
from executions.sandbox.runner import INSTANCE_LABEL, LABEL, docker_api, own_sandboxes
from executions.worker import SandboxWorker

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session):
    # The tests empty their Redis database: refuse the default one (0), which `make run` uses.
    database = settings.REDIS_URL.split("?")[0].rstrip("/").rpartition("/")[2]
    if not database.isdigit() or int(database) == 0:
        pytest.exit("run the tests with `make test`, or set REDIS_URL=redis://127.0.0.1:6379/15", returncode=2)


@pytest.fixture(autouse=True)
def redis_conn():
    connection = store.connection()
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind():
    yield
    left = own_sandboxes(docker_api())
    assert left == [], f"sandbox containers left on the engine: {[c['Id'][:12] for c in left]}"


class Persona:
    def __init__(self, name: str):
        self.tenant = Tenant.objects.create(name=name)
        self.key_row, self.key = self.tenant.create_api_key()
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")

    def submit(self, code: str, language: str = "python", stdin: str = "") -> str:
        response = self.client.post(
            "/api/v1/executions", {"language": language, "code": code, "stdin": stdin}, format="json"
        )
        assert response.status_code == 202, response.content
        return response.json()["task_id"]

    def get(self, task_id: str) -> dict:
        response = self.client.get(f"/api/v1/executions/{task_id}")
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def alice(db):
    return Persona("alice")


@pytest.fixture
def bob(db):
    return Persona("bob")


@pytest.fixture
def anonymous():
    return APIClient()


def run_worker() -> None:
    """Run every queued job with a real rq worker, in this process, until the queue is empty."""
    connection = store.connection()
    queue = django_rq.get_queue(settings.SANDBOX_QUEUE, connection=connection)
    SandboxWorker([queue], connection=connection).work(burst=True)


def listed_jobs() -> list[str]:
    """The jobs in the lists rq's workers take from: the express list first, then the shared one."""
    return scheduler.express_queue().job_ids + scheduler.queue().job_ids


def queued_job_count() -> int:
    """Jobs waiting for a worker: in the shared queue, or behind their tenant's max_running."""
    return scheduler.depth()


def assert_nothing_created() -> None:
    assert Execution.objects.count() == 0
    assert queued_job_count() == 0


def database_url() -> str:
    """The test database as a DATABASE_URL, for worker and CLI subprocesses."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL.split("?")[0])
    env.update(extra)
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


@functools.cache
def stack_images() -> dict[str, str]:
    """The names of the images docker-compose.yml runs on here, made from Debian's packages where missing.

    `scripts/dev.sh stack-images` (which `make test` runs first) tags them by their recipe: when
    they exist this costs a second or two.
    """
    env = {**os.environ, "VAR_DIR": str(settings.VAR_DIR)}
    subprocess.run([str(ROOT / "scripts/dev.sh"), "stack-images"], check=True, env=env)
    lines = (settings.VAR_DIR / "stack-images.env").read_text().split()
    return dict(line.split("=", 1) for line in lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web_server(output=None, **env: str) -> tuple[subprocess.Popen, int]:
    """The production web server (python -m sandbox_project.serve) on a free port and the test database;
    its log goes to `output` (a file) if given."""
    port = free_port()
    environment = subprocess_env(BIND=f"127.0.0.1:{port}", **env)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    streams = {"stdout": output, "stderr": subprocess.STDOUT} if output is not None else {}
    process = subprocess.Popen([sys.executable, "-m", "sandbox_project.serve"], env=environment, cwd=ROOT, **streams)
    # The port is open before the worker processes are ready: wait for an answer.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.05)
    return process, port


def stop_web_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    finally:
        # A server that ignores SIGTERM fails the test above, and must not outlive it.
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start_workers(count: int, queue: str = "sandbox") -> list[subprocess.Popen]:
    """`manage.py rqworker sandbox` processes (they take express jobs first); `sandbox-express`: a reserve."""
    return [subprocess.Popen(manage("rqworker", queue), env=subprocess_env(), cwd=ROOT) for _ in range(count)]


# A warm shutdown lets a worker finish the engine call it is in (a sandbox made ahead, a removal),
# and each may take the client's whole timeout (30 s) from an engine slowed by the suites beside.
STOP_PATIENCE = 30


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    asked = time.monotonic()
    try:
        for process in processes:
            try:
                process.wait(max(0.0, asked + STOP_PATIENCE - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Where it is, printed to its stderr (this test's captured output), and one more
                # engine timeout to finish it.
                os.kill(process.pid, signal.SIGUSR1)
                process.wait(STOP_PATIENCE)
                warnings.warn(f"worker {process.pid} took {time.monotonic() - asked:.1f} s to stop (its stacks: stderr)")
    finally:
        # A worker that ignores SIGTERM fails the test above, and must not outlive it.
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def worker_process(transactional_db):
    """A real `manage.py rqworker sandbox` process, stopped (SIGTERM) after the test."""
    processes = start_workers(1)
    yield processes[0]
    stop_workers(processes)


@pytest.fixture
def three_workers(transactional_db):
    processes = start_workers(3)
    yield processes
    stop_workers(processes)


def sandboxes_of(task_id: str, running: bool = False) -> list[dict]:
    """The sandbox containers of an execution: made for it (labelled with it), or made ahead and
    taken by it (recorded on its row before its code arrives)."""
    api = docker_api()
    state = {"status": "running"} if running else {}
    found = api.containers(all=True, filters={"label": f"rce.execution={task_id}", **state})
    container_id = Execution.objects.filter(id=task_id).values_list("container_id", flat=True).first()
    if container_id:
        found += api.containers(all=True, filters={"id": container_id, **state})
    return list({container["Id"]: container for container in found}.values())


def script_running(task_id: str) -> bool:
    """Whether the execution's script has reached its running sandbox."""
    for container in sandboxes_of(task_id, running=True):
        source = janitor.code_source(container)
        if source and os.path.exists(os.path.join(source, "stdin")):
            return True
    return False


def any_script_running() -> bool:
    """Whether a script runs in any of this instance's sandboxes (for tests without the database)."""
    instance = [LABEL, f"{INSTANCE_LABEL}={settings.SANDBOX_INSTANCE}"]
    running = docker_api().containers(filters={"label": instance, "status": "running"})
    return any(janitor.code_delivered_at(container) is not None for container in running)


def waiting_for_code(container: dict) -> bool:
    """Whether a sandbox is one made ahead by a worker that has not received any code yet."""
    labels = container.get("Labels") or {}
    return premade.WORKER_LABEL in labels and janitor.code_delivered_at(container) is None


def wait_for_status(task_id: str, statuses: set[str], timeout: float = 30) -> Execution:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = Execution.objects.get(id=task_id)
        if execution.status in statuses:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution {task_id} still {execution.status} after {timeout}s")



# --- People on the browser page ---------------------------------------------------------------

PASSWORD = "a long test passphrase"


class Member:
    """Someone who signs in to the browser page: a Django user, in `tenant` unless it is None."""

    def __init__(self, username: str, tenant: Tenant | None):
        from django.contrib.auth.models import User
        from django.test import Client

        from executions.models import Membership

        self.username = username
        self.user = User.objects.create_user(username=username, password=PASSWORD)
        if tenant is not None:
            Membership.objects.create(user=self.user, tenant=tenant)
        # Like a browser: CSRF is checked, so a POST needs the token a page handed out.
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(self.user)

    def csrf_token(self) -> str:
        self.client.get("/")
        return self.client.cookies["csrftoken"].value


@pytest.fixture
def fast_passwords(settings):
    # Django's real hasher is slow on purpose; these tests are not about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice_member(alice, fast_passwords):
    """The person behind tenant alice, signed in."""
    return Member("alice", alice.tenant)


@pytest.fixture
def outsider(db, fast_passwords):
    """A signed-in user who belongs to no tenant."""
    return Member("carol", None)
