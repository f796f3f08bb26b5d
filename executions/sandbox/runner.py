"""Run one untrusted script in a fresh, locked-down Docker container, and always remove it.

The contract: `run()` either returns a RunResult whose status says how the script ended
(completed, failed, timed_out, oom_killed, output_limit_exceeded, cancelled), or raises SandboxError when the
platform could not run it with every restriction in place. In that case the script did not run.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import docker
import docker.errors
import requests
from django.conf import settings

from executions.sandbox import languages
from executions.sandbox.images import DEFAULT_FAMILY, RELAY, image_for, sandbox_image
from executions.sandbox.languages import OUT_DIR, Language, StageLimits, safe_name

log = logging.getLogger(__name__)

LABEL = "rce.sandbox"
INSTANCE_LABEL = "rce.instance"
CODE_DIR = "/code"
# An init as PID 1 forwards the kill to every process and reaps orphans. Under runc it is the
# image's own tini, execute-only for the sandbox user: the kernel marks a process that runs a binary
# it cannot read non-dumpable, so the script (same uid) cannot ptrace it or read its memory.
# gVisor must read a binary to load it, and its ptrace is its own, so under runsc it is Docker's.
INIT = "/usr/bin/tini-static"


def uses_docker_init(limits: Limits) -> bool:
    return limits.runtime == "runsc"
SANDBOX_UID = 65534


# The script is a file and its stdin is another file: the script never travels on a command line
# and never is the interpreter's stdin (a `read` in a Bash script must not swallow the script).
# Arguments are the shell's positional parameters, "$@": they are never parsed by a shell.
def run_command(language: Language, timed: bool = False) -> str:
    timer = f"{TIMER}; " if timed else ""
    return f'{timer}exec {language.run} "$@" < {CODE_DIR}/stdin'


# A run keeps its deadline inside its sandbox too: a timer (coreutils' sleep, in every image) kills
# the program at its limit where it runs, while the worker's kill goes through the container engine,
# which an overloaded host makes slow to act. The timer starts once the worker, its own clock
# already running, sends the seconds on the sandbox's stdin, so it never ends a script before the
# worker's deadline. It kills every process it may signal, the script's (under gVisor the init
# too), and the init exits with its child. It is an orphan, the init's child, so that the program
# has no child it did not make (a wait for all its children would wait for the timer), and it holds
# none of the output pipes. It runs as the script's user, so the script may stop or kill it: the
# worker's deadline stays in force as the backstop.
TIMER = '( { sleep "$seconds"; kill -9 -1; } </dev/null >/dev/null 2>&1 & )'
READ_SECONDS = 'case "$seconds" in ""|*[!0-9.]*) exit 97;; esac'


def timer_seconds(limits: Limits) -> str:
    """The run's time limit as the sandbox's timer reads it. Fail closed: timeout takes 0 as none."""
    if not limits.timeout_seconds >= 0.001:
        raise SandboxError(f"invalid time limit {limits.timeout_seconds!r}")
    return f"{limits.timeout_seconds:.3f}"


def timed_run_command(language: Language) -> str:
    """A run stage's command: it waits for its seconds on stdin, then runs under the timer."""
    return f"IFS= read -r seconds || exit 97; {READ_SECONDS}; {run_command(language, timed=True)}"


# A compile stage's diagnostics go to stderr; its stdout is a tar of what it made, and nothing else.
# The compiler reads /dev/null and writes to a file that tail copies to stderr as it grows (until the
# compiler ends, so a killed compile keeps what it said): were its stdout and stderr the stage's
# pipes, a source that includes /proc/self/fd/1 would read its own output stream, waiting for itself
# until the compile time limit.
COMPILE_LOG = "/tmp/compile.log"


def compile_command(language: Language) -> str:
    return (
        f"mkdir {OUT_DIR} && : >{COMPILE_LOG} && {{ {{ {language.compile.command}\n}} </dev/null >>{COMPILE_LOG} 2>&1 & "
        f"tail -s 0.05 -c +1 -f --pid=$! {COMPILE_LOG} >&2; wait $!; }} && exec tar -cf - -C {OUT_DIR} ."
    )


# The process under the init of a sandbox made ahead of its execution (executions.sandbox.premade).
# It reads one line naming the language and the time limit from its stdin, which the worker writes
# once the files are in /code, starts the run's timer and becomes that interpreter: nothing of it
# remains beside them, and the script's own stdin is the file. Its stdin closes as the worker lets
# go of it (StdinOnce), so nothing more can come that way.
# Only the default image's interpreted languages are made ahead.
MADE_AHEAD_LANGUAGES = tuple(
    language.name for language in languages.of_image(DEFAULT_FAMILY) if language.compile is None
)
LAUNCHER = (
    f"read -r language seconds || exit 97; {READ_SECONDS}; case \"$language\" in "
    + " ".join(f"{name}) {run_command(languages.CATALOG[name], timed=True)};;" for name in MADE_AHEAD_LANGUAGES)
    + " esac; exit 97"
)


def container_command(command: list[str], limits: Limits) -> list[str]:
    """What runs under the init. Under gVisor, through the image's relay: a large write to the
    container's own stdout returns short there, and Python's unbuffered streams drop the rest."""
    if limits.runtime == "runsc":
        return ["/usr/bin/python3", "-I", "-S", RELAY, *command]
    return command


def launcher_command(limits: Limits) -> list[str]:
    """What a sandbox made ahead runs while it waits for its code."""
    return container_command(["/bin/sh", "-c", LAUNCHER], limits)


# gVisor applies Docker's seccomp profile only when runsc runs with this flag; without it a script
# can create namespaces, chroot, and open raw and packet sockets inside its sandbox.
RUNSC_SECCOMP_FLAG = "--oci-seccomp"
# The engine's answer is kept this long per process (asking costs 10-80 ms): an engine reloaded
# without the flag is refused from then on.
RUNTIME_CHECK_SECONDS = 60.0
_runtime_checked: dict[str, float] = {}


def runsc_seccomp_profile() -> str:
    """Docker's default seccomp profile for runs under gVisor, but for clone3, as JSON.

    Debian's runsc (20221219) answers a rule's errnoRet with EPERM, so Docker's "clone3: ENOSYS"
    (clone3's flags cannot be filtered, so Docker makes glibc fall back to clone, whose flags are)
    became EPERM, on which glibc does not fall back: no thread could start. Here clone3 reaches
    gVisor, which does not implement it and answers ENOSYS itself; clone keeps Docker's filter, so
    namespaces stay refused (the corpus checks both under runsc). Missing or unexpected: refused.
    """
    path = settings.SANDBOX_SECCOMP_PROFILE
    try:
        return seccomp_for_runsc(path, os.stat(path).st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise SandboxError(
            f"gVisor runs need Docker's default seccomp profile at {path} ({exc}); "
            "`scripts/dev.sh seccomp-profile` fetches it (make run does; in Compose, into ./var/seccomp)"
        ) from exc


@functools.cache
def seccomp_for_runsc(path: str, mtime: int) -> str:
    with open(path) as source:
        profile = json.load(source)
    if profile.get("defaultAction") != "SCMP_ACT_ERRNO":
        raise ValueError("its default action is not SCMP_ACT_ERRNO")
    clone3 = [rule for rule in profile["syscalls"] if rule.get("names") == ["clone3"] and rule.get("action") == "SCMP_ACT_ERRNO"]
    if not clone3:
        raise ValueError("it has no clone3 rule to change")
    for rule in clone3:
        rule["action"] = "SCMP_ACT_ALLOW"
        rule.pop("errnoRet", None)
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)


def security_options(limits: Limits) -> list[str]:
    # Never "unconfined": runc gets Docker's default profile because none is named.
    options = ["no-new-privileges"]
    if limits.runtime == "runsc":
        options.append(f"seccomp={runsc_seccomp_profile()}")
    return options


def check_runtime(api: docker.APIClient, runtime: str) -> None:
    """Fail closed: refuse a runtime the engine does not have, or gVisor without the seccomp profile."""
    if not runtime or runtime == "runc":
        return
    if time.monotonic() < _runtime_checked.get(runtime, 0.0):
        return
    try:
        registered = api.info().get("Runtimes") or {}
    except UNREACHABLE as exc:
        raise EngineUnavailable(f"the container engine is unreachable: {exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(f"the container engine is unreachable: {exc}") from exc
    problem = runtime_problem(registered, runtime)
    if problem:
        raise SandboxError(problem)
    _runtime_checked[runtime] = time.monotonic() + RUNTIME_CHECK_SECONDS


def runtime_problem(registered: dict[str, dict], runtime: str) -> str | None:
    """What is wrong with `runtime` among the engine's registered runtimes (`docker info`), if anything."""
    if runtime not in registered:
        return f"the container engine has no runtime {runtime!r}"
    args = registered[runtime].get("runtimeArgs") or []
    if runtime == "runsc" and not any(arg in (RUNSC_SECCOMP_FLAG, f"{RUNSC_SECCOMP_FLAG}=true") for arg in args):
        return (
            "gVisor (runsc) is registered without --oci-seccomp, so Docker's seccomp profile would not "
            "apply inside the sandbox: add it to runsc's runtimeArgs in the engine's daemon.json and "
            "reload the engine (systemctl reload docker, or SIGHUP to dockerd)"
        )
    return None


@dataclass(frozen=True)
class Stage:
    """What one container runs: a fixed shell command in an image, with the program's arguments."""

    image: str
    command: str
    args: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    # Its command first waits for a line on its stdin, which closes once the worker has written it.
    waits: bool = False


def run_stage_of(language: Language, args: tuple[str, ...] = (), code: str = "", timed: bool = False) -> Stage:
    """The run stage of the program whose entry point is `code` (Java's names the class to run);
    `timed`, one that waits for its time limit on stdin and keeps it (timed_run_command)."""
    environment = tuple(language.environment_for(code).items())
    command = timed_run_command(language) if timed else run_command(language)
    return Stage(image_for(language.name), command, tuple(args), environment, waits=timed)


def compile_stage_of(language: Language, code: str = "") -> Stage:
    return Stage(image_for(language.name), compile_command(language), (), tuple(language.environment_for(code).items()))


# Nothing from the worker's environment reaches the container: this is the whole environment.
ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# After the kill, how long to keep draining output before giving up on the stream.
DRAIN_GRACE_SECONDS = 10.0
# After the output stream ends, the container stops within milliseconds; one that does not has
# lost its stream to the engine.
EXIT_WAIT_SECONDS = 10
# How long a run waits for a restarting container engine before it gives up on it.
ENGINE_RECOVERY_SECONDS = 30.0
# How often a running sandbox asks whether its execution was cancelled (one Redis EXISTS).
CANCEL_POLL_SECONDS = 0.25
READ_CHUNK = 64 * 1024
STDOUT, STDERR = 1, 2


class SandboxError(Exception):
    """The platform could not run the script safely. The message is shown to the user."""


class EngineUnavailable(SandboxError):
    """The container engine could not be reached before the script was delivered: the script did
    not run, so the execution may run elsewhere (executions.runs queues it again)."""


class EngineLost(SandboxError):
    """The container engine went away during the run and did not come back within
    ENGINE_RECOVERY_SECONDS: the script may have run, and its sandbox is left to the janitor."""


class StreamBroken(Exception):
    """The output stream failed (a reset, not its end) while the script ran; collect() tells why."""


# How the Docker SDK fails when its engine is gone (socket removed, connection refused or reset) or
# does not answer; an APIError is an answer.
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float
    memory_mb: int
    cpus: float
    pids: int
    tmpfs_mb: int
    output_limit_bytes: int
    runtime: str = ""

    @classmethod
    def from_settings(cls, runtime: str | None = None) -> Limits:
        runtime = settings.SANDBOX_RUNTIME if runtime is None else runtime
        return cls(
            timeout_seconds=settings.SANDBOX_TIMEOUT_SECONDS,
            memory_mb=settings.SANDBOX_MEMORY_MB,
            cpus=settings.SANDBOX_CPUS,
            pids=settings.SANDBOX_RUNSC_PIDS_LIMIT if runtime == "runsc" else settings.SANDBOX_PIDS_LIMIT,
            tmpfs_mb=settings.SANDBOX_TMPFS_MB,
            output_limit_bytes=settings.SANDBOX_OUTPUT_LIMIT_BYTES,
            runtime=runtime,
        )

    @classmethod
    def for_stage(cls, stage: StageLimits, runtime: str | None = None) -> Limits:
        """A stage's limits from the catalog, the platform's settings where it names none."""
        base = cls.from_settings(runtime)
        pids = stage.pids or base.pids
        return cls(
            timeout_seconds=stage.timeout_seconds or base.timeout_seconds,
            memory_mb=stage.memory_mb or base.memory_mb,
            cpus=stage.cpus or base.cpus,
            # gVisor's own threads count against the limit: never below the platform's for runsc.
            pids=max(pids, base.pids) if base.runtime == "runsc" else pids,
            tmpfs_mb=stage.tmpfs_mb or base.tmpfs_mb,
            output_limit_bytes=stage.output_limit_bytes or base.output_limit_bytes,
            runtime=base.runtime,
        )


@dataclass
class RunResult:
    status: str
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: int
    container_id: str
    # A compiled language's compile stage: its diagnostics (stderr) and its duration.
    compile_output: bytes = b""
    compile_duration_ms: int | None = None


_client: docker.APIClient | None = None


def docker_api() -> docker.APIClient:
    """One low-level client per process, configured from DOCKER_HOST like the docker CLI."""
    global _client
    if _client is None:
        _client = docker.from_env(timeout=30).api
    return _client


def own_sandboxes(api: docker.APIClient, *labels: str) -> list[dict]:
    """This instance's sandbox containers, running or not, that also carry every label given."""
    selector = [LABEL, f"{INSTANCE_LABEL}={settings.SANDBOX_INSTANCE}", *labels]
    return api.containers(all=True, filters={"label": selector})


def host_config(api: docker.APIClient, limits: Limits, code_source: str | None = None, cgroup_parent: str = "") -> dict:
    memory = limits.memory_mb * 1024 * 1024
    tmpfs = limits.tmpfs_mb * 1024 * 1024
    kwargs = dict(
        network_mode="none",
        mem_limit=memory,
        # Equal to the memory limit: no swap at all beyond it.
        memswap_limit=memory,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        cap_drop=["ALL"],
        security_opt=security_options(limits),
        privileged=False,
        read_only=True,
        init=uses_docker_init(limits),
        ipc_mode="private",
        shm_size=4 * 1024 * 1024,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={tmpfs},nr_inodes=4096,mode=1777"},
        ulimits=[
            docker.types.Ulimit(name="nofile", soft=256, hard=256),
            docker.types.Ulimit(name="fsize", soft=tmpfs, hard=tmpfs),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        oom_score_adj=1000,
        log_config=docker.types.LogConfig(type="none"),
    )
    if code_source:
        kwargs["mounts"] = [docker.types.Mount(CODE_DIR, code_source, type="bind", read_only=True)]
    if limits.runtime:
        kwargs["runtime"] = limits.runtime
    if cgroup_parent:
        kwargs["cgroup_parent"] = cgroup_parent
    return api.create_host_config(**kwargs)


def verify_restrictions(inspected: dict, limits: Limits, code_source: str | None = None, cgroup_parent: str = "") -> None:
    """Fail closed: refuse to start a container whose engine dropped any restriction we asked for.

    `code_source` is the host directory bind-mounted read-only at /code, or None when the files are
    copied into a volume there; either way /code is the container's only mount besides its tmpfs.
    """
    hc = inspected["HostConfig"]
    memory = limits.memory_mb * 1024 * 1024
    expected = {
        "NetworkMode": "none",
        "Memory": memory,
        "MemorySwap": memory,
        "NanoCpus": int(limits.cpus * 1e9),
        "PidsLimit": limits.pids,
        "CapDrop": ["ALL"],
        "Privileged": False,
        "ReadonlyRootfs": True,
    }
    wrong = [name for name, value in expected.items() if hc.get(name) != value]
    security = hc.get("SecurityOpt") or []
    if any(opt not in security for opt in security_options(limits)) or any("unconfined" in opt for opt in security):
        wrong.append("SecurityOpt")
    if hc.get("CapAdd"):
        wrong.append("CapAdd")
    if limits.runtime and hc.get("Runtime") != limits.runtime:
        wrong.append("Runtime")
    if (hc.get("CgroupParent") or "") != cgroup_parent:
        wrong.append("CgroupParent")
    config = inspected["Config"]
    if config.get("User") != f"{SANDBOX_UID}:{SANDBOX_UID}":
        wrong.append("User")
    # A sandbox made ahead reads its language from stdin; that stdin must close when the worker lets go.
    if config.get("Tty") or (config.get("OpenStdin") and not config.get("StdinOnce")):
        wrong.append("Stdin")
    # Docker's init does not show in Path; the image's does.
    if uses_docker_init(limits) != bool(hc.get("Init")) or not (hc.get("Init") or inspected.get("Path") == INIT):
        wrong.append("Init")
    if not mounts_as_expected(inspected.get("Mounts") or [], code_source):
        wrong.append("Mounts")
    if wrong:
        raise SandboxError(f"the container engine did not apply these restrictions: {', '.join(wrong)}")


def mounts_as_expected(mounts: list[dict], code_source: str | None) -> bool:
    if len(mounts) != 1 or mounts[0].get("Destination") != CODE_DIR:
        return False
    (mount,) = mounts
    if code_source is None:
        return mount.get("Type") == "volume"
    return mount.get("Type") == "bind" and mount.get("Source") == code_source and mount.get("RW") is False


@dataclass(frozen=True)
class Program:
    """A program's files for /code: relative path -> content, the entry point under the name its
    language gives it (Language.entry). `executables` are the paths a compile stage made executable."""

    files: dict[str, bytes]
    executables: frozenset[str] = frozenset()

    @classmethod
    def of(cls, language: Language, code: str, files: list[tuple[str, bytes]] | None = None) -> Program:
        """The entry point `code` under its name, beside the program's other files."""
        return cls({**dict(files or ()), language.entry(code): code.encode()})

    def with_stdin(self, stdin: str | bytes) -> dict[str, bytes]:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return {**self.files, "stdin": data}


def write_code_dir(program: Program, stdin: str | bytes) -> str:
    """A fresh host directory holding the program and its stdin, for a read-only bind mount at /code.

    The directory and files are the worker's, read-only for everyone: inside the container the
    script can read them and change nothing. SANDBOX_CODE_ROOT itself is private to the worker's user.
    """
    path = new_code_dir()
    try:
        fill_code_dir(path, program, stdin)
    except SandboxError:
        discard_code_dir(path)
        raise
    return path


def new_code_dir() -> str:
    """A fresh, empty directory under SANDBOX_CODE_ROOT, private to the worker until it is filled."""
    root = settings.SANDBOX_CODE_ROOT
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        if os.stat(root).st_mode & 0o077:
            # Made by someone else (Compose creates a missing bind source 0755): while a script is
            # in it, no other user of the host may list or read it. Fails closed if not ours.
            os.chmod(root, 0o700)
        # mkdtemp makes it 0700: a sandbox that mounts it before the code arrives cannot look in.
        return tempfile.mkdtemp(prefix="run-", dir=root)
    except OSError as exc:
        raise SandboxError(f"could not write the script for the sandbox: {exc}") from exc


def fill_code_dir(path: str, program: Program, stdin: str | bytes) -> None:
    made: list[str] = []
    try:
        for name, data in program.with_stdin(stdin).items():
            if not safe_name(name):
                raise SandboxError(f"unsafe file name {name!r}")
            directory = os.path.dirname(name)
            if directory:
                # O_EXCL and fresh directories: a name can never lead out of the code directory.
                os.makedirs(os.path.join(path, directory), mode=0o755, exist_ok=True)
                made.extend(sorted({os.path.join(path, *name.split("/")[:depth]) for depth in range(1, name.count("/") + 1)}))
            mode = 0o555 if name in program.executables else 0o444
            fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        for directory in sorted(set(made), reverse=True):
            os.chmod(directory, 0o555)
        os.chmod(path, 0o555)
    except OSError as exc:
        raise SandboxError(f"could not write the script for the sandbox: {exc}") from exc


def discard_code_dir(path: str) -> None:
    try:
        # Read-only, so its files cannot be unlinked by a worker that is not root.
        os.chmod(path, 0o700)
        for directory, subdirectories, _ in os.walk(path):
            for name in subdirectories:
                os.chmod(os.path.join(directory, name), 0o700)
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        # The janitor removes directories that outlive their run; log and go on.
        log.exception("could not remove the code directory %s", path)


def code_archive(program: Program, stdin: str | bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in program.with_stdin(stdin).items():
            if not safe_name(name):
                raise SandboxError(f"unsafe file name {name!r}")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            # Owned by root and read-only: the script can read its files but not change them.
            info.mode = 0o555 if name in program.executables else 0o444
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def compiled_program(archive: bytes, limit: int) -> Program:
    """The files a compile stage wrote, from its tar on stdout. The archive is the untrusted
    program's own output: only regular files with safe names are taken, within `limit` bytes."""
    files: dict[str, bytes] = {}
    executables = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isdir() or name in ("", "."):
                    continue
                if not member.isreg() or not safe_name(name) or name == "stdin" or name in files:
                    raise SandboxError(f"the compiler wrote an unexpected file {member.name!r}")
                total += member.size
                if total > limit or len(files) >= 1000:
                    raise SandboxError("the compiler's output is too large")
                files[name] = tar.extractfile(member).read()
                if member.mode & 0o111:
                    executables.add(name)
    except (tarfile.TarError, EOFError) as exc:
        raise SandboxError(f"the compiler's output could not be read: {exc}") from exc
    return Program(files, frozenset(executables))


@dataclass
class OutputCollector:
    """Demultiplexes Docker's attach stream into capped stdout and stderr, without buffering more."""

    limit: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    _header: bytearray = field(default_factory=bytearray)
    _stream: int = 0
    _remaining: int = 0

    @property
    def over_limit(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._remaining == 0:
                take = 8 - len(self._header)
                self._header += view[:take]
                view = view[take:]
                if len(self._header) == 8:
                    self._stream = self._header[0]
                    self._remaining = int.from_bytes(self._header[4:8], "big")
                    self._header.clear()
                continue
            chunk = view[: self._remaining]
            view = view[self._remaining :]
            self._remaining -= len(chunk)
            self._keep(chunk)

    def _keep(self, chunk: memoryview) -> None:
        if self._stream == STDERR:
            buffer, attr = self.stderr, "stderr_truncated"
        else:
            buffer, attr = self.stdout, "stdout_truncated"
        room = self.limit - len(buffer)
        if len(chunk) > room:
            setattr(self, attr, True)
        buffer += chunk[: max(room, 0)]


class LiveOutput(Protocol):
    """Where a stage's output goes as it comes (executions.events.OutputPublisher), besides the
    result: flush() after output arrives and again at `due` (monotonic), and once at the end."""

    due: float

    def flush(self, output: OutputCollector, final: bool = False) -> None: ...


def flush_live(live: LiveOutput | None, output: OutputCollector, now: float) -> None:
    if live is not None and now >= live.due:
        live.flush(output)


def run(
    language: str,
    code: str,
    stdin: str = "",
    *,
    files: list[tuple[str, bytes]] | None = None,
    args: tuple[str, ...] | list[str] = (),
    limits: Limits | None = None,
    labels: dict[str, str] | None = None,
    on_created: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    live: Callable[[str], LiveOutput] | None = None,
) -> RunResult:
    """Compile the program if its language needs it, then run it; each stage in its own sandbox.

    `cancelled` is polled every CANCEL_POLL_SECONDS: when it says yes, the container is killed.
    `live`, given a stage's name ("compile", "run"), says where that stage's output goes as it comes.
    A compile that fails in any way is the status `compilation_error`, with the compiler's output.
    """
    spec = languages.get(language)
    if spec is None:
        raise SandboxError(f"unsupported language {language!r}")
    limits = limits or Limits.for_stage(spec.limits)
    program = Program.of(spec, code, files)
    compiled: RunResult | None = None
    if spec.compile:
        compile_limits = Limits.for_stage(spec.compile.limits, limits.runtime)
        compiled = run_stage(
            compile_stage_of(spec, code), program.with_stdin(b""), program.executables, compile_limits, labels, on_created,
            cancelled, live and live("compile"),
        )
        if compiled.status != "completed":
            return compile_failure(compiled, compile_limits)
        program = compiled_program(compiled.stdout, compile_limits.output_limit_bytes)
    result = run_stage(
        run_stage_of(spec, tuple(args), code, timed=True), program.with_stdin(stdin), program.executables, limits, labels,
        on_created, cancelled, live and live("run"),
    )
    if compiled is not None:
        result.compile_output, result.compile_duration_ms = compiled.stderr, compiled.duration_ms
    return result


def compile_failure(compiled: RunResult, limits: Limits) -> RunResult:
    """A compile that did not complete: the run never starts."""
    if compiled.status == "cancelled":
        return compiled
    why = {
        "timed_out": f"the compiler was stopped at its time limit of {limits.timeout_seconds:g} s",
        "oom_killed": f"the compiler ran out of memory (its limit is {limits.memory_mb} MiB)",
        "output_limit_exceeded": f"the compiler's output went over {limits.output_limit_bytes} bytes",
    }.get(compiled.status)
    output = compiled.stderr + (f"\n[{why}]\n".encode() if why else b"")
    return RunResult(
        status="compilation_error",
        exit_code=compiled.exit_code,
        stdout=b"",
        stderr=b"",
        stdout_truncated=False,
        stderr_truncated=False,
        duration_ms=0,
        container_id=compiled.container_id,
        compile_output=output,
        compile_duration_ms=compiled.duration_ms,
    )


def run_stage(
    stage: Stage,
    files: dict[str, bytes],
    executables: frozenset[str],
    limits: Limits,
    labels: dict[str, str] | None = None,
    on_created: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    live: LiveOutput | None = None,
) -> RunResult:
    """One stage in a fresh sandbox with `files` in /code (stdin among them), always removed after."""
    program = Program({name: data for name, data in files.items() if name != "stdin"}, executables)
    stdin = files.get("stdin", b"")
    api = docker_api()
    code_source = write_code_dir(program, stdin) if settings.SANDBOX_CODE_DELIVERY == "bind" else None
    try:
        container_id = create_container(api, stage, limits, labels or {}, code_source)
        patience = ENGINE_RECOVERY_SECONDS
        try:
            if on_created:
                on_created(container_id)
            if code_source is None:
                copy_code(api, container_id, program, stdin)
            go = f"{timer_seconds(limits)}\n".encode() if stage.waits else None
            return start_and_collect(api, container_id, limits, cancelled or never, live, go)
        except (EngineLost, EngineUnavailable):
            # No wait for the engine (the run already waited, or the execution goes back to the
            # queue): the janitor removes the container once the engine is back.
            patience = 0
            raise
        finally:
            remove_container(api, container_id, patience)
    finally:
        if code_source:
            discard_code_dir(code_source)


def copy_code(api: docker.APIClient, container_id: str, program: Program, stdin: str | bytes) -> None:
    try:
        api.put_archive(container_id, CODE_DIR, code_archive(program, stdin))
    except docker.errors.APIError as exc:
        raise SandboxError(f"could not copy the script into the sandbox: {exc.explanation}") from exc


def create_container(
    api: docker.APIClient,
    stage: Stage | None,
    limits: Limits,
    labels: dict[str, str],
    code_source: str | None = None,
    cgroup_parent: str = "",
) -> str:
    """A created, verified, not yet started sandbox; for `stage` None, one of the default image
    that waits for its language on stdin (LAUNCHER). `cgroup_parent`: a cgroup of the caller's to
    put it under (the engine's default if empty)."""
    image = stage.image if stage else sandbox_image(DEFAULT_FAMILY)
    command = ["/bin/sh", "-c", stage.command, "sh", *stage.args] if stage else None
    check_runtime(api, limits.runtime)
    try:
        created = api.create_container(
            image,
            entrypoint=[] if uses_docker_init(limits) else [INIT, "--"],
            command=container_command(command, limits) if command else launcher_command(limits),
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            working_dir="/tmp",
            hostname="sandbox",
            environment={**dict(stage.environment if stage else ()), **ENVIRONMENT},
            network_disabled=True,
            stdin_open=stage is None or stage.waits,
            # A volume for the archive API to copy into; a bind mount needs none.
            volumes=None if code_source else [CODE_DIR],
            labels={LABEL: "1", INSTANCE_LABEL: settings.SANDBOX_INSTANCE, **labels},
            host_config=host_config(api, limits, code_source, cgroup_parent),
        )
    except docker.errors.ImageNotFound as exc:
        # The engine's API never pulls a missing image: it refuses the create.
        raise SandboxError(
            f"the sandbox image {image} is missing; run `python manage.py build_sandbox_images`"
        ) from exc
    except UNREACHABLE as exc:
        raise EngineUnavailable(f"the container engine is unreachable: {exc}") from exc
    except docker.errors.DockerException as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise SandboxError(f"the container engine refused the sandbox: {explanation}") from exc
    container_id = created["Id"]
    try:
        if created.get("Warnings"):
            raise SandboxError(f"the container engine warned: {'; '.join(created['Warnings'])}")
        try:
            inspected = api.inspect_container(container_id)
        except UNREACHABLE as exc:
            raise EngineUnavailable(f"the container engine became unreachable: {exc}") from exc
        verify_restrictions(inspected, limits, code_source, cgroup_parent)
    except BaseException as exc:
        # Not started: if the engine is gone, the janitor removes it once it is back.
        remove_container(api, container_id, 0 if isinstance(exc, EngineUnavailable) else ENGINE_RECOVERY_SECONDS)
        raise
    return container_id


def never() -> bool:
    return False


def start_and_collect(
    api: docker.APIClient,
    container_id: str,
    limits: Limits,
    cancelled: Callable[[], bool] = never,
    live: LiveOutput | None = None,
    go: bytes | None = None,
) -> RunResult:
    """Start the sandbox and collect its run. `go`: the line a waiting stage reads on its stdin
    before its program starts; the deadline then counts from its sending, not from the start."""
    if cancelled():
        # Cancelled while the sandbox was being prepared: the script never starts.
        return RunResult("cancelled", None, b"", b"", False, False, 0, container_id)
    try:
        raw = attach(api, container_id, stdin=go is not None)
    except UNREACHABLE as exc:
        raise EngineUnavailable(f"the container engine became unreachable: {exc}") from exc
    except docker.errors.APIError as exc:
        raise SandboxError(f"the sandbox could not start: {exc.explanation}") from exc
    try:
        api.start(container_id)
    except docker.errors.APIError as exc:
        raw.close()
        raise SandboxError(f"the sandbox could not start: {exc.explanation}") from exc
    except UNREACHABLE as exc:
        # The engine may have started it before the connection broke: the script may have run.
        raw.close()
        raise SandboxError(f"the container engine became unreachable as the sandbox started: {exc}") from exc
    started = time.monotonic()
    if go is not None:
        deliver(raw, go, "its sandbox")
    return collect(api, container_id, raw, limits, started, cancelled, live)


def deliver(stream, go: bytes, where: str) -> None:
    """Send the program's go line on its sandbox's stdin and close it; SandboxError if that fails."""
    try:
        stream.sendall(go)
        # Its stdin closes (StdinOnce): nothing more can reach the program that way.
        stream.shutdown(socket.SHUT_WR)
    except OSError as exc:
        stream.close()
        raise SandboxError(f"could not start the program in {where}: {exc}") from exc


def attach(api: docker.APIClient, container_id: str, stdin: bool = False) -> socket.socket:
    """The container's output stream (and its stdin, if asked), as a plain socket."""
    stream = api.attach_socket(container_id, params={"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1})
    return getattr(stream, "_sock", stream)


def collect(
    api: docker.APIClient,
    container_id: str,
    raw: socket.socket,
    limits: Limits,
    started: float,
    cancelled: Callable[[], bool] = never,
    live: LiveOutput | None = None,
) -> RunResult:
    """Read the output of a script that started at `started` (monotonic) until it ends or is killed
    at its deadline; close the stream; how it ended."""
    output = OutputCollector(limits.output_limit_bytes)
    try:
        stopped, ended = read_until_exit(api, container_id, raw, output, started + limits.timeout_seconds, cancelled, live)
    except StreamBroken as exc:
        # Part of the output may be lost: never a result, whatever the container did.
        raise stream_broken(api, container_id, exc.__cause__) from exc.__cause__
    finally:
        raw.close()
    if live is not None:
        # Before the result is recorded: a client sees all the output before the terminal status.
        live.flush(output, final=True)
    duration_ms = int((ended - started) * 1000)
    exit_code, oom_killed = exit_state(api, container_id, None if stopped else started + limits.timeout_seconds)
    if stopped == "cancelled":
        status = "cancelled"
    elif output.over_limit:
        status = "output_limit_exceeded"
    elif stopped == "timed_out":
        status = "timed_out"
    elif oom_killed:
        status = "oom_killed"
    elif exit_code == 0:
        status = "completed"
    else:
        status = "failed"
    return RunResult(
        status=status,
        exit_code=exit_code,
        stdout=bytes(output.stdout),
        stderr=bytes(output.stderr),
        stdout_truncated=output.stdout_truncated,
        stderr_truncated=output.stderr_truncated,
        duration_ms=duration_ms,
        container_id=container_id,
    )


def read_until_exit(
    api: docker.APIClient,
    container_id: str,
    raw: socket.socket,
    output: OutputCollector,
    deadline: float,
    cancelled: Callable[[], bool] = never,
    live: LiveOutput | None = None,
) -> tuple[str | None, float]:
    """Read the attach stream until it ends, killing the container at the deadline, the output cap
    or a cancellation, passing output to `live` as it comes.

    The kill runs in its own thread while this one goes on draining: the engine blocks on a full
    attach stream, so a reader that stops to kill makes the kill itself hang.
    Returns why the container was killed ("timed_out", "output_limit_exceeded", "cancelled"), or None,
    and when its stream ended (monotonic): not when the kill request returned, which an overloaded
    engine answers late. A stream that ends after the deadline ended there: the sandbox's own timer
    may have killed the script before this thread, starved, saw the deadline pass.
    """
    killer: threading.Thread | None = None
    killed_at = 0.0
    stopped: str | None = None
    next_poll = time.monotonic() + CANCEL_POLL_SECONDS
    try:
        while True:
            now = time.monotonic()
            if killer is None:
                if output.over_limit:
                    stopped = "output_limit_exceeded"
                elif now >= deadline:
                    stopped = "timed_out"
                elif now >= next_poll:
                    next_poll = now + CANCEL_POLL_SECONDS
                    stopped = "cancelled" if cancelled() else None
                if stopped:
                    killer = threading.Thread(target=kill, args=(api, container_id), daemon=True)
                    killer.start()
                    killed_at = now
            if killer is not None and now - killed_at > DRAIN_GRACE_SECONDS:
                log.warning("container %s: output still open %.0fs after the kill", container_id, DRAIN_GRACE_SECONDS)
                return stopped, now
            flush_live(live, output, now)
            wait = min(deadline, next_poll, live.due if live else deadline) - now if killer is None else DRAIN_GRACE_SECONDS
            raw.settimeout(max(wait, 0.001))
            try:
                data = raw.recv(READ_CHUNK)
            except (TimeoutError, socket.timeout):
                continue
            except OSError as exc:
                # The engine went away (or dropped the connection) with the script running.
                raise StreamBroken() from exc
            if not data:
                ended = time.monotonic()
                if stopped is None and ended >= deadline:
                    stopped = "timed_out"
                return stopped, ended
            output.feed(data)
            if live is not None:
                live.flush(output)
    finally:
        if killer is not None:
            killer.join(DRAIN_GRACE_SECONDS)


def kill(api: docker.APIClient, container_id: str) -> None:
    try:
        api.kill(container_id, signal="SIGKILL")
    except docker.errors.APIError as exc:
        # 409: the container already exited, which is what we wanted.
        if exc.status_code != 409:
            log.error("could not kill sandbox container %s: %s", container_id, exc)
    except Exception:
        # Removal (force) follows in every path; this only must not die silently.
        log.exception("could not kill sandbox container %s", container_id)


def exit_state(api: docker.APIClient, container_id: str, run_deadline: float | None = None) -> tuple[int | None, bool]:
    """The exit code and OOM flag of a container whose output stream has ended.

    The stream also ends when the engine drops it (a restart with live-restore), with the program
    still running: that run's output is incomplete, so it is a platform fault, never a result.
    `run_deadline` (monotonic), for a stream that ended before the run's deadline: a container
    still running then, which ends only at or after it, was ended by the sandbox's own timer, not
    by its program: the same fault.
    """
    exited = exited_state(api, container_id)
    if exited is not None:
        return exited
    deadline = time.monotonic() + ENGINE_RECOVERY_SECONDS
    waiting = False
    while True:
        try:
            waited = api.wait(container_id, timeout=EXIT_WAIT_SECONDS)
            if run_deadline is not None and time.monotonic() >= run_deadline:
                raise SandboxError("the container engine dropped the sandbox's output while it ran (engine restart?)")
            state = api.inspect_container(container_id)["State"]
            return waited.get("StatusCode"), bool(state.get("OOMKilled"))
        except requests.exceptions.ConnectionError as exc:
            # Over a unix socket, wait's own timeout is a ConnectionError too: ask what happened.
            failure = exc
        except (docker.errors.DockerException, OSError) as exc:
            raise SandboxError(f"lost track of the sandbox after it ran: {exc}") from exc
        running = is_running(api, container_id)
        if running:
            raise SandboxError("the container engine dropped the sandbox's output while it ran (engine restart?)")
        if running is None and time.monotonic() > deadline:
            raise EngineLost(f"the container engine became unreachable during the run: {failure}")
        if running is None:
            if not waiting:
                log.warning("container %s: the container engine is unreachable; waiting for it", container_id[:12])
            waiting = True
            time.sleep(0.5)


def exited_state(api: docker.APIClient, container_id: str) -> tuple[int | None, bool] | None:
    """The exit code and OOM flag if the engine already shows the container exited, else None (and
    exit_state waits for it).

    The engine records a container's exit as it closes its output stream, and answers an inspect
    only once it has recorded it, so one inspect nearly always says it all.
    """
    try:
        state = api.inspect_container(container_id)["State"]
    except (docker.errors.DockerException, OSError):
        return None
    if state.get("Status") != "exited":
        return None
    return state.get("ExitCode"), bool(state.get("OOMKilled"))


def stream_broken(api: docker.APIClient, container_id: str, failure: BaseException | None) -> SandboxError:
    """What a run whose output stream failed ends with: EngineLost if the engine stays unreachable
    for ENGINE_RECOVERY_SECONDS (as exit_state waits for it), else the engine's fault, named."""
    deadline = time.monotonic() + ENGINE_RECOVERY_SECONDS
    if is_running(api, container_id) is None:
        log.warning("container %s: its output stream failed and the engine is unreachable; waiting for it", container_id[:12])
        while is_running(api, container_id) is None:
            if time.monotonic() > deadline:
                return EngineLost(f"the container engine became unreachable during the run: {failure}")
            time.sleep(0.5)
    return SandboxError(f"the container engine dropped the sandbox's output while it ran: {failure}")


def is_running(api: docker.APIClient, container_id: str) -> bool | None:
    """Whether the container still runs; None if the engine cannot say."""
    try:
        return bool(api.inspect_container(container_id)["State"]["Running"])
    except (docker.errors.DockerException, OSError):
        return None


def remove_container(api: docker.APIClient, container_id: str, patience: float = ENGINE_RECOVERY_SECONDS) -> None:
    """Remove it, waiting up to `patience` seconds for an unreachable engine."""
    deadline = time.monotonic() + patience
    while True:
        try:
            api.remove_container(container_id, v=True, force=True)
            return
        except docker.errors.NotFound:
            return
        except requests.exceptions.ConnectionError:
            # A container engine that restarts with live-restore keeps the container running.
            if time.monotonic() > deadline:
                log.error("could not remove sandbox container %s: the engine is unreachable", container_id)
                return
            time.sleep(0.5)
        except Exception:
            # The janitor removes labelled containers that outlive their run; log and go on.
            log.exception("could not remove sandbox container %s", container_id)
            return
