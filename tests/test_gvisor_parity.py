"""gVisor (runsc) as strict as runc: Docker's seccomp profile applied inside it, or no run at all;
and every byte of output reaching the worker's caps, whatever the write pattern.

The denials and output floods themselves are hostile-corpus cases run under both runtimes
(tests/corpus/priv_denied_under_every_runtime.py, output_one_huge_write*.py, ...).
"""

from __future__ import annotations

import dataclasses

import pytest

from executions import checks
from executions.sandbox import runner
from executions.sandbox.runner import Limits, SandboxError

pytestmark = pytest.mark.no_database

DEFAULT = Limits(timeout_seconds=5, memory_mb=64, cpus=0.5, pids=256, tmpfs_mb=16, output_limit_bytes=65536)
WITH_SECCOMP = {"runc": {"path": "runc"}, "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--oci-seccomp"]}}
WITHOUT_SECCOMP = {"runc": {"path": "runc"}, "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}


def engine_has_runsc() -> bool:
    return "runsc" in runner.docker_api().info().get("Runtimes", {})


RUNTIMES = ["runc"] + (["runsc"] if engine_has_runsc() else [])
needs_runsc = pytest.mark.skipif("runsc" not in RUNTIMES, reason="the engine has no gVisor runtime")


class Engine:
    """An engine that only answers `info()`, with the given runtimes."""

    def __init__(self, runtimes: dict):
        self.runtimes = runtimes

    def info(self) -> dict:
        return {"Runtimes": self.runtimes}


@pytest.fixture(autouse=True)
def fresh_runtime_check(monkeypatch, settings, tmp_path):
    monkeypatch.setattr(runner, "_runtime_checked", {})
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


def test_it_accepts_runsc_registered_with_the_seccomp_profile():
    assert runner.runtime_problem(WITH_SECCOMP, "runsc") is None
    assert runner.runtime_problem({"runsc": {"runtimeArgs": ["--oci-seccomp=true"]}}, "runsc") is None


def test_it_names_what_is_wrong_with_a_runtime():
    assert "without --oci-seccomp" in runner.runtime_problem(WITHOUT_SECCOMP, "runsc")
    assert "without --oci-seccomp" in runner.runtime_problem({"runsc": {"path": "/usr/bin/runsc"}}, "runsc")
    assert "no runtime 'runsc'" in runner.runtime_problem({"runc": {}}, "runsc")


def test_it_refuses_runs_under_runsc_without_the_seccomp_profile():
    with pytest.raises(SandboxError, match="without --oci-seccomp"):
        runner.check_runtime(Engine(WITHOUT_SECCOMP), "runsc")
    # runc is Docker's own: the profile always applies there.
    runner.check_runtime(Engine(WITHOUT_SECCOMP), "runc")


def test_it_asks_the_engine_again_after_a_refusal():
    with pytest.raises(SandboxError):
        runner.check_runtime(Engine(WITHOUT_SECCOMP), "runsc")
    runner.check_runtime(Engine(WITH_SECCOMP), "runsc")
    # A sound answer is kept for a while: the next run does not pay for `docker info`.
    runner.check_runtime(Engine(WITHOUT_SECCOMP), "runsc")


def test_a_run_under_an_unregistered_runtime_never_creates_a_container():
    before = runner.own_sandboxes(runner.docker_api())
    with pytest.raises(SandboxError, match="no runtime 'kata'"):
        runner.run("python", "print(1)", limits=dataclasses.replace(DEFAULT, runtime="kata"))
    assert runner.own_sandboxes(runner.docker_api()) == before


def test_the_system_check_reports_runsc_without_the_seccomp_profile(settings, monkeypatch):
    settings.SANDBOX_RUNTIME = "runsc"
    monkeypatch.setattr(runner, "docker_api", lambda: Engine(WITHOUT_SECCOMP))
    (error,) = checks.check_sandbox_runtime(None)
    assert error.id == "executions.E009" and "--oci-seccomp" in error.msg
    monkeypatch.setattr(runner, "docker_api", lambda: Engine(WITH_SECCOMP))
    assert checks.check_sandbox_runtime(None) == []
    settings.SANDBOX_RUNTIME = ""
    monkeypatch.setattr(runner, "docker_api", lambda: Engine(WITHOUT_SECCOMP))
    assert checks.check_sandbox_runtime(None) == []


def test_the_system_check_reports_runsc_without_the_profile_file(settings, monkeypatch, tmp_path):
    settings.SANDBOX_RUNTIME = "runsc"
    settings.SANDBOX_SECCOMP_PROFILE = str(tmp_path / "missing.json")
    monkeypatch.setattr(runner, "docker_api", lambda: Engine(WITH_SECCOMP))
    (error,) = checks.check_sandbox_runtime(None)
    assert error.id == "executions.E014" and "missing.json" in error.msg and "seccomp-profile" in error.msg


@needs_runsc
def test_this_engine_registers_runsc_with_the_seccomp_profile():
    assert runner.runtime_problem(runner.docker_api().info()["Runtimes"], "runsc") is None


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_output_arrives_whole_with_the_exit_code(runtime):
    # Just under the cap, in one write each, binary: nothing lost, nothing added, not truncated.
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(bytes(range(256)) * 255)\n"
        "sys.stderr.buffer.write(b'\\x00\\xff' * 30000)\n"
        "sys.exit(3)\n"
    )
    result = runner.run("python", code, limits=dataclasses.replace(DEFAULT, runtime=runtime))
    assert (result.status, result.exit_code) == ("failed", 3)
    assert result.stdout == bytes(range(256)) * 255
    assert result.stderr == b"\x00\xff" * 30000
    assert not result.stdout_truncated and not result.stderr_truncated


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_huge_write_is_truncated_and_says_so(runtime):
    # 8 MiB of text: Python holds it twice (str and bytes) within the 64 MiB limit.
    code = "import sys\nsys.stdout.write('x' * (8 << 20))\nsys.exit(0)\n"
    result = runner.run("python", code, limits=dataclasses.replace(DEFAULT, runtime=runtime))
    assert (result.status, result.stdout_truncated, len(result.stdout)) == ("output_limit_exceeded", True, 65536)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_script_killed_by_a_signal_reports_it(runtime):
    result = runner.run("bash", "echo before; kill -9 $$", limits=dataclasses.replace(DEFAULT, runtime=runtime))
    assert (result.status, result.exit_code, result.stdout) == ("failed", 137, b"before\n")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_script_can_start_threads(runtime):
    # Under runsc through runner.runsc_seccomp_profile: clone3 reaches gVisor, which answers ENOSYS.
    code = "import threading\nt = threading.Thread(target=print, args=('in a thread',))\nt.start()\nt.join()\n"
    result = runner.run("python", code, limits=dataclasses.replace(DEFAULT, runtime=runtime))
    assert (result.status, result.stdout) == ("completed", b"in a thread\n"), result.stderr


CLONE3_NEW_NAMESPACES = """
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
for flag in (0x10000000, 0x00020000, 0x40000000, 0x20000000):  # user, mount, net, pid namespaces
    arguments = ctypes.create_string_buffer(struct.pack("11Q", flag, *[0] * 10))
    pid = libc.syscall(435, arguments, 88)
    if pid == 0:
        os._exit(0)
    print(flag, pid, ctypes.get_errno())
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_clone3_cannot_make_namespaces(runtime):
    # clone3's flags are in memory, out of seccomp's reach: Docker makes it ENOSYS under runc, and
    # under runsc it reaches gVisor, which must refuse it too (it does not implement it).
    result = runner.run("python", CLONE3_NEW_NAMESPACES, limits=dataclasses.replace(DEFAULT, runtime=runtime))
    lines = [line.split() for line in result.stdout.decode().splitlines()]
    assert result.status == "completed" and len(lines) == 4, result
    assert all(pid == "-1" and errno in ("1", "38") for _, pid, errno in lines), lines


def test_runs_under_runsc_are_refused_without_the_seccomp_profile(settings, tmp_path):
    settings.SANDBOX_SECCOMP_PROFILE = str(tmp_path / "missing.json")
    with pytest.raises(runner.SandboxError, match="seccomp profile"):
        runner.security_options(dataclasses.replace(DEFAULT, runtime="runsc"))
    (tmp_path / "allow-all.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    settings.SANDBOX_SECCOMP_PROFILE = str(tmp_path / "allow-all.json")
    with pytest.raises(runner.SandboxError, match="default action"):
        runner.security_options(dataclasses.replace(DEFAULT, runtime="runsc"))


def test_a_runsc_sandbox_without_the_profile_is_refused_before_it_starts():
    inspected = {
        "HostConfig": {"SecurityOpt": ["no-new-privileges"], "Runtime": "runsc"},
        "Config": {},
    }
    with pytest.raises(runner.SandboxError, match="SecurityOpt"):
        runner.verify_restrictions(inspected, dataclasses.replace(DEFAULT, runtime="runsc"))
