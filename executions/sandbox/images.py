"""The sandbox images, one per family of languages in the catalog, built where Docker runs.

Each is Debian bookworm's minimal base with tini, python3 and the output relay gVisor runs need
(image/relay.py), and its family's packages (languages.IMAGES). From a Dockerfile written from that
recipe where a registry is reachable; otherwise offline, from Debian's packages: mmdebstrap makes a
minimal root filesystem that the engine imports. The tag is a hash of the recipe and the relay, so
a change to either builds a new image and workers never run a stale one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shlex
import subprocess
import tarfile
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

IMAGE_DIR = Path(__file__).resolve().parent / "image"
# The output relay gVisor runs need (see image/relay.py), in every image: python3 runs it.
RELAY = "/usr/local/lib/rce/relay.py"
RELAY_SOURCE = IMAGE_DIR / "relay.py"

# Every image gets these, after its own packages and setup.
COMMON_PACKAGES = ("tini", "python3")
FINISH = (
    "mkdir -m 0755 -p /code",
    f"chmod 0644 {RELAY}",
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
    # {relay} becomes the relay's path at build time: the recipe (and the tag) do not name the checkout.
    relay = [f"--customize-hook=mkdir -m 0755 -p \"$1{Path(RELAY).parent}\"", f"--customize-hook=upload {{relay}} {RELAY}"]
    hooks = [f"--customize-hook=chroot \"$1\" /bin/sh -c {shlex.quote(command)}" for command in commands(image)]
    packages = ",".join(dict.fromkeys((*image.packages, *COMMON_PACKAGES)))
    return ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}", *relay, *hooks, "bookworm"]


def dockerfile(image: Image) -> str:
    packages = " ".join(dict.fromkeys((*image.packages, *COMMON_PACKAGES)))
    steps = " \\\n && ".join(
        ["apt-get update", f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages}", *commands(image)]
    )
    return f"FROM {BASE_IMAGE}\nCOPY relay.py {RELAY}\nRUN {steps}\nUSER 65534:65534\nWORKDIR /tmp\n"


def recipe_tag(family: str) -> str:
    image = IMAGES[family]
    recipe = repr((dockerfile(image), mmdebstrap_args(image), IMPORT_CHANGES)).encode() + RELAY_SOURCE.read_bytes()
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


def build_context(family: str) -> io.BytesIO:
    """The Dockerfile and the relay, as the tar the engine builds from."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile(IMAGES[family]).encode()), ("relay.py", RELAY_SOURCE.read_bytes())):
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
    context.seek(0)
    return context


def build_with_dockerfile(api: docker.APIClient, family: str, image: str) -> None:
    recipe = build_context(family)
    for chunk in api.build(fileobj=recipe, custom_context=True, tag=image, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if chunk.get("stream"):
            log.info(chunk["stream"].rstrip())


def build_offline(api: docker.APIClient, family: str, image: str) -> None:
    repository, tag = image.rsplit(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        args = [arg.replace("{relay}", str(RELAY_SOURCE)) for arg in mmdebstrap_args(IMAGES[family])]
        result = subprocess.run([*args, str(rootfs)], capture_output=True, text=True)
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
    wanted = {family: sandbox_image(family) for family in families()}
    todo = {family: image for family, image in wanted.items() if force or not image_exists(api, image)}
    for family, image in wanted.items():
        if family not in todo:
            report(f"{image} exists")
    if not todo:
        # Every `make run` comes here: with nothing to build, it asks no registry anything.
        return []
    if method == "auto":
        method = "dockerfile" if registry_reachable(api) else "offline"
    report(f"building {len(todo)} sandbox image(s) ({method}): about a minute each, {parallel} at a time; once per recipe")

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
