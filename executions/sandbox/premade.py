"""Sandboxes made ahead of demand: each worker process keeps one ready, so that an execution only
delivers its code and starts its clock.

A sandbox made ahead is created with every restriction, verified, and started while the worker is
idle; the process under its init is runner.LAUNCHER, which waits for one line on its stdin. Its code
directory is bind-mounted read-only at create time, empty and unreadable (0700). When an execution
comes: verify it again (restrictions, still running, stream open), write the files, then the
language and the time limit on stdin, and the deadline counts from there, in the worker and in the
sandbox (runner.TIMER). It runs that one execution and is removed after it; the next one is made
once the job has recorded its result, off the critical path.

A run with a lower memory limit lowers the sandbox's (`docker update`, then verified) before its
code arrives, except under gVisor, which cannot. Anything else that does not fit (other limits,
another image, code delivered by copy) or fails takes the cold path (runner.run): the script never runs in a sandbox that is not known to be complete.
Sandboxes made ahead carry their worker's name (WORKER_LABEL): the janitor removes those whose
worker is gone, and the worker removes its own when it stops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
import requests
from django.conf import settings

from executions.sandbox import languages, runner
from executions.sandbox.images import sandbox_image
from executions.sandbox.runner import EngineUnavailable, Limits, RunResult, SandboxError

log = logging.getLogger(__name__)

WORKER_LABEL = "rce.worker"
WORKER_PID_LABEL = "rce.worker-pid"


@dataclass
class Sandbox:
    container_id: str
    code_dir: str
    limits: Limits
    image: str
    stream: socket.socket | None = None


def make(api: docker.APIClient, limits: Limits, labels: dict[str, str]) -> Sandbox:
    """Create, verify and start a sandbox that waits for its code; SandboxError if any step fails.

    Whether it still waits, complete, is checked when a run takes it (take()), right before its code
    arrives: a check here too would only repeat that one's inspect."""
    sandbox = Sandbox("", runner.new_code_dir(), limits, sandbox_image())
    try:
        sandbox.container_id = runner.create_container(api, None, limits, labels, sandbox.code_dir)
        sandbox.stream = runner.attach(api, sandbox.container_id, stdin=True)
        api.start(sandbox.container_id)
    except BaseException as exc:
        destroy(api, sandbox)
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
            raise SandboxError(f"the sandbox made ahead could not start: {exc}") from exc
        raise
    return sandbox


def check(api: docker.APIClient, sandbox: Sandbox) -> None:
    """Fail closed: the sandbox still carries every restriction, its launcher still waits, and its
    output stream is still open."""
    try:
        inspected = api.inspect_container(sandbox.container_id)
    except (docker.errors.DockerException, OSError) as exc:
        raise SandboxError(f"the sandbox made ahead cannot be inspected: {exc}") from exc
    runner.verify_restrictions(inspected, sandbox.limits, sandbox.code_dir)
    state = inspected["State"]
    launcher = runner.launcher_command(sandbox.limits)
    if not state.get("Running") or state.get("OOMKilled") or inspected["Config"].get("Cmd") != launcher:
        raise SandboxError("the sandbox made ahead is not waiting for its code")
    if sandbox.stream is None or not stream_open(sandbox.stream):
        raise SandboxError("the sandbox made ahead lost its output stream")


def stream_open(raw: socket.socket) -> bool:
    """Whether the attach stream is still open and silent, as it is before the code arrives."""
    try:
        timeout = raw.gettimeout()
        raw.setblocking(False)
        try:
            raw.recv(1, socket.MSG_PEEK)
        finally:
            raw.settimeout(timeout)
    except BlockingIOError:
        return True
    except OSError:
        return False
    # An end of stream, or output from a launcher that must print nothing.
    return False


def fits(sandbox: Sandbox, limits: Limits) -> bool:
    """Whether a run with these limits may use the sandbox: the deadline comes with the code, and the
    worker enforces it and the output caps; everything else must be exactly what the sandbox was
    made with."""
    enforced_here = {"timeout_seconds": 0, "output_limit_bytes": 0}
    return (
        dataclasses.replace(sandbox.limits, **enforced_here) == dataclasses.replace(limits, **enforced_here)
        and sandbox.image == sandbox_image()
    )


def can_lower_memory(sandbox: Sandbox, limits: Limits) -> bool:
    """Whether the sandbox fits these limits once its memory limit is lowered to theirs. gVisor's
    runtime cannot change a running sandbox's limits."""
    return (
        limits.runtime != "runsc"
        and limits.memory_mb < sandbox.limits.memory_mb
        and fits(sandbox, dataclasses.replace(limits, memory_mb=sandbox.limits.memory_mb))
    )


def lower_memory(api: docker.APIClient, sandbox: Sandbox, memory_mb: int) -> None:
    """Lower the memory limit (and with it the swap limit) of a sandbox that has no code yet; check()
    then verifies that the engine applied it."""
    memory = memory_mb * 1024 * 1024
    try:
        api.update_container(sandbox.container_id, mem_limit=memory, memswap_limit=memory)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(f"could not lower the memory limit of the sandbox made ahead: {exc}") from exc
    sandbox.limits = dataclasses.replace(sandbox.limits, memory_mb=memory_mb)


def run_in(
    api: docker.APIClient,
    sandbox: Sandbox,
    language: str,
    code: str,
    stdin: str,
    limits: Limits,
    cancelled: Callable[[], bool] = runner.never,
    live: runner.LiveOutput | None = None,
    delivered: Callable[[], None] | None = None,
) -> RunResult:
    """Deliver the script to a checked sandbox and run it, the deadline counting from delivery;
    `delivered` is called once the script is on its way, while it starts. The sandbox is used up
    whatever happens: never deliver anything to it again."""
    program = runner.Program.of(languages.CATALOG[language], code)
    if cancelled():
        # Cancelled while the sandbox was being checked: the script never arrives.
        return RunResult("cancelled", None, b"", b"", False, False, 0, sandbox.container_id)
    line = f"{language} {runner.timer_seconds(limits)}\n".encode()
    runner.fill_code_dir(sandbox.code_dir, program, stdin)
    started = time.monotonic()
    stream, sandbox.stream = sandbox.stream, None
    try:
        stream.sendall(line)
    except OSError as exc:
        stream.close()
        # The launcher starts nothing without the whole line, its newline last: the script did not run.
        raise EngineUnavailable(f"the sandbox made ahead lost its stream before the script arrived: {exc}") from exc
    try:
        # Its stdin closes (StdinOnce): nothing more can reach the script that way.
        stream.shutdown(socket.SHUT_WR)
    except OSError as exc:
        stream.close()
        raise SandboxError(f"could not start the script in the sandbox made ahead: {exc}") from exc
    if delivered is not None:
        try:
            delivered()
        except Exception:
            # Bookkeeping only: the run goes on, and the output waits in the stream meanwhile.
            log.exception("sandbox %s: after delivery", sandbox.container_id[:12])
    return runner.collect(api, sandbox.container_id, stream, limits, started, cancelled, live)


def destroy(api: docker.APIClient, sandbox: Sandbox, patience: float = runner.ENGINE_RECOVERY_SECONDS) -> None:
    if sandbox.stream is not None:
        sandbox.stream.close()
        sandbox.stream = None
    if sandbox.container_id:
        runner.remove_container(api, sandbox.container_id, patience)
    runner.discard_code_dir(sandbox.code_dir)


# This process's sandbox made ahead, and those it set aside: used ones whose container has exited,
# and ones that never received code. The worker removes those after each job (tidy), once the job
# has recorded its result. Each worker is one process running one job at a time.
_ready: Sandbox | None = None
_set_aside: list[Sandbox] = []


def enabled() -> bool:
    return settings.SANDBOX_MAKE_AHEAD and settings.SANDBOX_CODE_DELIVERY == "bind"


def worker_labels(worker_name: str) -> dict[str, str]:
    return {WORKER_LABEL: worker_name, WORKER_PID_LABEL: str(os.getpid())}


def ready() -> Sandbox | None:
    return _ready


def prepare(worker_name: str) -> None:
    """Make this process's sandbox ahead, unless it has a sound one that fits the settings.
    SandboxError if it cannot: runs then take the cold path until a later call succeeds."""
    global _ready
    if not enabled():
        return
    api = runner.docker_api()
    limits = Limits.from_settings()
    if _ready is not None:
        try:
            if fits(_ready, limits):
                check(api, _ready)
                return
        except SandboxError as exc:
            log.warning("sandbox made ahead %s: %s; replacing it", _ready.container_id[:12], exc)
        _set_aside.append(_ready)
        _ready = None
        tidy()
    _ready = make(api, limits, worker_labels(worker_name))


def take(api: docker.APIClient, limits: Limits) -> Sandbox | None:
    """This process's sandbox made ahead, checked, if it fits these limits; it is no longer ready
    either way."""
    global _ready
    sandbox, _ready = _ready, None
    if sandbox is None:
        return None
    try:
        if can_lower_memory(sandbox, limits):
            lower_memory(api, sandbox, limits.memory_mb)
        if fits(sandbox, limits):
            check(api, sandbox)
            return sandbox
    except SandboxError as exc:
        log.warning("sandbox made ahead %s: %s; making one for this run", sandbox.container_id[:12], exc)
    _set_aside.append(sandbox)
    return None


def run(
    language: str,
    code: str,
    stdin: str = "",
    *,
    files: list[tuple[str, bytes]] | None = None,
    args: tuple[str, ...] | list[str] = (),
    limits: Limits,
    labels: dict[str, str] | None = None,
    on_created: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    live: Callable[[str], runner.LiveOutput] | None = None,
    on_started: Callable[[], None] | None = None,
) -> RunResult:
    """runner.run's contract, in this process's sandbox made ahead when it is sound and fits.

    `on_started` is the caller's bookkeeping for a run under way (say, mirroring its state): in a
    sandbox made ahead it runs once the script is delivered, off the path to its start; otherwise
    before the cold path. Only the default image's interpreted languages are made ahead, for
    programs of one file and no arguments (the launcher takes none); everything else takes the cold
    path.
    """
    if languages.get(language) is None:
        raise SandboxError(f"unsupported language {language!r}")
    language = languages.get(language).name
    if language not in runner.MADE_AHEAD_LANGUAGES or files or args:
        if on_started:
            on_started()
        return runner.run(
            language, code, stdin, files=files, args=args, limits=limits, labels=labels, on_created=on_created,
            cancelled=cancelled, live=live,
        )
    api = runner.docker_api()
    sandbox = take(api, limits)
    if sandbox is None:
        if on_started:
            on_started()
        return runner.run(
            language, code, stdin, limits=limits, labels=labels, on_created=on_created, cancelled=cancelled, live=live
        )
    try:
        if on_created:
            on_created(sandbox.container_id)
        result = run_in(
            api, sandbox, language, code, stdin, limits, cancelled or runner.never, live and live("run"), on_started
        )
    except (runner.EngineLost, EngineUnavailable):
        # As runner.run: no wait for the engine; the janitor removes it once the engine is back.
        destroy(api, sandbox, patience=0)
        raise
    except BaseException:
        destroy(api, sandbox)
        raise
    # Exited, or never given its code: removed right after the job has recorded the result.
    _set_aside.append(sandbox)
    return result


def tidy(patience: float = runner.ENGINE_RECOVERY_SECONDS) -> None:
    """Remove the sandboxes set aside, waiting up to `patience` seconds for an unreachable engine."""
    api = runner.docker_api()
    while _set_aside:
        destroy(api, _set_aside.pop(), patience)


def discard(patience: float = runner.ENGINE_RECOVERY_SECONDS) -> None:
    """Remove every sandbox of this process: the worker stops."""
    global _ready
    if _ready is not None:
        _set_aside.append(_ready)
        _ready = None
    tidy(patience)
