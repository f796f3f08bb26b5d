"""The container engine restarts mid-run, with real processes: a Docker engine of the test's own
(live-restore, as `make run` configures it) and a worker pointed at it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import pytest

from executions.models import Execution
from executions.sandbox import janitor
from executions.sandbox.images import sandbox_image
from executions.sandbox.runner import LABEL, docker_api
from tests.conftest import ROOT, manage, stop_workers, subprocess_env, wait_for_status


class PrivateEngine:
    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="rce-dockerd-"))
        self.host = f"unix://{self.directory}/docker.sock"
        self.config = self.directory / "daemon.json"
        self.config.write_text(json.dumps({"live-restore": True}))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        d = self.directory
        self.process = subprocess.Popen(
            ["dockerd", "--host", self.host, "--config-file", str(self.config), "--data-root", f"{d}/root",
             "--exec-root", f"{d}/exec", "--pidfile", f"{d}/docker.pid", "--bridge", "none",
             "--iptables=false", "--ip6tables=false"],
            stdout=open(d / "dockerd.log", "ab"), stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                self.api().ping()
                return
            except Exception:
                time.sleep(0.1)
        raise AssertionError(f"the private dockerd did not start; see {d}/dockerd.log")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, timeout=30)

    def load_image(self) -> None:
        save = subprocess.Popen(["docker", "save", sandbox_image()], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        assert save.wait() == 0

    def remove(self) -> None:
        if self.process and self.process.poll() is None:
            for container in self.api().containers(all=True):
                self.api().remove_container(container["Id"], force=True)
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def engine():
    if shutil.which("dockerd") is None:
        pytest.fail("the Docker engine is not installed: run the tests with `make test`")
    engine = PrivateEngine()
    try:
        engine.start()
        engine.load_image()
        yield engine
    finally:
        engine.remove()


@pytest.fixture
def engine_worker(engine, transactional_db):
    env = subprocess_env(DOCKER_HOST=engine.host, WORKER_MAINTENANCE_INTERVAL="2")
    processes = [subprocess.Popen(manage("rqworker", "sandbox"), env=env, cwd=ROOT)]
    yield processes[0]
    stop_workers(processes)


def sandboxes(engine: PrivateEngine, **filters) -> list[dict]:
    return engine.api().containers(all=True, filters={"label": LABEL, **filters})


def script_running(engine: PrivateEngine, task_id: str) -> bool:
    """Whether the execution's script has reached its sandbox, running on this engine."""
    container_id = Execution.objects.get(id=task_id).container_id
    for container in sandboxes(engine, id=container_id, status="running") if container_id else []:
        source = janitor.code_source(container)
        if source and os.path.exists(os.path.join(source, "stdin")):
            return True
    return False


def test_an_engine_restart_ends_the_run_in_error_and_the_worker_recovers(alice, engine, engine_worker):
    task_id = alice.submit("import time\nprint('started', flush=True)\ntime.sleep(60)")
    wait_for_status(task_id, {"running"})
    deadline = time.monotonic() + 30
    while not script_running(engine, task_id):
        assert time.monotonic() < deadline, "the sandbox never started"
        time.sleep(0.05)
    container_id = Execution.objects.get(id=task_id).container_id

    engine.stop()
    engine.start()

    execution = wait_for_status(task_id, {"error", "completed", "failed", "timed_out"}, timeout=60)
    assert execution.status == "error"
    assert "engine" in execution.error
    # The sandbox does not outlive its run, on the engine that kept it alive through the restart.
    deadline = time.monotonic() + 30
    while sandboxes(engine, id=container_id):
        assert time.monotonic() < deadline, "the sandbox outlived its run"
        time.sleep(0.2)

    # The same worker goes on serving, with no restart of its own.
    after = alice.submit("print('after the restart')")
    assert wait_for_status(after, {"completed", "error", "failed"}).stdout == "after the restart\n"
    assert engine_worker.poll() is None
    # Nothing ever ran on the shared engine.
    assert not docker_api().containers(all=True, filters={"label": f"rce.execution={task_id}"})
    assert not docker_api().containers(all=True, filters={"id": container_id})
