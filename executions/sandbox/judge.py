"""Judge a program: compile it once, then run each test in a fresh sandbox of its own.

Each test's container gets the compiled files (never the compiler's sandbox) read-only in /code,
and nothing else of another test's: its own /tmp, its own processes (the container's pid namespace
ends with it, and the next test's is new), its own stdin file. A test's CPU time and peak memory
are the host's, read from a cgroup made for that test alone (the container's own cgroup goes with
the container, its parent's accounting stays): the same under runc and runsc, where the figures a
process sees inside gVisor are gVisor's. The time limit is CPU time, checked while the test runs,
with a wall-clock ceiling (judging.wall_ceiling) that a program sleeping or stopped cannot outlast.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from executions import judging
from executions.sandbox import languages, runner
from executions.sandbox.runner import Limits, Program, SandboxError

log = logging.getLogger(__name__)

# Every test's cgroup is made under this one, in each hierarchy: leftovers are easy to find.
CGROUP_PREFIX = "/rce-judge"


@dataclass
class Judged:
    """How judging ended: `completed` (every test judged, or skipped after a failure),
    `compilation_error` or `cancelled`; the overall verdict and each test's result, in order."""

    status: str
    verdict: str
    results: list[dict] = field(default_factory=list)
    compile_output: bytes = b""
    compile_duration_ms: int | None = None
    duration_ms: int = 0

    @property
    def passed(self) -> int:
        return sum(result["verdict"] == judging.ACCEPTED for result in self.results)

    @property
    def failed(self) -> int:
        return sum(result["verdict"] not in (judging.ACCEPTED, judging.SKIPPED) for result in self.results)


class TestCgroup:
    """A cgroup of one test's, which the engine puts its container under: read after the container
    ends, then removed. cgroup v1 (cpuacct, memory) or v2 (unified)."""

    def __init__(self, root: str):
        self.root = root
        self.parent = f"{CGROUP_PREFIX}/{uuid.uuid4().hex}"
        self.unified = os.path.exists(os.path.join(root, "cgroup.controllers"))

    def path(self, controller: str) -> str:
        return os.path.join(self.root, "" if self.unified else controller, self.parent.lstrip("/"))

    def cpu_seconds(self) -> float:
        """CPU time charged so far to everything that ran in it; 0 before the engine made it."""
        try:
            if self.unified:
                with open(os.path.join(self.path(""), "cpu.stat")) as stat:
                    usage = next(line for line in stat if line.startswith("usage_usec "))
                return int(usage.split()[1]) / 1e6
            with open(os.path.join(self.path("cpuacct"), "cpuacct.usage")) as usage:
                return int(usage.read()) / 1e9
        except FileNotFoundError:
            return 0.0

    def measure(self) -> tuple[float, int]:
        """(CPU seconds, peak memory in bytes); SandboxError if they cannot be read: fail closed,
        since a time limit that cannot be measured is not enforced."""
        try:
            if self.unified:
                with open(os.path.join(self.path(""), "memory.peak")) as peak:
                    memory = int(peak.read())
            else:
                with open(os.path.join(self.path("memory"), "memory.max_usage_in_bytes")) as peak:
                    memory = int(peak.read())
            cpu = self.cpu_seconds()
        except (OSError, ValueError, StopIteration) as exc:
            raise SandboxError(f"could not read the test's CPU time and memory from its cgroup: {exc}") from exc
        return cpu, memory

    def remove(self) -> None:
        directories = [self.path("")] if self.unified else [
            os.path.join(self.root, name, self.parent.lstrip("/")) for name in os.listdir(self.root)
        ]
        for directory in directories:
            for _ in range(20):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Busy while the runtime tears the container's own cgroup down.
                    time.sleep(0.05)
            else:
                log.warning("could not remove the test cgroup %s", directory)


def judge(
    language: str,
    code: str,
    tests: list[dict],
    comparison: judging.Comparison,
    *,
    stop_on_first_failure: bool = False,
    files: list[tuple[str, bytes]] | None = None,
    limits: Limits | None = None,
    labels: dict[str, str] | None = None,
    on_created: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Judged:
    """Compile (if the language does) once, then run and judge every test, each in its own sandbox.

    `limits.timeout_seconds` is each test's CPU time limit. SandboxError if any sandbox could not
    be run with every restriction: then no verdict is given at all.
    """
    spec = languages.get(language)
    if spec is None:
        raise SandboxError(f"unsupported language {language!r}")
    limits = limits or Limits.for_stage(spec.limits)
    cancelled = cancelled or runner.never
    started = time.monotonic()
    program = Program.of(spec, code, files)
    compile_output, compile_ms = b"", None
    if spec.compile:
        compile_limits = Limits.for_stage(spec.compile.limits, limits.runtime)
        compiled = runner.run_stage(
            runner.compile_stage_of(spec), program.with_stdin(b""), program.executables, compile_limits, labels, on_created, cancelled
        )
        if compiled.status == "cancelled":
            return Judged("cancelled", "", compile_output=compiled.stderr, compile_duration_ms=compiled.duration_ms)
        if compiled.status != "completed":
            failure = runner.compile_failure(compiled, compile_limits)
            return Judged(
                "compilation_error", judging.COMPILATION_ERROR, [], failure.compile_output, failure.compile_duration_ms
            )
        compile_output, compile_ms = compiled.stderr, compiled.duration_ms
        program = runner.compiled_program(compiled.stdout, compile_limits.output_limit_bytes)
    stop = threading.Event()

    def one(test: dict) -> dict | None:
        if stop.is_set():
            return None
        result = run_test(spec, program, test, comparison, limits, labels, on_created, cancelled)
        if result is None or (stop_on_first_failure and result["verdict"] != judging.ACCEPTED):
            stop.set()
        return result

    with ThreadPoolExecutor(max(1, settings.JUDGE_PARALLEL_TESTS), thread_name_prefix="judge") as pool:
        outcomes = list(pool.map(one, tests))
    duration_ms = int((time.monotonic() - started) * 1000)
    if cancelled():
        return Judged("cancelled", "", compile_output=compile_output, compile_duration_ms=compile_ms, duration_ms=duration_ms)
    results = [outcome or skipped(test) for test, outcome in zip(tests, outcomes)]
    verdict = judging.overall_verdict([result["verdict"] for result in results])
    return Judged("completed", verdict, results, compile_output, compile_ms, duration_ms)


def skipped(test: dict) -> dict:
    return {"name": test["name"], "verdict": judging.SKIPPED}


def run_test(
    spec: languages.Language,
    program: Program,
    test: dict,
    comparison: judging.Comparison,
    limits: Limits,
    labels: dict[str, str] | None,
    on_created: Callable[[str], None] | None,
    cancelled: Callable[[], bool],
) -> dict | None:
    """One test in a fresh sandbox: its result, or None if the execution was cancelled meanwhile."""
    cgroup = TestCgroup(settings.JUDGE_CGROUP_ROOT)
    cpu_limit = limits.timeout_seconds
    over_cpu = threading.Event()

    def stopping() -> bool:
        # Polled while the test runs (runner.CANCEL_POLL_SECONDS): the CPU limit, then a cancel.
        if cgroup.cpu_seconds() > cpu_limit:
            over_cpu.set()
            return True
        return cancelled()

    ceiling = dataclasses.replace(limits, timeout_seconds=judging.wall_ceiling(cpu_limit, limits.cpus))
    try:
        result = run_in_cgroup(spec, program, test, ceiling, labels, on_created, stopping, cgroup)
        cpu, memory = cgroup.measure()
    finally:
        cgroup.remove()
    if result.status == "cancelled" and not over_cpu.is_set():
        return None
    output = as_text(result.stdout)
    passed = comparison.matches(output, test["expected_output"]) if result.status == "completed" else None
    verdict = judging.test_verdict(result.status, over_cpu.is_set() or cpu > cpu_limit, passed)
    kept = settings.JUDGE_KEPT_OUTPUT_BYTES
    return {
        "name": test["name"],
        "verdict": verdict,
        "exit_code": result.exit_code,
        "stdout": as_text(result.stdout[:kept]),
        "stderr": as_text(result.stderr[:kept]),
        "stdout_truncated": result.stdout_truncated or len(result.stdout) > kept,
        "stderr_truncated": result.stderr_truncated or len(result.stderr) > kept,
        "cpu_time_ms": round(cpu * 1000),
        "wall_time_ms": result.duration_ms,
        "memory_kb": memory // 1024,
    }


def run_in_cgroup(
    spec: languages.Language,
    program: Program,
    test: dict,
    limits: Limits,
    labels: dict[str, str] | None,
    on_created: Callable[[str], None] | None,
    stopping: Callable[[], bool],
    cgroup: TestCgroup,
) -> runner.RunResult:
    """runner.run_stage for one test, its container under the test's own cgroup."""
    api = runner.docker_api()
    stage = runner.run_stage_of(spec, tuple(test["args"]))
    code_source = runner.write_code_dir(program, test["stdin"]) if settings.SANDBOX_CODE_DELIVERY == "bind" else None
    try:
        container_id = runner.create_container(api, stage, limits, labels or {}, code_source, cgroup.parent)
        patience = runner.ENGINE_RECOVERY_SECONDS
        try:
            if on_created:
                on_created(container_id)
            if code_source is None:
                runner.copy_code(api, container_id, program, test["stdin"])
            return runner.start_and_collect(api, container_id, limits, stopping)
        except (runner.EngineLost, runner.EngineUnavailable):
            patience = 0
            raise
        finally:
            runner.remove_container(api, container_id, patience)
    finally:
        if code_source:
            runner.discard_code_dir(code_source)


def as_text(data: bytes) -> str:
    # As executions.runs stores output: invalid UTF-8 and NUL become U+FFFD.
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
