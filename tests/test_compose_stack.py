"""docker-compose.yml really starts: built offline, healthy, runs an execution, alerts loaded, then gone.

The stack runs on the shared Docker engine under a project name, ports, code directory and sandbox
instance of its own, so that it can run beside the tests and a real stack; `down -v` removes its
containers, volumes and network whatever happens. Every image is made from Debian's packages
(`scripts/dev.sh stack-images`) and tagged by its recipe, and the app image is built through the
engine's cache, so a second run builds nothing but the app's last layers. Grafana has no Debian
package and is not started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, stack_images
from tests.test_stack_files import compose_command

pytestmark = [pytest.mark.no_database, pytest.mark.stack]

SERVICES = ["web", "worker", "retention", "prometheus"]


class Stack:
    def __init__(self, tmp: Path, images: dict[str, str]):
        self.project = f"rcetest{uuid.uuid4().hex[:8]}"
        self.web_port = free_port()
        self.prometheus_port = free_port()
        self.code_root = tmp / "sandbox-code"
        self.code_root.mkdir()
        env_file = tmp / "stack.env"
        # Settings Compose does not read itself: they reach the app only through env_file.
        env_file.write_text(
            f"SANDBOX_SLOTS=1\nWEBHOOK_WORKERS=0\nSANDBOX_INSTANCE={self.project}\nTENANT_RATE_PER_MINUTE=1234\n"
        )
        self.env = {
            "PATH": os.environ["PATH"],
            "COMPOSE_PROJECT_NAME": self.project,
            "ENV_FILE": str(env_file),
            "SECRET_KEY": uuid.uuid4().hex,
            "REDIS_PASSWORD": uuid.uuid4().hex,
            "WEB_PORT": f"127.0.0.1:{self.web_port}",
            "PROMETHEUS_PORT": str(self.prometheus_port),
            "SANDBOX_CODE_ROOT": str(self.code_root),
            # Its own tag, kept between runs for the engine's build cache.
            "APP_IMAGE": "rce-app:stack-test",
            "PIP_NO_INDEX": "1",
            **images,
        }

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*compose_command(), "--file", str(ROOT / "docker-compose.yml"), *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def wait_healthy(self, service: str, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        state = None
        while time.monotonic() < deadline:
            container = self.container(service)
            if container:
                inspect = subprocess.run(["docker", "inspect", container], capture_output=True, text=True)
                state = json.loads(inspect.stdout)[0]["State"] if inspect.returncode == 0 else None
                if state and state.get("Health", {}).get("Status") == "healthy":
                    return
            time.sleep(2)
        logs = self.compose("logs", "--tail", "40", check=False).stdout
        pytest.fail(f"{service} not healthy within {seconds} s: {state}\n{logs}")

    def api(self, method: str, path: str, key: str, body: bytes | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}{path}", data=body, method=method,
            headers={"Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def prometheus(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.prometheus_port}{path}", timeout=10) as response:
            return json.loads(response.read())["data"]

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "volume", "network"):
            args = ["docker", kind, "ls", "-q", "--filter", label] + (["--all"] if kind == "container" else [])
            found += subprocess.run(args, capture_output=True, text=True).stdout.split()
        sandboxes = ["docker", "ps", "-aq", "--filter", f"label=rce.instance={self.project}"]
        return found + subprocess.run(sandboxes, capture_output=True, text=True).stdout.split()


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path, stack_images())
    try:
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        leftovers = stack.leftovers()
        shutil.rmtree(stack.code_root, ignore_errors=True)
        assert not leftovers, f"left behind: {leftovers}"


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"not within {seconds} s: {what}")


def alert_states(stack: Stack) -> dict[str, str]:
    rules = [rule for group in stack.prometheus("/api/v1/rules")["groups"] for rule in group["rules"]]
    return {rule["name"]: rule["state"] for rule in rules}


def image_id(name: str) -> str | None:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", name], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def test_the_stack_starts_runs_an_execution_and_is_removed(stack):
    previous = image_id(stack.env["APP_IMAGE"])
    # --force-rm: a failed build leaves no container behind either.
    stack.compose("build", "--force-rm", "web")
    # A changed app leaves the image it replaces untagged: remove it rather than let them pile up
    # (the venv stage's image stays, as the build's cache).
    if previous and previous != image_id(stack.env["APP_IMAGE"]):
        subprocess.run(["docker", "rmi", previous], capture_output=True)
    stack.compose("up", "--detach", "--no-build", *SERVICES)
    stack.wait_healthy("web")
    stack.wait_healthy("worker")

    # .env settings that Compose does not name reach the app.
    shown = stack.compose(
        "exec", "-T", "web", "python", "manage.py", "shell", "-c",
        "from django.conf import settings; print(settings.SANDBOX_SLOTS, settings.TENANT_RATE_PER_MINUTE)",
    ).stdout.splitlines()[-1]
    assert shown.split() == ["1", "1234"]

    key = stack.compose("exec", "-T", "web", "python", "manage.py", "create_tenant", "stacktest").stdout.split()[-1]
    accepted = stack.api("POST", "/api/v1/execute", key, b"print(6 * 7)")
    assert accepted["status"] == "queued"

    def finished():
        execution = stack.api("GET", f"/api/v1/executions/{accepted['task_id']}", key)
        return execution if execution["status"] not in ("queued", "running") else None

    execution = wait_for(finished, 90, "the execution ends")
    assert (execution["status"], execution["stdout"], execution["error"]) == ("completed", "42\n", None)

    # Prometheus loaded every alert, scrapes both the web and the worker, and none of the alerts
    # that say a part is down is active.
    expected = {rule["alert"] for group in yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"] for rule in group["rules"]}
    rules = [rule for group in stack.prometheus("/api/v1/rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == expected
    assert all(rule["health"] != "err" for rule in rules), rules

    def scraped():
        targets = stack.prometheus("/api/v1/targets")["activeTargets"]
        return {target["labels"]["job"] for target in targets if target["health"] == "up"} == {"web", "worker"}

    wait_for(scraped, 60, "Prometheus scrapes the web and the worker")
    # A rule evaluated before the first scrape of a part that was still starting is pending until
    # the next evaluation (15 s) sees it up: wait for that rather than read one evaluation's state.
    wait_for(
        lambda: (states := alert_states(stack))["NoLiveWorker"] == states["WebDown"] == "inactive",
        45, "NoLiveWorker and WebDown inactive",
    )

    # Without its worker, the stack's Prometheus sees it (pending: the expression holds).
    stack.compose("stop", "--timeout", "10", "worker")
    wait_for(lambda: alert_states(stack)["NoLiveWorker"] != "inactive", 90, "NoLiveWorker pending or firing")
    assert alert_states(stack)["WebDown"] == "inactive"
