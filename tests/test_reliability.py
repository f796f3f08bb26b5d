"""Faults with real processes: a worker told to stop mid-run, and Redis killed and restarted."""

from __future__ import annotations

import contextlib
import shutil
import signal
import functools
import subprocess
import time

import pytest
import redis
from rq.exceptions import StopRequested

from executions import scheduler, store
from executions import worker as worker_module
from executions.models import Execution
from executions.worker import SandboxWorker
from tests.conftest import free_port, run_worker, wait_for_status



@contextlib.contextmanager
def own_signal_handlers():
    """rq's handler installs its cold-stop handlers in this process: pytest's are put back after."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)

def test_sigterm_lets_a_worker_finish_the_execution_in_hand(alice, worker_process):
    task_id = alice.submit("import time\ntime.sleep(2)\nprint('finished')")
    wait_for_status(task_id, {"running"})
    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(30) == 0
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.stdout) == ("completed", "finished\n")


class PrivateRedis:
    """A redis-server of this test's own, with append-only persistence, that can be killed."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def crash(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def connection(self):
        return redis.Redis(port=self.port, socket_connect_timeout=2)


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    server = PrivateRedis(tmp_path)
    server.start()
    monkeypatch.setattr(store, "connection", functools.cache(server.connection))
    yield server
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(10)


@pytest.mark.usefixtures("transactional_db")
def test_accepted_executions_survive_a_redis_crash(alice, private_redis):
    task_ids = [alice.submit(f"print({i})") for i in range(5)]
    private_redis.crash()
    # While Redis is down, a submission is refused at once and leaves nothing behind.
    response = alice.client.post("/api/v1/execute", "print('late')", content_type="text/plain")
    assert response.status_code == 503
    assert Execution.objects.count() == 5
    # Reads come from the database when the cache is unreachable.
    assert alice.get(task_ids[0])["status"] == "queued"
    private_redis.start()
    run_worker()
    for i, task_id in enumerate(task_ids):
        execution = Execution.objects.get(id=task_id)
        assert (execution.status, execution.stdout) == ("completed", f"{i}\n")


def test_sigterm_stops_an_idle_worker(worker_process):
    # Long enough for it to be listening, and to have run a maintenance pass or two.
    time.sleep(3)
    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(30) == 0


def test_a_stop_request_goes_through_a_maintenance_task(redis_conn):
    # rq raises StopRequested from its SIGTERM handler wherever the worker is, maintenance included.
    worker = SandboxWorker([scheduler.queue()], connection=store.connection())

    def stop():
        raise StopRequested()

    with pytest.raises(StopRequested):
        worker.maintain("stop", stop)
    # Any other failure of a task is logged and the worker goes on.
    worker.maintain("broken", lambda: 1 / 0)


def test_a_stop_request_swallowed_inside_a_maintenance_task_still_stops_the_worker(redis_conn, monkeypatch):
    worker = SandboxWorker([scheduler.queue()], connection=store.connection())

    def remove_container_as_sigterm_finds_it():
        # The SIGTERM arrives during an engine call whose error handler logs any exception and
        # goes on, as runner.remove_container does.
        try:
            worker.request_stop(signal.SIGTERM, None)
        except Exception:
            pass

    monkeypatch.setattr(worker, "maintenance_pass", remove_container_as_sigterm_finds_it)
    with own_signal_handlers():
        with pytest.raises(StopRequested):
            worker.run_maintenance_tasks()


def test_a_stop_request_during_the_engine_check_before_a_job_stops_the_worker(redis_conn, monkeypatch):
    """A SIGTERM that came during the engine's ping before a job was once taken for an unreachable
    engine: the worker waited for it, found it again, and listened for jobs with its stop forgotten."""
    worker = SandboxWorker([scheduler.queue()], connection=store.connection())

    pings = []

    class Engine:
        def ping(self):
            # The SIGTERM comes during the first ping; the engine itself is fine.
            pings.append(1)
            if len(pings) == 1:
                worker.request_stop(signal.SIGTERM, None)

    monkeypatch.setattr(worker_module, "docker_api", Engine)
    monkeypatch.setattr(worker, "make_ahead", lambda: None)
    with own_signal_handlers():
        with pytest.raises(StopRequested):
            worker.check_for_suspension(burst=False)
        # Swallowed on its way, it still stops the worker before the next job.
        monkeypatch.setattr(worker_module, "engine_health", lambda: "ok")
        with pytest.raises(StopRequested):
            worker.check_for_suspension(burst=False)


def test_a_stop_request_waits_for_the_runtime_probe_then_stops_the_worker(redis_conn, monkeypatch):
    """A SIGTERM raised inside the probe's engine calls left its sandbox created and never removed."""
    worker = SandboxWorker([scheduler.queue()], connection=store.connection())
    finished = []

    def probe_as_sigterm_finds_it(connection):
        worker.request_stop(signal.SIGTERM, None)
        finished.append(True)

    monkeypatch.setattr(worker_module, "engine_health", lambda: "ok")
    monkeypatch.setattr(worker_module.janitor, "sweep", lambda *args, **kwargs: None)
    monkeypatch.setattr(worker_module.janitor, "sweep_code_dirs", lambda *args, **kwargs: None)
    monkeypatch.setattr(worker_module.janitor, "mounted_code_dirs", lambda *args, **kwargs: set())
    monkeypatch.setattr(worker_module.reconciler, "reconcile", lambda name: None)
    monkeypatch.setattr(worker, "make_ahead", lambda: None)
    monkeypatch.setattr(worker_module.runtimes, "record", probe_as_sigterm_finds_it)
    with own_signal_handlers():
        with pytest.raises(StopRequested):
            worker.run_maintenance_tasks()
    assert finished == [True]
