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
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker.errors
import requests
from django.conf import settings

from executions import comparing, judging
from executions.sandbox import languages, premade, runner
from executions.sandbox.images import image_for
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

    `limits.timeout_seconds` is each test's CPU time limit. The tests' sandboxes are made while the
    program compiles and while other tests run (Judgement). SandboxError if any sandbox could not be
    run with every restriction: then no verdict is given at all. The comparisons have a time budget
    of their own (executions.comparing).
    """
    spec = languages.get(language)
    if spec is None:
        raise SandboxError(f"unsupported language {language!r}")
    comparisons = comparing.Comparisons(comparison, settings.JUDGE_COMPARISON_SECONDS, settings.JUDGE_COMPARISON_TOTAL_SECONDS)
    judgement = Judgement(
        spec, comparisons, limits or Limits.for_stage(spec.limits), labels or {}, on_created, cancelled or runner.never,
        stop_on_first_failure, code,
    )
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(judgement.threads(), thread_name_prefix="judge") as pool:
            futures = [pool.submit(judgement.test, index, test) for index, test in enumerate(tests)]
            try:
                failed = judgement.compile(Program.of(spec, code, files))
            finally:
                # Whatever happened, no test waits for a program that will not come.
                judgement.release()
            outcomes = [future.result() for future in futures]
    finally:
        comparisons.close()
    duration_ms = int((time.monotonic() - started) * 1000)
    if failed is not None:
        return failed
    if judgement.cancelled():
        return Judged("cancelled", "", compile_output=judgement.compile_output, compile_duration_ms=judgement.compile_ms, duration_ms=duration_ms)
    results = [outcome or skipped(test) for test, outcome in zip(tests, outcomes)]
    verdict = judging.overall_verdict([result["verdict"] for result in results])
    return Judged("completed", verdict, results, judgement.compile_output, judgement.compile_ms, duration_ms)


def skipped(test: dict) -> dict:
    return {"name": test["name"], "verdict": judging.SKIPPED}


@dataclass
class Judgement:
    """One program being judged: its compile stage, then its tests, JUDGE_PARALLEL_TESTS at a time,
    started in their order: a test starts only once every earlier one has, so that with
    stop_on_first_failure a later test's failure never skips an earlier test.

    Creating and starting a container is most of a test's cost, so with "bind" delivery each test's
    sandbox is made ahead (created with every restriction, verified, started, its process waiting
    for a line on its stdin) while the program compiles and while other tests run; the program's
    files and the test's stdin are written to its /code, then the line starts it, and the test's
    clock with it. With "copy" delivery each test takes the cold path.
    """

    spec: languages.Language
    comparisons: comparing.Comparisons
    limits: Limits
    labels: dict[str, str]
    on_created: Callable[[str], None] | None
    cancelled: Callable[[], bool]
    stop_on_first_failure: bool
    # The entry point's source: what its stages are told of it (Language.environment_for).
    code: str = ""
    compile_output: bytes = b""
    compile_ms: int | None = None
    program: Program | None = None
    compiled: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    runs: threading.Semaphore = field(init=False)
    # The index of the next test to start, and the condition its followers wait on.
    next_test: int = 0
    turns: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self):
        self.runs = threading.Semaphore(max(1, settings.JUDGE_PARALLEL_TESTS))

    def made_ahead(self) -> bool:
        return settings.SANDBOX_CODE_DELIVERY == "bind"

    def threads(self) -> int:
        # Twice the tests that run at once: the others make their sandboxes meanwhile.
        return max(1, settings.JUDGE_PARALLEL_TESTS) * (2 if self.made_ahead() else 1)

    def compile(self, program: Program) -> Judged | None:
        """Compile the program for the tests, or the Judged that ends judging here."""
        if not self.spec.compile:
            self.program = program
            return None
        compile_limits = Limits.for_stage(self.spec.compile.limits, self.limits.runtime)
        compiled = runner.run_stage(
            runner.compile_stage_of(self.spec, self.code), program.with_stdin(b""), program.executables, compile_limits,
            self.labels, self.on_created, self.cancelled,
        )
        if compiled.status == "cancelled":
            return Judged("cancelled", "", compile_output=compiled.stderr, compile_duration_ms=compiled.duration_ms)
        if compiled.status != "completed":
            failure = runner.compile_failure(compiled, compile_limits)
            return Judged("compilation_error", judging.COMPILATION_ERROR, [], failure.compile_output, failure.compile_duration_ms)
        self.compile_output, self.compile_ms = compiled.stderr, compiled.duration_ms
        self.program = runner.compiled_program(compiled.stdout, compile_limits.output_limit_bytes)
        return None

    def release(self) -> None:
        if self.program is None:
            self.halt()
        self.compiled.set()

    def halt(self) -> None:
        """No test starts any more; those waiting for their turn give up."""
        with self.turns:
            self.stop.set()
            self.turns.notify_all()

    def test(self, index: int, test: dict) -> dict | None:
        """One test's result; None if it did not run (judging stopped, or the execution was cancelled)."""
        if self.stop.is_set():
            return None
        try:
            result = self.run_test(index, test)
        except BaseException:
            self.halt()
            raise
        if result is None or (self.stop_on_first_failure and result["verdict"] != judging.ACCEPTED):
            self.halt()
        return result

    def start_in_turn(self, index: int) -> bool:
        """Wait until every earlier test has started and a run is free: True with `runs` held, the
        test bound to run; False if judging stopped or was cancelled meanwhile."""
        with self.turns:
            self.turns.wait_for(lambda: self.next_test == index or self.stop.is_set())
            if self.stop.is_set():
                return False
        # Holding the turn, so that the next test waits for this one to be bound to run.
        self.runs.acquire()
        if self.stop.is_set() or self.cancelled():
            self.runs.release()
            return False
        with self.turns:
            self.next_test += 1
            self.turns.notify_all()
        return True

    def run_test(self, index: int, test: dict) -> dict | None:
        cgroup = TestCgroup(settings.JUDGE_CGROUP_ROOT)
        over_cpu = threading.Event()

        def stopping() -> bool:
            # Polled while the test runs (runner.CANCEL_POLL_SECONDS): the CPU limit, then a cancel.
            if cgroup.cpu_seconds() > self.limits.timeout_seconds:
                over_cpu.set()
                return True
            return self.cancelled()

        ceiling = dataclasses.replace(self.limits, timeout_seconds=judging.wall_ceiling(self.limits.timeout_seconds, self.limits.cpus))
        api = runner.docker_api()
        sandbox = None
        try:
            if self.made_ahead():
                sandbox = WaitingSandbox.make(api, self.spec, self.code, test, ceiling, self.labels, cgroup)
                if self.on_created:
                    self.on_created(sandbox.container_id)
            self.compiled.wait()
            if self.program is None or not self.start_in_turn(index):
                return None
            try:
                if sandbox is not None:
                    result = sandbox.run(api, self.program, test["stdin"], ceiling, stopping)
                else:
                    result = run_in_cgroup(
                        self.spec, self.code, self.program, test, ceiling, self.labels, self.on_created, stopping, cgroup
                    )
            finally:
                self.runs.release()
            cpu, memory = cgroup.measure()
        finally:
            if sandbox is not None:
                sandbox.destroy(api)
            cgroup.remove()
        if result.status == "cancelled" and not over_cpu.is_set():
            return None
        return self.result(test, result, cpu, memory, over_cpu.is_set())

    def result(self, test: dict, result: runner.RunResult, cpu: float, memory: int, over_cpu: bool) -> dict:
        passed = self.compare(as_text(result.stdout), test["expected_output"]) if result.status == "completed" else None
        verdict = judging.test_verdict(result.status, over_cpu or cpu > self.limits.timeout_seconds, bool(passed))
        kept = settings.JUDGE_KEPT_OUTPUT_BYTES
        # A comparison over its budget did not find the output right: wrong_answer, and why.
        message = {"message": over_budget()} if verdict == judging.WRONG_ANSWER and passed is None else {}
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
            **message,
        }

    def compare(self, output: str, expected: str) -> bool | None:
        try:
            return self.comparisons.passed(output, expected)
        except comparing.ComparisonFailed as exc:
            raise SandboxError(str(exc)) from exc


def over_budget() -> str:
    return (
        f"The comparison did not finish within its time budget ({settings.JUDGE_COMPARISON_SECONDS:g} s each, "
        f"{settings.JUDGE_COMPARISON_TOTAL_SECONDS:g} s for all of the execution's); a simpler pattern would."
    )


# The line that starts a test in its sandbox made ahead; anything else, or none, and it exits 97.
GO = b"run\n"


@dataclass
class WaitingSandbox:
    """A test's sandbox made ahead: started, its shell waiting for GO before it runs the program."""

    container_id: str
    code_dir: str
    stream: socket.socket | None

    @classmethod
    def make(
        cls, api, spec: languages.Language, code: str, test: dict, limits: Limits, labels: dict[str, str], cgroup: TestCgroup
    ) -> WaitingSandbox:
        command = f'IFS= read -r go && [ "$go" = run ] || exit 97; {runner.run_command(spec)}'
        environment = tuple(spec.environment_for(code).items())
        stage = runner.Stage(image_for(spec.name), command, tuple(test["args"]), environment, waits=True)
        sandbox = cls("", runner.new_code_dir(), None)
        try:
            sandbox.container_id = runner.create_container(api, stage, limits, labels, sandbox.code_dir, cgroup.parent)
            sandbox.stream = runner.attach(api, sandbox.container_id, stdin=True)
            api.start(sandbox.container_id)
        except BaseException as exc:
            sandbox.destroy(api)
            if isinstance(exc, runner.UNREACHABLE):
                raise runner.EngineUnavailable(f"the container engine became unreachable: {exc}") from exc
            if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
                raise SandboxError(f"a test's sandbox could not start: {exc}") from exc
            raise
        return sandbox

    def run(self, api, program: Program, stdin: str, limits: Limits, stopping: Callable[[], bool]) -> runner.RunResult:
        """Write the program and the test's stdin, check the sandbox, then start the program: the
        deadline counts from there. Fail closed: a sandbox that is not still waiting runs nothing."""
        runner.fill_code_dir(self.code_dir, program, stdin)
        try:
            state = api.inspect_container(self.container_id)["State"]
        except (docker.errors.DockerException, OSError) as exc:
            raise SandboxError(f"a test's sandbox cannot be inspected: {exc}") from exc
        if not state.get("Running") or self.stream is None or not premade.stream_open(self.stream):
            raise SandboxError("a test's sandbox stopped before its program started")
        stream, self.stream = self.stream, None
        started = time.monotonic()
        runner.deliver(stream, GO, "a test's sandbox")
        return runner.collect(api, self.container_id, stream, limits, started, stopping)

    def destroy(self, api) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.container_id:
            runner.remove_container(api, self.container_id)
        runner.discard_code_dir(self.code_dir)


def run_in_cgroup(
    spec: languages.Language,
    code: str,
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
    stage = runner.run_stage_of(spec, tuple(test["args"]), code)
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
