"""The languages' versions in the sandbox images, read by a worker and kept in Redis for the API.

A worker asks each image itself, with one run of a fixed script (the catalog's version probes)
through the same locked-down runner as any user's program, whenever an image it would run differs
from the one last asked (at start, then on each maintenance pass, one image per pass; one worker at
a time for each image). The API only
reads the Redis keys (executions.store): a request never waits on a container, and while no worker
has answered yet the versions are simply unknown (null).
"""

from __future__ import annotations

import json
import logging
import re

import docker.errors
import redis

from executions import store
from executions.sandbox import languages, runner
from executions.sandbox.images import families, image_exists, sandbox_image
from executions.sandbox.languages import StageLimits

log = logging.getLogger(__name__)

VERSION = re.compile(r"^[0-9][0-9A-Za-z.+~-]{0,31}$")
# Virtual machines start to print their version: more than an interpreter's defaults.
RETRY_SECONDS = 600
# Longer than a probe may take (its time limit, plus creating and removing its sandbox); released
# when the probe ends, so this only matters if its worker died meanwhile.
PROBE_LOCK_SECONDS = 60
PROBE_LIMITS = StageLimits(timeout_seconds=20.0, memory_mb=512, pids=128, cpus=1.0)


def script(family: str) -> str:
    """Bash that prints one `language=version` line for each language of the family's image."""
    return "".join(f'echo "{language.name}=$({language.version})"\n' for language in languages.of_image(family))


def parse(output: str, family: str | None = None) -> dict[str, str]:
    """The versions in the probe's output; anything unexpected is left out, never passed on."""
    known = {language.name for language in languages.of_image(family)} if family else set(languages.NAMES)
    versions = {}
    for line in output.splitlines():
        name, _, version = line.partition("=")
        if name in known and VERSION.match(version):
            versions[name] = version
    return versions


def probe(family: str = "python") -> dict[str, str]:
    stage = runner.Stage(sandbox_image(family), "exec bash /code/main.sh")
    limits = runner.Limits.for_stage(PROBE_LIMITS)
    result = runner.run_stage(stage, {"main.sh": script(family).encode()}, frozenset(), limits, {"rce.probe": "runtimes"})
    if result.status != "completed":
        raise runner.SandboxError(f"the version probe ended {result.status}")
    return parse(result.stdout.decode("utf-8", errors="replace"), family)


def image_id(image: str) -> str:
    return runner.docker_api().inspect_image(image)["Id"]


def record(connection: redis.Redis) -> dict | None:
    """Probe the first image whose versions are not known yet; what is stored for it, or None
    when every image is known (or cannot be probed now)."""
    for family in families():
        image = sandbox_image(family)
        try:
            if not image_exists(runner.docker_api(), image):
                continue
            current = image_id(image)
        except docker.errors.DockerException as exc:
            log.warning("runtime versions: cannot inspect %s: %s", image, exc)
            return None
        known = stored(connection, image)
        if known and known.get("image_id") == current:
            continue
        # One worker asks each image: the others, starting at the same moment, go on to the next
        # image (or do nothing), instead of each starting the same probe sandbox at once.
        lock = store.RUNTIMES_PROBE_KEY.format(image)
        if not connection.set(lock, 1, nx=True, ex=PROBE_LOCK_SECONDS):
            continue
        try:
            return ask(connection, family, image, current)
        finally:
            connection.delete(lock)
    return None


def ask(connection: redis.Redis, family: str, image: str, current: str) -> dict:
    """Probe the image and store what it said (or that it failed, for RETRY_SECONDS)."""
    try:
        versions = probe(family)
    except runner.SandboxError as exc:
        # Not asked again until RETRY_SECONDS have passed: a failing image must not cost a
        # sandbox on every maintenance pass, nor keep the images after it from being asked.
        log.warning("runtime versions: the probe of %s failed: %s", image, exc)
        failed = {"image_id": current, "versions": {}, "failed": True}
        connection.set(store.RUNTIMES_KEY.format(image), json.dumps(failed), ex=RETRY_SECONDS)
        return failed
    entry = {"image_id": current, "versions": versions}
    connection.set(store.RUNTIMES_KEY.format(image), json.dumps(entry))
    log.info("runtime versions of %s: %s", image, versions)
    return entry


def stored(connection: redis.Redis, image: str) -> dict | None:
    raw = connection.get(store.RUNTIMES_KEY.format(image))
    return json.loads(raw) if raw else None
