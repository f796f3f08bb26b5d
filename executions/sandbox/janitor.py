"""Remove sandbox containers and code directories that outlived their run: a worker killed mid-run
leaves them behind, and a worker killed while idle leaves its sandbox made ahead."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import docker
import docker.errors
from django.conf import settings

from executions import limits
from executions.sandbox.judge import CGROUP_PREFIX
from executions.sandbox.premade import WORKER_LABEL
from executions.sandbox.runner import CODE_DIR, discard_code_dir, own_sandboxes, remove_container

log = logging.getLogger(__name__)

# A container older than the run's deadline plus this margin has no live owner.
GRACE_SECONDS = 60
# A sandbox made ahead younger than this may belong to a worker whose first heartbeat is on its way.
WORKER_GRACE_SECONDS = 30


def max_age_seconds() -> float:
    # A judged test's sandbox lives up to its wall ceiling, which may be longer than a plain run's.
    return max(limits.longest_execution_seconds(), limits.longest_test_seconds()) + GRACE_SECONDS


def sweep(
    api: docker.APIClient, max_age: float | None = None, worker_alive: Callable[[str], bool] = lambda name: True
) -> list[str]:
    """Remove this instance's stale sandbox containers (is_stale); their ids."""
    max_age = max_age_seconds() if max_age is None else max_age
    now = time.time()
    removed = []
    for container in own_sandboxes(api):
        if is_stale(container, now, max_age, worker_alive):
            log.warning("janitor: removing stale sandbox container %s", container["Id"][:12])
            remove_container(api, container["Id"])
            removed.append(container["Id"])
    return removed


def is_stale(container: dict, now: float, max_age: float, worker_alive: Callable[[str], bool]) -> bool:
    """A sandbox made for a run is stale `max_age` seconds after it was created. One made ahead may
    wait for its code as long as its worker lives, and is stale `max_age` seconds after the code
    arrived, as soon as its worker is gone, or once its worker has discarded its code directory."""
    worker = (container.get("Labels") or {}).get(WORKER_LABEL)
    if worker is None:
        return container["Created"] <= now - max_age
    if container["Created"] <= now - WORKER_GRACE_SECONDS and not worker_alive(worker):
        return True
    source = code_source(container)
    if container["Created"] <= now - WORKER_GRACE_SECONDS and source and not os.path.isdir(source):
        # Its worker let go of it (its code directory is gone) but could not remove it: the engine
        # was unreachable then.
        return True
    delivered = code_delivered_at(container)
    return delivered is not None and delivered <= now - max_age


def code_source(container: dict) -> str | None:
    """The host directory a sandbox has at /code, from the engine's container list."""
    for mount in container.get("Mounts") or []:
        if mount.get("Destination") == CODE_DIR and mount.get("Type") == "bind":
            return mount.get("Source")
    return None


def code_delivered_at(container: dict) -> float | None:
    """When the script reached a sandbox (its stdin file is written with it); None if it has not."""
    source = code_source(container)
    try:
        return os.stat(os.path.join(source, "stdin")).st_mtime if source else None
    except OSError:
        return None


def sweep_worker(api: docker.APIClient, worker_name: str) -> list[str]:
    """Remove a worker's sandboxes made ahead whatever their age: the worker is known to be dead."""
    return sweep_labelled(api, f"{WORKER_LABEL}={worker_name}")


def mounted_code_dirs(api: docker.APIClient) -> set[str]:
    """The code directories that this instance's sandbox containers mount."""
    return {os.path.realpath(source) for source in map(code_source, own_sandboxes(api)) if source}


def sweep_execution(api: docker.APIClient, execution_id: str) -> list[str]:
    """Remove an execution's sandbox containers whatever their age: its worker is known to be dead."""
    return sweep_labelled(api, f"rce.execution={execution_id}")


def sweep_labelled(api: docker.APIClient, label: str) -> list[str]:
    """Remove this instance's sandboxes that carry `label`, whatever their age; their ids."""
    removed = []
    for container in own_sandboxes(api, label):
        log.warning("janitor: removing the sandbox container %s of a dead worker", container["Id"][:12])
        remove_container(api, container["Id"])
        removed.append(container["Id"])
    return removed


def sweep_code_dirs(max_age: float | None = None, in_use: set[str] = frozenset()) -> list[str]:
    """Remove the code directories (SANDBOX_CODE_ROOT) last changed more than `max_age` seconds ago,
    except those `in_use` (mounted_code_dirs): a sandbox made ahead waits in one as long as it needs."""
    max_age = max_age_seconds() if max_age is None else max_age
    cutoff = time.time() - max_age
    removed = []
    try:
        entries = list(os.scandir(settings.SANDBOX_CODE_ROOT))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            stale = (
                entry.name.startswith("run-")
                and entry.stat(follow_symlinks=False).st_mtime <= cutoff
                and os.path.realpath(entry.path) not in in_use
            )
        except FileNotFoundError:
            continue
        if stale:
            log.warning("janitor: removing stale code directory %s", entry.name)
            discard_code_dir(entry.path)
            removed.append(entry.path)
    return removed


def sweep_test_cgroups(max_age: float | None = None) -> list[str]:
    """Remove the judged tests' cgroups (executions/sandbox/judge.py) left by a worker that died
    mid-test and last changed more than `max_age` seconds ago. A cgroup still in use cannot be
    removed (the kernel refuses), so one of another instance's live tests is safe."""
    cutoff = time.time() - (max_age_seconds() if max_age is None else max_age)
    root = settings.JUDGE_CGROUP_ROOT
    removed = []
    try:
        hierarchies = [root] if os.path.exists(os.path.join(root, "cgroup.controllers")) else [
            os.path.join(root, name) for name in os.listdir(root)
        ]
    except OSError:
        return removed
    for hierarchy in hierarchies:
        try:
            entries = list(os.scandir(os.path.join(hierarchy, CGROUP_PREFIX.lstrip("/"))))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.rmdir(entry.path)
                    removed.append(entry.path)
            except OSError:
                continue
    if removed:
        log.warning("janitor: removed %d stale test cgroup(s)", len(removed))
    return removed
