"""Two worker hosts on one queue, with real processes: each host is a `manage.py sandbox_workers` with
its own Docker engine (a private dockerd) and its own SANDBOX_INSTANCE and code directory, both on the
test's Redis and database, as deploy/worker-host sets them up. Then one host's engine is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from executions.models import Execution
from tests.conftest import ROOT, manage, stop_workers, subprocess_env
from tests.engines import PrivateEngine, script_running, started_engine
from tests.test_supervision import supervisor_pid, wait_until, worker_pids

SLOTS = 2
TERMINAL = Execution.TERMINAL_STATUSES


class Host:
    def __init__(self, name: str, engine: PrivateEngine, directory: Path):
        self.name = name
        self.engine = engine
        env = subprocess_env(
            DOCKER_HOST=engine.host, SANDBOX_INSTANCE=name, SANDBOX_SLOTS=str(SLOTS), SANDBOX_RESERVE_SLOTS="0",
            SANDBOX_CODE_ROOT=str(directory / "sandbox-code"), WORKER_MAINTENANCE_INTERVAL="2",
        )
        self.log = open(directory / "workers.log", "w")
        self.process = subprocess.Popen(
            manage("sandbox_workers"), env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )

    def workers(self, redis_conn) -> set[str]:
        """The names of this host's live sandbox workers."""
        return {name for name, pid in worker_pids(redis_conn).items() if parent_of(pid) == self.process.pid}

    def freeze(self, redis_conn) -> None:
        """The host is lost at once, as far as Redis and the database can tell: its processes stop,
        and their connections stay open."""
        workers = [pid for pid in worker_pids(redis_conn).values() if parent_of(pid) == self.process.pid]
        self.frozen = [self.process.pid, *workers]
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def stop(self) -> None:
        # A stopped process never handles its SIGTERM.
        for pid in getattr(self, "frozen", []):
            os.kill(pid, signal.SIGKILL)
        stop_workers([self.process])
        self.log.close()


def parent_of(pid: int) -> int | None:
    try:
        return supervisor_pid(pid)
    except OSError:
        return None


@pytest.fixture
def hosts(transactional_db, redis_conn, tmp_path):
    engines, running = [], []
    try:
        # Loading the image is most of an engine's start: both at once.
        with ThreadPoolExecutor(2) as pool:
            for engine in pool.map(lambda _: started_engine(), range(2)):
                engines.append(engine)
        for name, engine in zip(("host-a", "host-b"), engines):
            (tmp_path / name).mkdir()
            running.append(Host(name, engine, tmp_path / name))
        wait_until(lambda: all(len(host.workers(redis_conn)) == SLOTS for host in running), 60, "both hosts up")
        yield running
    finally:
        for engine in engines:
            # A worker waits for a lost engine before it gives up removing its sandbox made ahead.
            if not engine.running:
                engine.start()
        for host in running:
            host.stop()
        for engine in engines:
            engine.remove()


def submit_batch(persona, count: int, seconds: float) -> list[str]:
    return [persona.submit(f"import time\ntime.sleep({seconds})\nprint({n})") for n in range(count)]


def all_terminal(task_ids: list[str], timeout: float) -> list[Execution]:
    def ended():
        rows = list(Execution.objects.filter(id__in=task_ids))
        return rows if all(row.status in TERMINAL for row in rows) else None

    return wait_until(ended, timeout, "every execution terminal")


def hosts_that_ran(rows: list[Execution], hosts: list[Host], redis_conn) -> dict[str, int]:
    workers = {name: host.name for host in hosts for name in host.workers(redis_conn)}
    ran: dict[str, int] = {}
    for row in rows:
        ran[workers.get(row.worker_name, "?")] = ran.get(workers.get(row.worker_name, "?"), 0) + 1
    return ran


def running_on(host: Host, redis_conn) -> list[Execution]:
    """Executions whose script runs now in a sandbox on this host's engine."""
    rows = Execution.objects.filter(status="running", worker_name__in=host.workers(redis_conn))
    return [row for row in rows if script_running(host.engine, str(row.id))]


def test_two_hosts_share_one_queue_and_losing_an_engine_loses_no_execution(alice, hosts, redis_conn):
    a, b = hosts

    # Both hosts take executions from the one queue.
    rows = all_terminal(submit_batch(alice, 8, 0.3), 60)
    assert {row.status for row in rows} == {"completed"}
    ran = hosts_that_ran(rows, hosts, redis_conn)
    assert ran.get("host-a") and ran.get("host-b"), ran

    # Host b's engine is lost while its workers wait for jobs: none of what they take ends in error,
    # since none of it could have run; the other host runs all of it.
    b.engine.stop()
    rows = all_terminal(submit_batch(alice, 6, 0.3), 60)
    assert [(row.status, row.error) for row in rows] == [("completed", "")] * 6
    assert set(hosts_that_ran(rows, hosts, redis_conn)) == {"host-a"}
    assert b.process.poll() is None and len(b.workers(redis_conn)) == SLOTS

    # Its engine comes back, and its workers take executions again.
    b.engine.start()
    deadline = time.monotonic() + 60
    while True:
        rows = all_terminal(submit_batch(alice, 4, 0.3), 60)
        assert {row.status for row in rows} == {"completed"}
        if hosts_that_ran(rows, hosts, redis_conn).get("host-b"):
            break
        assert time.monotonic() < deadline, "host b's workers never took executions again"

    # Lost mid-run: what ran on it ends `error`, everything else completes on the other host.
    task_ids = submit_batch(alice, 8, 3)
    lost = wait_until(lambda: running_on(b, redis_conn), 30, "a script running on host b")
    b.engine.stop()
    stopped = time.monotonic()
    only_the_lost_ended_in_error(task_ids, lost, stopped, "engine")


def only_the_lost_ended_in_error(task_ids, lost, since: float, cause: str) -> tuple[list, list]:
    """Every execution ends; those `lost` on the host that went (and no more than it ran) end
    `error` naming `cause`, the rest complete. Returns all the rows and the errors."""
    rows = all_terminal(task_ids, 90)
    errors = [row for row in rows if row.status == "error"]
    print(f"the lost host's {len(errors)} executions settled {time.monotonic() - since:.1f} s after it went")
    assert {str(row.id) for row in lost} <= {str(row.id) for row in errors}
    assert len(errors) <= SLOTS
    assert all(cause in row.error for row in errors), [row.error for row in errors]
    assert all(row.status == "completed" for row in rows if row not in errors)
    return rows, errors


def test_the_other_hosts_reconciler_settles_what_a_lost_host_was_running(alice, hosts, redis_conn):
    a, b = hosts
    task_ids = submit_batch(alice, 8, 3)
    lost = wait_until(lambda: running_on(b, redis_conn), 30, "a script running on host b")
    b.freeze(redis_conn)
    frozen = time.monotonic()

    rows, errors = only_the_lost_ended_in_error(task_ids, lost, frozen, "worker")
    assert set(hosts_that_ran([row for row in rows if row not in errors], hosts, redis_conn)) == {"host-a"}
