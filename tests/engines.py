"""Docker engines of a test's own: a private dockerd on its own socket, data root and exec root, with
the sandbox image loaded from the shared engine. Stopping one is a container engine lost, restarted,
or a second worker host's engine, without touching the engine every other test uses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import pytest

from executions.models import Execution
from executions.sandbox import janitor
from executions.sandbox.images import sandbox_image
from executions.sandbox.runner import LABEL


class PrivateEngine:
    def __init__(self, live_restore: bool = True):
        self.directory = Path(tempfile.mkdtemp(prefix="rce-dockerd-"))
        self.host = f"unix://{self.directory}/docker.sock"
        self.config = self.directory / "daemon.json"
        self.config.write_text(json.dumps({"live-restore": live_restore}))
        self.process: subprocess.Popen | None = None
        # A bridge of its own. `--bridge none` would make dockerd delete the interface docker0,
        # which is the shared engine's (one network namespace): its builds then fail.
        self.bridge = "rce" + self.directory.name.removeprefix("rce-dockerd-")[-10:]
        digest = int(hashlib.sha256(self.bridge.encode()).hexdigest(), 16)
        self.bridge_address = f"10.{200 + digest % 50}.{digest // 50 % 250 + 1}.1/24"

    def start(self) -> None:
        d = self.directory
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], check=False, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "addr", "replace", self.bridge_address, "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        self.process = subprocess.Popen(
            ["dockerd", "--host", self.host, "--config-file", str(self.config), "--data-root", f"{d}/root",
             "--exec-root", f"{d}/exec", "--pidfile", f"{d}/docker.pid", "--bridge", self.bridge,
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, timeout=30)

    def load_image(self) -> None:
        save = subprocess.Popen(["docker", "save", sandbox_image()], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        assert save.wait() == 0

    def sandboxes(self, **filters) -> list[dict]:
        return self.api().containers(all=True, filters={"label": LABEL, **filters})

    def remove(self) -> None:
        """Remove every container and the engine itself. A stopped engine is started again first: with
        live-restore its containers outlived it, and only it can remove them."""
        if self.process is not None and not self.running:
            self.start()
        if self.running:
            for container in self.api().containers(all=True):
                self.api().remove_container(container["Id"], force=True)
            self.stop()
        # A container shim (or a container caught starting) that outlived a stop of the engine is no
        # longer the restarted engine's to remove; nor is the mount the engine made of its data root.
        for pid in self.leftover_processes():
            os.kill(pid, signal.SIGKILL)
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{self.directory}/")), reverse=True):
            subprocess.run(["umount", "--lazy", mount], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, stderr=subprocess.DEVNULL)

    def leftover_processes(self) -> list[int]:
        """Processes started for this engine (their command line names its directory) and their
        children (a container's init), still running."""
        marker = str(self.directory).encode()
        parents: dict[int, int] = {}
        found = set()
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit():
                    continue
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if marker in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        while children := {pid for pid, parent in parents.items() if parent in found} - found:
            found |= children
        return sorted(found)


def started_engine(**options) -> PrivateEngine:
    if shutil.which("dockerd") is None:
        pytest.fail("the Docker engine is not installed: run the tests with `make test`")
    engine = PrivateEngine(**options)
    try:
        engine.start()
        engine.load_image()
    except BaseException:
        engine.remove()
        raise
    return engine


def script_running(engine: PrivateEngine, task_id: str) -> bool:
    """Whether the execution's script has reached its sandbox, running on this engine."""
    container_id = Execution.objects.get(id=task_id).container_id
    for container in engine.sandboxes(id=container_id, status="running") if container_id else []:
        source = janitor.code_source(container)
        if source and os.path.exists(os.path.join(source, "stdin")):
            return True
    return False
