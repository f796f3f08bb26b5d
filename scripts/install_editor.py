"""Install the browser page's editor as executions/editor/package-lock.json pins it, without Node.js.

    python3 scripts/install_editor.py executions/editor

Each package of the lock is fetched from the npm registry as its tarball, checked against the lock's
sha512 integrity hash before anything is written, and unpacked into node_modules/<name>: regular
files and directories only, every path inside the package. This is what `npm ci --ignore-scripts`
does for a lock of packages without dependencies, and it spares `make run` installing Node.js and
npm (hundreds of Debian packages) for static files. Nothing of a package runs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath

# npm's own setting, where a machine reaches the registry through a mirror.
REGISTRY = os.environ.get("npm_config_registry", "https://registry.npmjs.org").rstrip("/")


class Refused(Exception):
    pass


def packages(lock: dict) -> dict[str, tuple[str, str]]:
    """name -> (version, integrity) of each package the lock installs."""
    found = {}
    for path, entry in lock["packages"].items():
        if not path:
            continue
        name = path.removeprefix("node_modules/")
        if "node_modules/" in name:
            raise Refused(f"{path}: nested packages are not supported")
        found[name] = (entry["version"], entry["integrity"])
    return found


def checked(data: bytes, integrity: str) -> bytes:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise Refused(f"integrity {integrity!r}: only sha512 is accepted")
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != expected:
        raise Refused("the tarball does not match the lock's integrity hash")
    return data


def unpack(data: bytes, target: Path) -> None:
    """The tarball's package/ into `target`, which is replaced; links, devices and paths outside refused."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or len(path.parts) < 2 or path.parts[0] != "package":
                    raise Refused(f"{member.name!r}: a path outside the package")
                if not (member.isfile() or member.isdir()):
                    raise Refused(f"{member.name!r}: not a regular file or directory")
                destination = staging.joinpath(*path.parts[1:])
                if member.isdir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.extractfile(member).read())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def install(directory: Path, fetch=None) -> None:
    fetch = fetch or download
    lock_path = directory / "package-lock.json"
    modules = directory / "node_modules"
    modules.mkdir(exist_ok=True)
    for name, (version, integrity) in packages(json.loads(lock_path.read_text())).items():
        data = checked(fetch(name, version), integrity)
        unpack(data, modules / name)
    # What scripts/dev.sh compares to skip an install that is up to date.
    shutil.copyfile(lock_path, modules / ".rce-installed-lock")


def download(name: str, version: str) -> bytes:
    url = f"{REGISTRY}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


if __name__ == "__main__":
    try:
        install(Path(sys.argv[1]))
    except Refused as exc:
        sys.exit(f"install_editor: refused: {exc}")
