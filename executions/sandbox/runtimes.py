"""The interpreters' versions in the sandbox image, read by a worker and kept in Redis for the API.

A worker asks the image itself, with one run of a fixed script through the same locked-down runner
as any user's script, whenever the image it would run differs from the one last asked (at start,
then on each maintenance pass). The API only reads the Redis key (executions.store): a request never waits on a
container, and while no worker has answered yet the versions are simply unknown (null).
"""

from __future__ import annotations

import json
import logging
import re

import docker.errors
import redis

from executions import store
from executions.sandbox import runner
from executions.sandbox.images import sandbox_image

log = logging.getLogger(__name__)

LANGUAGES = ("python", "bash")
# Runs as Bash in the sandbox; prints one `language=version` line each.
PROBE = """\
echo "python=$(python3 -c 'import platform; print(platform.python_version())')"
echo "bash=${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"
"""
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+~-]{0,31}$")


def parse(output: str) -> dict[str, str]:
    """The versions in the probe's output; anything unexpected is left out, never passed on."""
    versions = {}
    for line in output.splitlines():
        name, _, version = line.partition("=")
        if name in LANGUAGES and VERSION.match(version):
            versions[name] = version
    return versions


def probe() -> dict[str, str]:
    result = runner.run("bash", PROBE, labels={"rce.probe": "runtimes"})
    if result.status != "completed":
        raise runner.SandboxError(f"the version probe ended {result.status}")
    return parse(result.stdout.decode("utf-8", errors="replace"))


def image_id(image: str) -> str:
    return runner.docker_api().inspect_image(image)["Id"]


def record(connection: redis.Redis) -> dict | None:
    """Probe the image unless its versions are already known; return what is stored, or None."""
    image = sandbox_image()
    try:
        current = image_id(image)
    except docker.errors.DockerException as exc:
        log.warning("runtime versions: cannot inspect %s: %s", image, exc)
        return None
    known = stored(connection, image)
    if known and known.get("image_id") == current:
        return known
    try:
        versions = probe()
    except runner.SandboxError as exc:
        log.warning("runtime versions: the probe failed: %s", exc)
        return None
    entry = {"image_id": current, "versions": versions}
    connection.set(store.RUNTIMES_KEY.format(image), json.dumps(entry))
    log.info("runtime versions of %s: %s", image, versions)
    return entry


def stored(connection: redis.Redis, image: str) -> dict | None:
    raw = connection.get(store.RUNTIMES_KEY.format(image))
    return json.loads(raw) if raw else None
