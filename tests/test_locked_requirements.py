"""Every machine runs the same code: each lock file pins every package, dependencies included, with
its hashes; the locks agree with what they were made from and with each other; and this very
environment was installed from them (`make lock` refreshes them, see the Makefile)."""

from __future__ import annotations

import json

import re
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
LOCKS = [ROOT / "requirements.txt", ROOT / "requirements-test.txt", ROOT / "bench" / "requirements.txt"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Each requirement of a lock: its version and hashes. Fails on any line that is not one."""
    found: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        text = line.strip().rstrip("\\").strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("--hash=sha256:"):
            assert current, f"{path.name}: a hash before any requirement"
            found[current][1].append(text)
            continue
        match = PIN.match(text)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        current = canonical(match[1])
        found[current] = (match[2], [])
    return found


def pins(path: Path) -> dict[str, str]:
    """The exact pins a .in file asks for itself."""
    return {
        canonical(match[1]): match[2]
        for line in path.read_text().splitlines()
        if (match := PIN.match(line.strip()))
    }


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_locked_package_is_pinned_with_its_hashes(lock):
    locked = entries(lock)
    assert locked
    unhashed = sorted(name for name, (_, hashes) in locked.items() if not hashes)
    assert unhashed == []


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_each_lock_holds_what_its_source_asks_for(lock):
    locked = entries(lock)
    wanted = pins(lock.with_suffix(".in"))
    if lock.name == "requirements-test.txt":
        wanted |= pins(ROOT / "requirements.in")
    assert {name: locked.get(name, (None,))[0] for name in wanted} == wanted


def test_the_tests_run_what_running_runs():
    run, test = entries(LOCKS[0]), entries(LOCKS[1])
    assert set(run) <= set(test)
    assert {name: test[name][0] for name in run} == {name: version for name, (version, _) in run.items()}


def test_this_environment_was_installed_from_the_lock():
    installed = {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    locked = {name: version for name, (version, _) in entries(LOCKS[1]).items()}
    assert {name: installed.get(name) for name in locked} == locked


def test_every_install_checks_the_hashes():
    makefile = (ROOT / "Makefile").read_text()
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r /app/requirements.txt" in dockerfile
    assert '--require-hashes -r "$lock"' in dev
    assert "venv) venv requirements.txt ;;" in dev and "venv-test) venv requirements-test.txt ;;" in dev
    # make run installs only what running needs (and the page's editor); the test tools come with make test.
    assert "scripts/dev.sh packages services venv editor\n" in makefile
    assert "editor" in makefile.split("setup:")[1].split("\n\n")[0]
    assert "venv-test" in makefile.split("setup:")[1].split("\n\n")[0]


def test_the_editor_is_installed_exactly_as_its_lock_says():
    """scripts/install_editor.py installs the lock as it is (or fails), each package's hash checked."""
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    assert 'python3 scripts/install_editor.py "$dir"' in dev
    editor = ROOT / "executions" / "editor"
    wanted = json.loads((editor / "package.json").read_text())["dependencies"]
    lock = json.loads((editor / "package-lock.json").read_text())["packages"]
    # Exact versions, no ranges.
    assert all(version[0].isdigit() for version in wanted.values()), wanted
    for name, version in wanted.items():
        assert lock[f"node_modules/{name}"]["version"] == version
    assert all(entry["integrity"].startswith("sha512-") for path, entry in lock.items() if path)
