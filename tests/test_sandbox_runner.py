"""The sandbox runner against the real Docker engine: limits, verdicts, and fail-closed set-up."""

from __future__ import annotations

import dataclasses
import os
import resource
import time

import pytest

from executions.sandbox import runner
from executions.sandbox.runner import Limits, SandboxError

pytestmark = pytest.mark.no_database

# A limits object as the settings give it; tests derive variations from it.
DEFAULT = Limits(timeout_seconds=5, memory_mb=64, cpus=0.5, pids=64, tmpfs_mb=16, output_limit_bytes=65536)


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    # Tests that kill a worker mid-run leave its code directory for the janitor: not in our way.
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


def run(code: str, language: str = "python", stdin: str = "", **limits) -> runner.RunResult:
    return runner.run(language, code, stdin, limits=dataclasses.replace(DEFAULT, **limits))


def sandbox_containers() -> list:
    return runner.own_sandboxes(runner.docker_api())


def test_it_runs_python_and_captures_both_streams():
    result = run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.status, result.exit_code) == ("completed", 0)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert not result.stdout_truncated and not result.stderr_truncated
    assert 0 <= result.duration_ms < 5000
    assert sandbox_containers() == []


def test_it_gives_the_program_its_stdin_and_not_its_source():
    # If the script were Bash's stdin, `read` would swallow the script's next line.
    result = run("read first\necho \"got $first\"\nread second\necho \"then $second\"", "bash", stdin="a\nb\n")
    assert result.stdout == b"got a\nthen b\n"


def test_it_reports_a_non_zero_exit():
    result = run("echo failing >&2; exit 3", "bash")
    assert (result.status, result.exit_code, result.stderr) == ("failed", 3, b"failing\n")


def test_it_kills_an_infinite_loop_at_the_deadline():
    result = run("while True: pass", timeout_seconds=2)
    assert result.status == "timed_out"
    assert 2000 <= result.duration_ms < 3000
    assert sandbox_containers() == []


def test_it_kills_background_processes_with_the_main_one():
    # The main process exits at once; a child that would print later must never be heard from.
    result = run("(sleep 2; echo LATE) &\necho main done", "bash")
    assert result.status == "completed"
    assert result.stdout == b"main done\n"
    assert result.duration_ms < 2000


def test_it_detects_oom_from_the_container_state():
    result = run("x = bytearray(200 * 1024 * 1024)")
    assert result.status == "oom_killed"


def test_it_waits_for_the_exit_of_a_container_still_running_as_its_stream_ends():
    # Usually the engine has recorded the exit by then (runner.exited_state); when it has not, the
    # exit is waited for, never guessed.
    api = runner.docker_api()
    container = api.create_container(
        runner.sandbox_image(), command=["sh", "-c", "sleep 1; exit 5"], labels={runner.LABEL: "test"}
    )
    try:
        api.start(container["Id"])
        assert runner.exited_state(api, container["Id"]) is None
        assert runner.exit_state(api, container["Id"]) == (5, False)
    finally:
        api.remove_container(container["Id"], force=True)


def test_it_stops_an_output_flood_and_keeps_the_capped_output():
    result = run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 1000)")
    assert result.status == "output_limit_exceeded"
    assert result.stdout_truncated
    assert len(result.stdout) == 65536 and set(result.stdout) == {ord("x")}
    assert len(result.stderr) <= 65536
    assert sandbox_containers() == []


def test_worker_memory_stays_flat_whatever_the_script_prints():
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        result = run("import os\nwhile True:\n    os.write(1, b'z' * 1048576)\n    os.write(2, b'e' * 1048576)")
        assert result.status == "output_limit_exceeded"
        assert len(result.stdout) <= 65536 and len(result.stderr) <= 65536
    # The collector keeps 64 KiB a stream and reads 64 KiB at a time; the rest is drained and dropped.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 32 * 1024


def test_it_passes_nothing_from_the_worker_environment(monkeypatch):
    monkeypatch.setenv("SECRET_CANARY", "do-not-leak")
    result = run("import os\nprint(sorted(os.environ))\nprint(open('/proc/1/environ', 'rb').read())")
    assert b"do-not-leak" not in result.stdout and b"SECRET_CANARY" not in result.stdout
    names = eval(result.stdout.decode().splitlines()[0])
    assert set(names) <= set(runner.ENVIRONMENT) | {"HOSTNAME", "PWD", "SHLVL", "_"}


def test_it_runs_as_nobody_with_no_capabilities_and_no_network():
    code = """
import os, socket
print(os.getuid(), os.getgid())
print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1])
for target in [('1.1.1.1', 53), ('127.0.0.1', 6379)]:
    try:
        socket.create_connection(target, timeout=1)
        print('CONNECTED', target)
    except OSError as exc:
        print('refused')
for path in ['/code/main.py', '/etc/passwd', '/usr/x']:
    try:
        open(path, 'a')
        print('WROTE', path)
    except OSError:
        print('read-only')
"""
    lines = run(code).stdout.decode().split()
    assert lines == ["65534", "65534", "0000000000000000", "refused", "refused", "read-only", "read-only", "read-only"]


def test_it_never_puts_the_code_on_a_command_line():
    seen = {}

    def inspect(container_id):
        seen.update(runner.docker_api().inspect_container(container_id))

    runner.run("python", "print('CANARY-1234')", limits=DEFAULT, on_created=inspect)
    assert "CANARY-1234" not in str(seen["Config"]["Cmd"]) + str(seen["Config"]["Entrypoint"])
    assert "CANARY-1234" not in str(seen["Config"]["Env"])


def code_dirs(settings) -> list:
    root = settings.SANDBOX_CODE_ROOT
    return os.listdir(root) if os.path.isdir(root) else []


@pytest.mark.parametrize("delivery", ["bind", "copy"])
def test_the_script_arrives_read_only_in_code_and_leaves_nothing_behind(settings, delivery):
    settings.SANDBOX_CODE_DELIVERY = delivery
    code = """
import os, stat, sys
for name in sorted(os.listdir('/code')):
    info = os.stat('/code/' + name)
    print(name, oct(stat.S_IMODE(info.st_mode)), os.access('/code/' + name, os.W_OK))
print(sys.stdin.read())
"""
    result = run(code, stdin="input ✓")
    assert result.status == "completed", result
    assert result.stdout.decode().splitlines() == ["main.py 0o444 False", "stdin 0o444 False", "input ✓"]
    assert code_dirs(settings) == []
    assert sandbox_containers() == []


def test_each_run_gets_its_own_code_directory(settings):
    seen = []

    def mounts(container_id):
        seen.append(runner.docker_api().inspect_container(container_id)["Mounts"])

    for _ in range(2):
        runner.run("python", "print(1)", limits=DEFAULT, on_created=mounts)
    sources = [m[0]["Source"] for m in seen]
    assert len(set(sources)) == 2
    assert all(m[0]["RW"] is False and m[0]["Destination"] == "/code" for m in seen)
    assert all(os.path.dirname(source) == os.path.realpath(settings.SANDBOX_CODE_ROOT) for source in sources)
    assert code_dirs(settings) == []


def test_no_other_user_of_the_host_can_read_the_scripts(settings):
    root = settings.SANDBOX_CODE_ROOT
    os.makedirs(root, mode=0o755)
    os.chmod(root, 0o755)
    assert run("print(1)").status == "completed"
    assert os.stat(root).st_mode & 0o777 == 0o700


class TestFailsClosed:
    def test_it_refuses_when_the_code_cannot_be_written(self, settings, tmp_path):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        settings.SANDBOX_CODE_ROOT = str(blocker / "code")
        with pytest.raises(SandboxError, match="could not write the script"):
            run("print(1)")
        assert sandbox_containers() == []

    def test_it_refuses_a_code_directory_the_engine_cannot_see(self, settings, monkeypatch):
        # As when the worker runs in a container whose SANDBOX_CODE_ROOT is not the host's.
        real = runner.write_code_dir
        monkeypatch.setattr(runner, "write_code_dir", lambda *args: real(*args) + "-elsewhere")
        with pytest.raises(SandboxError, match="refused"):
            run("print(1)")
        assert sandbox_containers() == []


    def test_it_refuses_when_the_image_is_missing(self, settings):
        settings.SANDBOX_IMAGE = "rce-sandbox:does-not-exist"
        with pytest.raises(SandboxError, match="build_sandbox_images"):
            run("print(1)")
        assert sandbox_containers() == []

    def test_it_refuses_a_limit_the_engine_rejects(self):
        # The engine refuses memory limits under 6 MiB.
        with pytest.raises(SandboxError, match="refused"):
            run("print(1)", memory_mb=1)
        assert sandbox_containers() == []

    def test_it_refuses_an_unknown_runtime(self):
        with pytest.raises(SandboxError):
            run("print(1)", runtime="no-such-runtime")
        assert sandbox_containers() == []

    def test_it_refuses_a_container_missing_a_restriction(self):
        inspected = {
            "HostConfig": {
                "NetworkMode": "none", "Memory": 64 << 20, "MemorySwap": -1, "NanoCpus": 500000000,
                "PidsLimit": 64, "CapDrop": ["ALL"], "Privileged": False, "ReadonlyRootfs": True,
                "SecurityOpt": ["no-new-privileges"],
            },
            "Config": {"User": "65534:65534"},
            "Path": runner.INIT,
            "Mounts": [{"Type": "volume", "Destination": "/code", "RW": True}],
        }
        with pytest.raises(SandboxError, match="MemorySwap"):
            runner.verify_restrictions(inspected, DEFAULT)
        inspected["HostConfig"]["MemorySwap"] = 64 << 20
        runner.verify_restrictions(inspected, DEFAULT)
        inspected["HostConfig"]["SecurityOpt"] = ["no-new-privileges", "seccomp=unconfined"]
        with pytest.raises(SandboxError, match="SecurityOpt"):
            runner.verify_restrictions(inspected, DEFAULT)
        inspected["HostConfig"]["SecurityOpt"] = ["no-new-privileges"]
        # A judged test's sandbox must be in the cgroup its CPU time and memory are read from.
        with pytest.raises(SandboxError, match="CgroupParent"):
            runner.verify_restrictions(inspected, DEFAULT, cgroup_parent="/rce-judge/1")
        inspected["HostConfig"]["CgroupParent"] = "/rce-judge/1"
        runner.verify_restrictions(inspected, DEFAULT, cgroup_parent="/rce-judge/1")
        with pytest.raises(SandboxError, match="CgroupParent"):
            runner.verify_restrictions(inspected, DEFAULT)

    def test_it_refuses_any_mount_but_a_read_only_code_directory(self):
        hc = {
            "NetworkMode": "none", "Memory": 64 << 20, "MemorySwap": 64 << 20, "NanoCpus": 500000000,
            "PidsLimit": 64, "CapDrop": ["ALL"], "Privileged": False, "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges"],
        }
        code = {"Type": "bind", "Source": "/srv/code/run-1", "Destination": "/code", "RW": False}
        inspected = {"HostConfig": hc, "Config": {"User": "65534:65534"}, "Path": runner.INIT, "Mounts": [code]}
        runner.verify_restrictions(inspected, DEFAULT, "/srv/code/run-1")
        for mounts in (
            [{**code, "RW": True}],
            [{**code, "Source": "/srv/code/run-2"}],
            [{**code, "Destination": "/"}],
            [code, {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/tmp/d", "RW": False}],
            [],
        ):
            inspected["Mounts"] = mounts
            with pytest.raises(SandboxError, match="Mounts"):
                runner.verify_restrictions(inspected, DEFAULT, "/srv/code/run-1")
        inspected["Mounts"] = [{"Type": "volume", "Destination": "/code", "RW": True}]
        runner.verify_restrictions(inspected, DEFAULT, None)
        with pytest.raises(SandboxError, match="Mounts"):
            runner.verify_restrictions(inspected, DEFAULT, "/srv/code/run-1")


class TestOutputCollector:
    def frame(self, stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    def test_it_demultiplexes_frames_split_anywhere(self):
        data = self.frame(1, b"hello ") + self.frame(2, b"oops") + self.frame(1, b"world")
        for cut in range(len(data)):
            collector = runner.OutputCollector(limit=100)
            collector.feed(data[:cut])
            collector.feed(data[cut:])
            assert (bytes(collector.stdout), bytes(collector.stderr)) == (b"hello world", b"oops")

    def test_it_caps_each_stream_separately(self):
        collector = runner.OutputCollector(limit=4)
        collector.feed(self.frame(1, b"abcdef") + self.frame(2, b"xy"))
        assert (bytes(collector.stdout), collector.stdout_truncated) == (b"abcd", True)
        assert (bytes(collector.stderr), collector.stderr_truncated) == (b"xy", False)


class ResetStream:
    """An attach stream the engine reset while the script ran (a stopping engine does this)."""

    def settimeout(self, seconds):
        pass

    def recv(self, size):
        raise ConnectionResetError(104, "Connection reset by peer")

    def close(self):
        pass


class TestBrokenOutputStream:
    """A reset stream may have lost output: the run is the engine's fault, never a result."""

    def test_it_is_the_engines_fault_when_the_engine_is_still_there(self):
        api = runner.docker_api()
        container = api.create_container(runner.sandbox_image(), command=["true"], labels={runner.LABEL: "test"})
        try:
            with pytest.raises(SandboxError, match="engine dropped the sandbox's output") as raised:
                runner.collect(api, container["Id"], ResetStream(), DEFAULT, time.monotonic())
            assert not isinstance(raised.value, runner.EngineLost)
        finally:
            api.remove_container(container["Id"], force=True)

    def test_it_is_a_lost_engine_when_the_engine_stays_away(self, monkeypatch, tmp_path):
        monkeypatch.setattr(runner, "ENGINE_RECOVERY_SECONDS", 1.0)
        gone = runner.docker.APIClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41", timeout=2)
        with pytest.raises(runner.EngineLost, match="engine became unreachable during the run"):
            runner.collect(gone, "0" * 64, ResetStream(), DEFAULT, time.monotonic())
