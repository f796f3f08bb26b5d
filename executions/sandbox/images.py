"""The sandbox image: one Debian bookworm image with python3 and bash, built where Docker runs.

From the Dockerfile beside this file where a registry is reachable; otherwise offline, from Debian's
packages: mmdebstrap makes a minimal root filesystem that the engine imports. The tag is a hash of
both recipes, so a change to either builds a new image and workers never run a stale one.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

IMAGE_DIR = Path(__file__).resolve().parent / "image"
REPOSITORY = "rce-sandbox"
BASE_IMAGE = "debian:bookworm-slim"
# The output relay gVisor runs need (see image/relay.py); the Dockerfile copies it to the same place.
RELAY = "/usr/local/lib/rce/relay.py"

# The offline recipe, equivalent to image/Dockerfile.
MMDEBSTRAP_ARGS = [
    "mmdebstrap",
    "--quiet",
    "--variant=minbase",
    "--include=python3,tini",
    "--customize-hook=mkdir -m 0755 -p \"$1/code\"",
    # Execute-only: the kernel marks a process non-dumpable when it runs a binary it cannot read,
    # so the script (same uid) can neither ptrace the init nor read its memory.
    "--customize-hook=chmod 0711 \"$1/usr/bin/tini-static\"",
    "--customize-hook=find \"$1\" -xdev -type f -perm /6000 -exec chmod ug-s {} +",
    "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/usr/share/doc \"$1\"/usr/share/man",
    "--customize-hook=mkdir -m 0755 -p \"$1/usr/local/lib/rce\"",
    f"--customize-hook=upload {{relay}} {RELAY}",
    f"--customize-hook=chmod 0644 \"$1{RELAY}\"",
    "bookworm",
]
IMPORT_CHANGES = ["USER 65534:65534", "WORKDIR /tmp"]


def recipe_tag() -> str:
    recipe = (
        (IMAGE_DIR / "Dockerfile").read_bytes()
        + (IMAGE_DIR / "relay.py").read_bytes()
        + repr((MMDEBSTRAP_ARGS, IMPORT_CHANGES)).encode()
    )
    return hashlib.sha256(recipe).hexdigest()[:12]


def sandbox_image() -> str:
    return settings.SANDBOX_IMAGE or f"{REPOSITORY}:{recipe_tag()}"


def image_exists(api: docker.APIClient, image: str) -> bool:
    # Imported here: web processes name the image (for its runtime versions) without the docker package.
    import docker.errors

    try:
        api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def registry_reachable(api: docker.APIClient) -> bool:
    import docker.errors

    try:
        api.pull(BASE_IMAGE)
    except docker.errors.APIError as exc:
        log.info("no registry: %s", exc.explanation)
        return False
    return True


def build_with_dockerfile(api: docker.APIClient, image: str) -> None:
    for chunk in api.build(path=str(IMAGE_DIR), tag=image, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if chunk.get("stream"):
            log.info(chunk["stream"].rstrip())


def build_offline(api: docker.APIClient, image: str) -> None:
    repository, tag = image.rsplit(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        args = [arg.replace("{relay}", str(IMAGE_DIR / "relay.py")) for arg in MMDEBSTRAP_ARGS]
        subprocess.run([*args, str(rootfs)], check=True)
        api.import_image_from_file(str(rootfs), repository=repository, tag=tag, changes=IMPORT_CHANGES)


def build(api: docker.APIClient, image: str, method: str = "auto") -> str:
    """Build `image` and return the method used: "dockerfile" or "offline"."""
    if method == "auto":
        method = "dockerfile" if registry_reachable(api) else "offline"
    if method == "dockerfile":
        build_with_dockerfile(api, image)
    else:
        build_offline(api, image)
    return method
