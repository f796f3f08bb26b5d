"""The sandbox images, one per family of languages in the catalog, built where Docker runs.

Each is Debian bookworm's minimal base with tini and its family's packages (languages.IMAGES). From
a Dockerfile written from that recipe where a registry is reachable; otherwise offline, from
Debian's packages: mmdebstrap makes a minimal root filesystem that the engine imports. The tag is a
hash of the recipe, so a change to it builds a new image and workers never run a stale one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typing import TYPE_CHECKING

from django.conf import settings

from executions.sandbox.languages import CATALOG, IMAGES, Image

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

REPOSITORY = "rce-sandbox"
BASE_IMAGE = "debian:bookworm-slim"
# The family of the made-ahead sandboxes and the runtime probe's default.
DEFAULT_FAMILY = "python"

# Every image gets these, after its own packages and setup.
COMMON_PACKAGES = ("tini",)
FINISH = (
    "mkdir -m 0755 -p /code",
    # Execute-only: the kernel marks a process non-dumpable when it runs a binary it cannot read,
    # so the script (same uid) can neither ptrace the init nor read its memory.
    "chmod 0711 /usr/bin/tini-static",
    "find / -xdev -type f -perm /6000 -exec chmod ug-s {} +",
    "rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man",
)
IMPORT_CHANGES = ["USER 65534:65534", "WORKDIR /tmp"]


def commands(image: Image) -> tuple[str, ...]:
    return (*image.setup, *FINISH)


def mmdebstrap_args(image: Image) -> list[str]:
    hooks = [f"--customize-hook=chroot \"$1\" /bin/sh -c {shlex.quote(command)}" for command in commands(image)]
    return ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join((*image.packages, *COMMON_PACKAGES))}", *hooks, "bookworm"]


def dockerfile(image: Image) -> str:
    packages = " ".join((*image.packages, *COMMON_PACKAGES))
    steps = " \\\n && ".join(
        ["apt-get update", f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages}", *commands(image)]
    )
    return f"FROM {BASE_IMAGE}\nRUN {steps}\nUSER 65534:65534\nWORKDIR /tmp\n"


def recipe_tag(family: str) -> str:
    image = IMAGES[family]
    recipe = repr((dockerfile(image), mmdebstrap_args(image), IMPORT_CHANGES)).encode()
    return hashlib.sha256(recipe).hexdigest()[:12]


def sandbox_image(family: str = DEFAULT_FAMILY) -> str:
    """The image of a family; SANDBOX_IMAGE, if set, is one image that holds every language."""
    return settings.SANDBOX_IMAGE or f"{REPOSITORY}-{family}:{recipe_tag(family)}"


def image_for(language: str) -> str:
    return sandbox_image(CATALOG[language].image)


def families() -> list[str]:
    """The image families the catalog uses, each once."""
    return list(dict.fromkeys(language.image for language in CATALOG.values()))


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


def build_with_dockerfile(api: docker.APIClient, family: str, image: str) -> None:
    recipe = io.BytesIO(dockerfile(IMAGES[family]).encode())
    for chunk in api.build(fileobj=recipe, tag=image, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if chunk.get("stream"):
            log.info(chunk["stream"].rstrip())


def build_offline(api: docker.APIClient, family: str, image: str) -> None:
    repository, tag = image.rsplit(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        result = subprocess.run([*mmdebstrap_args(IMAGES[family]), str(rootfs)], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"mmdebstrap failed: {result.stderr[-2000:]}")
        api.import_image_from_file(str(rootfs), repository=repository, tag=tag, changes=IMPORT_CHANGES)


def build(api: docker.APIClient, family: str, image: str, method: str = "auto") -> str:
    """Build `image` for `family` and return the method used: "dockerfile" or "offline"."""
    if method == "auto":
        method = "dockerfile" if registry_reachable(api) else "offline"
    if method == "dockerfile":
        build_with_dockerfile(api, family, image)
    else:
        build_offline(api, family, image)
    return method


def build_missing(api: docker.APIClient, method: str, force: bool, parallel: int, report) -> list[str]:
    """Build every family's image that is missing (all with `force`), `parallel` at a time; the
    failures' messages. `report(message)` hears about each image as it is done."""
    if method == "auto":
        method = "dockerfile" if registry_reachable(api) else "offline"
    wanted = {family: sandbox_image(family) for family in families()}
    todo = {family: image for family, image in wanted.items() if force or not image_exists(api, image)}
    for family, image in wanted.items():
        if family not in todo:
            report(f"{image} exists")

    def one(family: str) -> str | None:
        import time

        started = time.monotonic()
        try:
            build(api, family, todo[family], method)
        except Exception as exc:
            return f"could not build {todo[family]}: {exc}"
        size = api.inspect_image(todo[family])["Size"] / 1e6
        report(f"built {todo[family]} ({method}) in {time.monotonic() - started:.0f} s, {size:.0f} MB")
        return None

    with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        return [failure for failure in pool.map(one, todo) if failure]
