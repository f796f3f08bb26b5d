"""Sandboxes made ahead of their execution (executions.sandbox.premade), against the real engine:
complete before the code arrives, a run in one as in a sandbox made for it, the deadline from
delivery, and never a sandbox left without its worker."""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import time

import docker.errors
import pytest

from executions.sandbox import janitor, premade, runner
from executions.sandbox.runner import Limits, SandboxError, docker_api, own_sandboxes
from tests.conftest import script_running, wait_for_status

OOM_OR_MISSED = {"oom_killed", "failed"}
RUNTIMES = ["runc"] + (["runsc"] if "runsc" in docker_api().info().get("Runtimes", {}) else [])


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


@pytest.fixture
def runtime(request, settings):
    settings.SANDBOX_RUNTIME = "" if request.param == "runc" else request.param
    return request.param


@pytest.fixture
def ahead():
    """This process's slot, as a worker uses it; emptied after the test."""
    yield premade
    premade.discard()


def limits(**changes) -> Limits:
    return dataclasses.replace(Limits.from_settings(), **changes)


def made_ahead(ahead, language: str, code: str, stdin: str = "", **changes) -> runner.RunResult:
    """Run one script in a sandbox made ahead, asserting that it did run there."""
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    result = ahead.run(language, code, stdin, limits=limits(**changes))
    assert result.container_id == sandbox.container_id
    ahead.tidy()
    return result


def cold(language: str, code: str, stdin: str = "", **changes) -> runner.RunResult:
    return runner.run(language, code, stdin, limits=limits(**changes))


@pytest.mark.no_database
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_it_carries_every_restriction_before_the_code_arrives(ahead, runtime):
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    inspected = docker_api().inspect_container(sandbox.container_id)
    runner.verify_restrictions(inspected, Limits.from_settings(), sandbox.code_dir)
    config = inspected["Config"]
    assert inspected["State"]["Running"]
    # Under gVisor through the output relay (runner.container_command).
    assert config["Cmd"][-3:] == ["/bin/sh", "-c", runner.LAUNCHER]
    assert config["Cmd"] == runner.launcher_command(Limits.from_settings())
    assert (config["OpenStdin"], config["StdinOnce"], config["Tty"]) == (True, True, False)
    assert sorted(config["Env"]) == sorted(f"{k}={v}" for k, v in runner.ENVIRONMENT.items())
    assert config["Labels"][premade.WORKER_LABEL] == "test-worker"
    assert config["Labels"][premade.WORKER_PID_LABEL] == str(os.getpid())
    # Its code directory is empty, and closed to the sandbox's user until the code arrives.
    assert os.listdir(sandbox.code_dir) == []
    assert stat.S_IMODE(os.stat(sandbox.code_dir).st_mode) == 0o700


@pytest.mark.no_database
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_a_run_in_it_is_a_run_in_a_sandbox_made_for_it(ahead, runtime):
    scripts = [
        ("python", "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(4)", ""),
        ("bash", 'read first\necho "got $first"\nread second\necho "then $second"', "a\nb\n"),
        ("python", "import os, sys\nprint(sorted(os.environ))\nprint(os.getuid(), os.getgid())\n"
                   "print(sorted(os.listdir('/code')), repr(sys.stdin.read()))\n"
                   "print([oct(os.stat('/code/' + n).st_mode & 0o777) for n in sorted(os.listdir('/code'))])\n"
                   "print(os.readlink('/proc/self/fd/0'), sorted(os.listdir('/proc/self/fd')))", "input ✓"),
        ("bash", "(sleep 2; echo LATE) &\necho main done", ""),
        ("python", "x = bytearray(200 * 1024 * 1024)", ""),
        ("python", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", ""),
    ]
    for language, code, stdin in scripts:
        expected = cold(language, code, stdin)
        got = made_ahead(ahead, language, code, stdin)
        same = ("status", "exit_code", "stdout", "stderr", "stdout_truncated", "stderr_truncated")
        if OOM_OR_MISSED >= {expected.status, got.status} and expected.exit_code == 137:
            # Under load the engine sometimes misses the OOM event, made ahead or not (seen here in
            # the cold path under runc too; the corpus's mem_* cases allow it under gVisor).
            assert got.exit_code == expected.exit_code, code
            same = same[2:]
        assert [getattr(got, f) for f in same] == [getattr(expected, f) for f in same], code


@pytest.mark.no_database
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_nothing_of_the_launcher_remains_beside_the_script(ahead, runtime):
    code = """
import os
for pid in sorted(os.listdir('/proc'), key=lambda p: (len(p), p)):
    if pid.isdigit():
        try:
            print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode().strip())
        except OSError as exc:
            print(pid, type(exc).__name__)
"""
    lines = made_ahead(ahead, "python", code).stdout.decode().splitlines()
    # The init (whose arguments name the launcher, as they name the command of any sandbox), under
    # gVisor the output relay, the script, which the launcher became, and the run's timer: a fork
    # of the launcher and its sleep.
    launcher = " ".join(runner.launcher_command(Limits.from_settings()))
    relay = [f"2 {launcher}"] if runtime == "runsc" else []
    assert len(lines) == 4 + len(relay) and lines[0].startswith("1 "), lines
    assert lines[1:-3] == relay, lines
    assert lines[-3].endswith(" python3 -u /code/main.py"), lines
    assert lines[-2].endswith(" /bin/sh -c " + runner.LAUNCHER), lines
    assert lines[-1].endswith(f" sleep {runner.timer_seconds(Limits.from_settings())}"), lines


@pytest.mark.no_database
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_the_deadline_counts_from_the_code_delivery(ahead, runtime):
    ahead.prepare("test-worker")
    # Idle for longer than the deadline: a clock that started with the container would kill at once.
    time.sleep(2.5)
    sandbox = ahead.ready()
    result = ahead.run("python", "import time\ntime.sleep(1)\nprint('done')", limits=limits(timeout_seconds=2))
    assert (result.container_id, result.status, result.stdout) == (sandbox.container_id, "completed", b"done\n")
    started = time.monotonic()
    result = made_ahead(ahead, "python", "while True: pass", timeout_seconds=2)
    assert result.status == "timed_out"
    assert 2000 <= result.duration_ms < 3000
    assert time.monotonic() - started >= 2


@pytest.mark.no_database
def test_a_run_with_a_lower_memory_limit_lowers_the_sandboxs_before_its_code_arrives(ahead):
    seen = {}
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    result = ahead.run(
        "python", "x = bytearray(40 * 1024 * 1024)\nprint('fits')", limits=limits(memory_mb=32),
        on_created=lambda cid: seen.update(docker_api().inspect_container(cid)),
    )
    assert (result.status, result.container_id) == ("oom_killed", sandbox.container_id)
    assert (seen["HostConfig"]["Memory"], seen["HostConfig"]["MemorySwap"]) == (32 << 20, 32 << 20)
    assert made_ahead(ahead, "python", "x = bytearray(40 * 1024 * 1024)\nprint('fits')").stdout == b"fits\n"


@pytest.mark.no_database
@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
@pytest.mark.parametrize("change", ["cpus", "pids", "memory_mb"])
def test_a_run_with_other_limits_takes_a_sandbox_of_its_own(ahead, runtime, change):
    if runtime == "runc" and change == "memory_mb":
        pytest.skip("runc lowers the memory limit of the sandbox made ahead (test above)")
    # Lower than the platform's; gVisor needs many of its pids for itself.
    changes = {"cpus": 0.25, "pids": Limits.from_settings().pids - 8, "memory_mb": 32}
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    seen = {}
    result = ahead.run(
        "python", "print(1)", limits=limits(**{change: changes[change]}),
        on_created=lambda cid: seen.update(docker_api().inspect_container(cid)),
    )
    assert result.status == "completed" and result.container_id != sandbox.container_id
    field, value = {"cpus": ("NanoCpus", 250_000_000), "pids": ("PidsLimit", changes["pids"]),
                    "memory_mb": ("Memory", 32 << 20)}[change]
    assert seen["HostConfig"][field] == value
    # The one made ahead never received anything, and goes with the job.
    assert os.listdir(sandbox.code_dir) == []
    assert ahead.ready() is None
    ahead.tidy()
    with pytest.raises(docker.errors.NotFound):
        docker_api().inspect_container(sandbox.container_id)


@pytest.mark.no_database
@pytest.mark.parametrize("tamper", ["kill", "raise_memory", "drop_stream"])
def test_a_sandbox_made_ahead_that_changed_never_gets_the_code(ahead, tamper):
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    api = docker_api()
    if tamper == "kill":
        api.kill(sandbox.container_id)
    elif tamper == "raise_memory":
        api.update_container(sandbox.container_id, mem_limit="128m", memswap_limit="128m")
    else:
        # As when the engine restarts (live-restore): the container lives on, its stream ends.
        sandbox.stream.shutdown(socket.SHUT_RDWR)
    result = ahead.run("python", "print('ran')", limits=limits())
    # It ran, fully restricted, in a sandbox of its own; nothing reached the changed one.
    assert (result.status, result.stdout) == ("completed", b"ran\n")
    assert result.container_id != sandbox.container_id
    assert os.listdir(sandbox.code_dir) == []
    ahead.tidy()
    assert own_sandboxes(api) == []


@pytest.mark.no_database
def test_a_sandbox_that_cannot_be_made_leaves_nothing_and_runs_take_the_cold_path(ahead, monkeypatch, settings):
    api = docker_api()

    def refuse(container_id):
        raise docker.errors.APIError("no start today")

    with monkeypatch.context() as patch:
        patch.setattr(api, "start", refuse)
        with pytest.raises(SandboxError, match="could not start"):
            ahead.prepare("test-worker")
    assert ahead.ready() is None
    assert own_sandboxes(api) == []
    assert os.listdir(settings.SANDBOX_CODE_ROOT) == []
    result = ahead.run("python", "print('cold')", limits=limits())
    assert (result.status, result.stdout) == ("completed", b"cold\n")
    settings.SANDBOX_IMAGE = "rce-sandbox:does-not-exist"
    with pytest.raises(SandboxError, match="build_sandbox_images"):
        ahead.prepare("test-worker")
    assert own_sandboxes(api) == []


@pytest.mark.no_database
def test_it_is_made_only_with_bind_delivery_and_when_enabled(ahead, settings):
    settings.SANDBOX_CODE_DELIVERY = "copy"
    ahead.prepare("test-worker")
    assert ahead.ready() is None
    settings.SANDBOX_CODE_DELIVERY = "bind"
    settings.SANDBOX_MAKE_AHEAD = False
    ahead.prepare("test-worker")
    assert ahead.ready() is None


@pytest.mark.no_database
def test_the_janitor_removes_it_only_once_its_worker_is_gone(ahead, monkeypatch):
    api = docker_api()
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    # Idle far longer than any run, while its worker lives: kept, and so is its code directory.
    assert janitor.sweep(api, max_age=0, worker_alive=lambda name: True) == []
    assert janitor.sweep_code_dirs(max_age=0, in_use=janitor.mounted_code_dirs(api)) == []
    # A worker just started may not have its first heartbeat yet.
    assert janitor.sweep(api, max_age=0, worker_alive=lambda name: False) == []
    monkeypatch.setattr(janitor, "WORKER_GRACE_SECONDS", 0)
    assert janitor.sweep(api, worker_alive=lambda name: name != "test-worker") == [sandbox.container_id]
    assert janitor.sweep_code_dirs(max_age=0, in_use=janitor.mounted_code_dirs(api)) == [sandbox.code_dir]


@pytest.mark.no_database
def test_the_janitor_removes_one_its_live_worker_let_go_of_without_removing_it(ahead, monkeypatch):
    api = docker_api()
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    monkeypatch.setattr(janitor, "WORKER_GRACE_SECONDS", 0)
    assert janitor.sweep(api, worker_alive=lambda name: True) == []
    # Destroyed while its engine was away: the directory went, the container stayed.
    runner.discard_code_dir(sandbox.code_dir)
    assert janitor.sweep(api, worker_alive=lambda name: True) == [sandbox.container_id]


@pytest.mark.no_database
def test_the_janitor_removes_one_whose_run_outlived_any_deadline(ahead):
    api = docker_api()
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    os.chmod(sandbox.code_dir, 0o700)
    # As if its code had arrived an hour ago, and its worker had hung since.
    stdin = os.path.join(sandbox.code_dir, "stdin")
    open(stdin, "w").close()
    an_hour_ago = time.time() - 3600
    os.utime(stdin, (an_hour_ago, an_hour_ago))
    assert janitor.sweep(api, worker_alive=lambda name: True) == [sandbox.container_id]


@pytest.mark.no_database
def test_a_dead_workers_sandboxes_go_at_once(ahead):
    api = docker_api()
    ahead.prepare("test-worker")
    sandbox = ahead.ready()
    assert janitor.sweep_worker(api, "another-worker") == []
    assert janitor.sweep_worker(api, "test-worker") == [sandbox.container_id]
    assert own_sandboxes(api) == []


def worker_sandboxes() -> list[dict]:
    return own_sandboxes(docker_api(), premade.WORKER_LABEL)


def wait_until(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)
    return value


def test_a_worker_runs_each_execution_in_the_sandbox_it_made_ahead_and_removes_it_when_it_stops(
    alice, worker_process
):
    (first,) = wait_until(worker_sandboxes)
    task_id = alice.submit("print('hello')")
    execution = wait_for_status(task_id, {"completed", "failed", "error"})
    assert (execution.status, execution.stdout, execution.container_id) == ("completed", "hello\n", first["Id"])
    # Used once, removed after its job; the next one is made while nothing waits.
    (second,) = wait_until(lambda: [c for c in worker_sandboxes() if c["Id"] != first["Id"]])
    assert [c["Id"] for c in wait_until(lambda: len(worker_sandboxes()) == 1 and worker_sandboxes())] == [second["Id"]]
    worker_process.terminate()
    worker_process.wait(30)
    assert worker_sandboxes() == []


def test_a_worker_killed_mid_run_leaves_its_sandbox_to_the_janitor(alice, worker_process):
    task_id = alice.submit("import time\ntime.sleep(60)")
    wait_until(lambda: script_running(task_id))
    worker_process.kill()
    worker_process.wait(10)
    name = wait_for_status(task_id, {"running"}).worker_name
    (container,) = worker_sandboxes()
    assert container["Labels"][premade.WORKER_LABEL] == name
    assert janitor.sweep_worker(docker_api(), name) == [container["Id"]]


@pytest.mark.no_database
def test_it_tells_an_open_silent_stream_from_an_ended_or_talking_one():
    ours, engine = socket.socketpair()
    ours.settimeout(30)
    assert premade.stream_open(ours)
    assert ours.gettimeout() == 30
    engine.sendall(b"x")
    assert not premade.stream_open(ours)
    ours.recv(1)
    engine.close()
    assert not premade.stream_open(ours)
    ours.close()


def test_a_worker_told_to_stop_as_its_job_ends_stops_at_once_and_leaves_nothing(alice, worker_process):
    wait_until(worker_sandboxes)
    task_id = alice.submit("print(1)")
    wait_for_status(task_id, {"completed"})
    # While it removes the used sandbox and makes the next one: a warm shutdown, not a lost signal.
    worker_process.terminate()
    worker_process.wait(20)
    assert worker_sandboxes() == []
