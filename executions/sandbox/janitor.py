"""Remove sandbox containers and code directories that outlived their run: a worker killed mid-run
leaves them behind."""

from __future__ import annotations

import logging
import os
import time

import docker
import docker.errors
from django.conf import settings

from executions.sandbox.runner import discard_code_dir, own_sandboxes, remove_container

log = logging.getLogger(__name__)

# A container older than the run's deadline plus this margin has no live owner.
GRACE_SECONDS = 60


def max_age_seconds() -> float:
    return settings.SANDBOX_TIMEOUT_SECONDS + GRACE_SECONDS


def sweep(api: docker.APIClient, max_age: float | None = None) -> list[str]:
    """Remove this instance's sandbox containers created more than `max_age` seconds ago; their ids."""
    max_age = max_age_seconds() if max_age is None else max_age
    cutoff = time.time() - max_age
    removed = []
    for container in own_sandboxes(api):
        if container["Created"] <= cutoff:
            log.warning("janitor: removing stale sandbox container %s", container["Id"][:12])
            remove_container(api, container["Id"])
            removed.append(container["Id"])
    return removed


def sweep_execution(api: docker.APIClient, execution_id: str) -> list[str]:
    """Remove an execution's sandbox containers whatever their age: its worker is known to be dead."""
    removed = []
    for container in own_sandboxes(api, f"rce.execution={execution_id}"):
        log.warning("janitor: removing the sandbox container %s of a dead worker", container["Id"][:12])
        remove_container(api, container["Id"])
        removed.append(container["Id"])
    return removed


def sweep_code_dirs(max_age: float | None = None) -> list[str]:
    """Remove the code directories (SANDBOX_CODE_ROOT) last changed more than `max_age` seconds ago."""
    max_age = max_age_seconds() if max_age is None else max_age
    cutoff = time.time() - max_age
    removed = []
    try:
        entries = list(os.scandir(settings.SANDBOX_CODE_ROOT))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            stale = entry.name.startswith("run-") and entry.stat(follow_symlinks=False).st_mtime <= cutoff
        except FileNotFoundError:
            continue
        if stale:
            log.warning("janitor: removing stale code directory %s", entry.name)
            discard_code_dir(entry.path)
            removed.append(entry.path)
    return removed
