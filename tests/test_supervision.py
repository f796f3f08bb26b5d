"""`make run`'s processes, for real: a killed worker costs one worker for a moment, Ctrl-C stops it all.

Each test starts `scripts/dev.sh run` itself (web, and the supervisor with two sandbox workers) on a
free port, the test database and a temporary var directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from executions import reconciler
from executions.models import Execution
from executions.supervisor import process_state
from tests.conftest import ROOT, free_port, sandboxes_of, script_running, subprocess_env, wait_for_status

# README, "Slots and supervision": a supervised worker's execution ends within this after its death.
SUPERVISED_BOUND_SECONDS = 5


class Platform:
    def __init__(self, process: subprocess.Popen, port: int, var_dir: Path):
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self.var_dir = var_dir

    def request(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Content-Type": "application/json"})
        request.add_header("Authorization", f"Bearer {(self.var_dir / 'default_api_key').read_text().strip()}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, {}

    def submit(self, code: str) -> str:
        status, body = self.request("/api/v1/executions", {"language": "python", "code": code})
        assert status == 202, body
        return body["task_id"]

    def result(self, task_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.request(f"/api/v1/executions/{task_id}")
            if status == 200 and body["status"] not in ("queued", "running"):
                return body
            time.sleep(0.1)
        raise AssertionError(f"execution {task_id} not finished after {timeout}s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False


def worker_pids(redis_conn) -> dict[str, int]:
    """Live sandbox workers by name, from their heartbeat keys."""
    prefix = reconciler.ALIVE_KEY.format("")
    return {
        key.decode()[len(prefix):]: int(redis_conn.get(key))
        for key in redis_conn.scan_iter(reconciler.ALIVE_KEY.format("*"))
    }


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def alive(pid: int) -> bool:
    # A zombie is dead too: only its parent's wait has not come yet.
    return process_state(pid) not in ("", "Z")


def supervisor_pid(worker_pid: int) -> int:
    return int(Path(f"/proc/{worker_pid}/stat").read_text().split(")")[1].split()[1])


def stray_processes(var_dir: Path) -> list[int]:
    """Processes started for this test (they carry its VAR_DIR) that are still running."""
    marker = f"VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def platform(transactional_db, redis_conn, tmp_path):
    port = free_port()
    env = subprocess_env(
        PORT=str(port), VAR_DIR=str(tmp_path), SANDBOX_SLOTS="2", SANDBOX_RESERVE_SLOTS="0",
        SANDBOX_TIMEOUT_SECONDS="30", WEB_WORKERS="1",
    )
    log = open(tmp_path / "make-run.log", "w")
    # Its own session, as under a terminal: signals reach it only when the test sends them.
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "dev.sh"), "run"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = Platform(process, port, tmp_path)
    try:
        wait_until(lambda: running.healthy() and len(worker_pids(redis_conn)) == 2, 120, "make run up")
        yield running
    finally:
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(60)
        finally:
            # Even when it did not stop in time: left running, its workers would take the jobs of
            # every test after this one (they share its Redis database).
            log.close()
            for pid in stray_processes(tmp_path):
                os.kill(pid, signal.SIGKILL)


def sandbox_started(task_id: str) -> Execution:
    def started():
        # Read after the script was seen running: by then the row names its worker.
        return Execution.objects.get(id=task_id) if script_running(task_id) else None

    return wait_until(started, 30, "sandbox running")


def signal_a_running_worker(platform, redis_conn, signum: int) -> tuple[str, int, Execution, float]:
    """Send `signum` to the worker of a long run: its name, pid, the run as it ended, and after how long."""
    task_id = platform.submit("import time\ntime.sleep(25)")
    name = sandbox_started(task_id).worker_name
    victim = worker_pids(redis_conn)[name]

    os.kill(victim, signum)
    sent_at = time.monotonic()
    try:
        lost = wait_for_status(task_id, {"error", "completed", "failed"}, timeout=30)
    finally:
        if signum == signal.SIGSTOP and alive(victim):
            os.kill(victim, signal.SIGCONT)
    ended_after = time.monotonic() - sent_at
    print(f"the lost execution ended {ended_after:.2f} s after its worker's {signal.Signals(signum).name}")
    return name, victim, lost, ended_after


def test_a_killed_worker_costs_one_worker_for_a_moment(platform, redis_conn):
    name, victim, lost, ended_after = signal_a_running_worker(platform, redis_conn, signal.SIGKILL)

    assert lost.status == "error" and "worker" in lost.error
    assert ended_after <= SUPERVISED_BOUND_SECONDS
    # Its sandbox went with it, long before the janitor's age limit.
    assert sandboxes_of(str(lost.id)) == []
    # The web kept serving, and the workers (the survivor, or the replacement) run new submissions.
    assert platform.healthy()
    assert platform.result(platform.submit("print(6 * 7)"))["stdout"] == "42\n"
    replaced = wait_until(lambda: len(pids := worker_pids(redis_conn)) == 2 and pids, 15, "a replacement worker")
    assert name not in replaced and victim not in replaced.values()
    assert platform.process.poll() is None


def test_ctrl_c_stops_everything_after_the_execution_in_hand(platform, redis_conn):
    task_id = platform.submit("import time\ntime.sleep(2)\nprint('finished')")
    sandbox_started(task_id)
    workers = list(worker_pids(redis_conn).values())
    supervisor = supervisor_pid(workers[0])

    platform.process.send_signal(signal.SIGINT)
    platform.process.wait(60)

    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.stdout) == ("completed", "finished\n")
    assert not platform.healthy()
    assert [pid for pid in [supervisor, *workers] if alive(pid)] == []
    assert stray_processes(platform.var_dir) == []
    assert worker_pids(redis_conn) == {}


def test_a_killed_supervisor_is_started_again_and_the_web_stays_up(platform, redis_conn):
    task_id = platform.submit("import time\ntime.sleep(2)\nprint('finished')")
    name = sandbox_started(task_id).worker_name
    workers = worker_pids(redis_conn)
    supervisor = supervisor_pid(workers[name])

    os.kill(supervisor, signal.SIGKILL)
    # Its workers finish the execution in hand and stop, as after one SIGTERM ...
    wait_until(lambda: not any(alive(pid) for pid in workers.values()), 30, "the old workers stopped")
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.stdout) == ("completed", "finished\n")
    # ... while make run keeps the web up and starts a new supervisor, whose workers take new work.
    assert platform.healthy()
    replaced = wait_until(
        lambda: len(pids := worker_pids(redis_conn)) == 2 and not set(pids) & set(workers) and pids, 30,
        "a new supervisor's workers",
    )
    assert supervisor_pid(next(iter(replaced.values()))) != supervisor
    assert platform.result(platform.submit("print(6 * 7)"))["stdout"] == "42\n"
    assert platform.process.poll() is None
    assert "the workers' supervisor was killed (signal 9)" in (platform.var_dir / "make-run.log").read_text()


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_killed_webhook_worker_takes_its_scheduler_along(platform, redis_conn):
    sandbox_workers = set(worker_pids(redis_conn).values())
    supervisor = supervisor_pid(next(iter(sandbox_workers)))
    (webhooks,) = wait_until(
        lambda: [pid for pid in children(supervisor) if pid not in sandbox_workers], 15, "the webhook worker"
    )
    # rq's scheduler of the webhooks queue (deliveries' retries), a process the worker forked.
    (scheduler,) = wait_until(lambda: children(webhooks), 30, "the webhook worker's scheduler")

    os.kill(webhooks, signal.SIGKILL)
    wait_until(lambda: not alive(scheduler), 5, "the orphaned scheduler killed")
    replacement = wait_until(
        lambda: [pid for pid in children(supervisor) if pid not in sandbox_workers and pid != webhooks], 15,
        "a new webhook worker",
    )
    assert replacement and platform.healthy()


def test_a_stopped_worker_is_replaced_and_its_execution_ends(platform, redis_conn):
    name, victim, lost, ended_after = signal_a_running_worker(platform, redis_conn, signal.SIGSTOP)

    # README, "Slots and supervision": killed once stopped for STOPPED_SECONDS (5), then settled.
    assert lost.status == "error" and "worker" in lost.error
    assert ended_after <= 5 + SUPERVISED_BOUND_SECONDS
    assert not alive(victim)
    replaced = wait_until(lambda: len(pids := worker_pids(redis_conn)) == 2 and pids, 15, "a replacement worker")
    assert name not in replaced
    assert platform.result(platform.submit("print(6 * 7)"))["stdout"] == "42\n"
