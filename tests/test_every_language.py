"""Every language of the catalog, under runc and gVisor: the same programs (tests/languages.py) end
as they must, each in a sandbox with the language's own limits.

Runs go straight through the runner, as a worker's job calls it, several at once: the module runs
every case of a runtime once (a module-scoped pool) and each test checks one outcome.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from executions import limits
from executions.sandbox import languages, runner
from executions.sandbox.runner import Limits, docker_api
from tests.languages import PROGRAMS

pytestmark = pytest.mark.no_database

STDIN = "first line\nsecond line: ünïcode\n"
# A run that ends at its deadline must end within this of it (kill, drain). The precision itself
# is a benchmark's to measure (bench/languages.py --loops: 5.0-5.3 s on a quiet machine); on a
# shared one, at a load average of 10-20, runs ended 5.32-5.63 s after their start.
DEADLINE_MARGIN_MS = {"runc": 1000, "runsc": 1000}
# A fork bomb's hundreds of processes take longer to kill.
FORK_KILL_MARGIN_MS = 5000
# Cases run at once: enough to overlap the slow ones, few enough for 2 cores. The endless loops
# run apart, two at once (each takes its half core to the end), so that their deadlines are
# measured on a machine that is not saturated by this very module.
CONCURRENCY = 4
LOOP_CONCURRENCY = 2


def engine_runtimes() -> list[str]:
    found = ["runc"]
    if "runsc" in docker_api().info().get("Runtimes", {}):
        found.append("runsc")
    return found


def threads_work(runtime: str) -> bool:
    """Whether a program can start a thread under this runtime. gVisor 20221219 with --oci-seccomp
    answers clone3 with EPERM where Docker's profile says ENOSYS, so glibc cannot fall back to
    clone: every threaded runtime (JVM, Node, Go's and Rust's compilers) fails to start."""
    result = runner.run(
        "python",
        "import threading\nt = threading.Thread(target=print, args=('ok',))\nt.start()\nt.join()\n",
        limits=Limits.for_stage(languages.CATALOG["python"].limits, runtime),
    )
    return result.stdout == b"ok\n"


THREADED = {"java", "javascript", "typescript", "go", "rust"}
RUNTIMES = engine_runtimes()
CASES = [(name, case) for name in languages.NAMES for case in PROGRAMS[name]]


def test_every_language_has_every_program():
    assert set(PROGRAMS) == set(languages.NAMES)
    for name, language in languages.CATALOG.items():
        expected = {"hello", "echo", "exit3", "runtime_error", "loop", "memory", "flood", "fork"}
        if language.compile:
            expected |= {"compile_error", "compile_bomb"}
        assert set(PROGRAMS[name]) == expected, name


@pytest.fixture(scope="module")
def outcomes() -> dict:
    """Every case under every runtime, run once: (runtime, language, case) -> (RunResult, wall ms)."""
    results: dict = {}
    broken = {runtime for runtime in RUNTIMES if not threads_work(runtime)}

    def one(key):
        runtime, name, case = key
        if runtime in broken and name in THREADED:
            return key, None
        language = languages.CATALOG[name]
        run_limits = Limits.for_stage(language.limits, runtime)
        started = time.monotonic()
        result = runner.run(name, PROGRAMS[name][case], STDIN if case == "echo" else "", limits=run_limits)
        return key, (result, int((time.monotonic() - started) * 1000))

    keys = [(runtime, name, case) for runtime in RUNTIMES for name, case in CASES]
    # The slow cases first, so that they overlap the quick ones rather than trail them.
    keys.sort(key=lambda key: key[2] not in ("fork", "memory", "compile_bomb"))
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results.update(pool.map(one, [key for key in keys if key[2] != "loop"]))
    with ThreadPoolExecutor(LOOP_CONCURRENCY) as pool:
        results.update(pool.map(one, [key for key in keys if key[2] == "loop"]))
    return results


def outcome_of(outcomes, runtime, name, case) -> runner.RunResult:
    found = outcomes[(runtime, name, case)]
    if found is None:
        pytest.skip(f"threads cannot start under {runtime} on this engine (gVisor's clone3 answer); see threads_work")
    return found[0]


def describe(result: runner.RunResult) -> str:
    return (
        f"status={result.status} exit={result.exit_code} duration={result.duration_ms} "
        f"compile={result.compile_output[-1500:]!r} stdout={result.stdout[:300]!r} stderr={result.stderr[-1500:]!r}"
    )


PARAMS = [pytest.param(runtime, name, id=f"{runtime}-{name}") for runtime in RUNTIMES for name in languages.NAMES]


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_hello_world(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "hello")
    assert (result.status, result.stdout, result.exit_code) == ("completed", b"hello, world\n", 0), describe(result)
    if languages.CATALOG[name].compile:
        assert result.compile_duration_ms is not None and result.compile_duration_ms > 0
    else:
        assert result.compile_duration_ms is None


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_stdin_comes_back(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "echo")
    assert (result.status, result.stdout) == ("completed", STDIN.encode()), describe(result)


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_a_non_zero_exit_fails(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "exit3")
    assert (result.status, result.exit_code) == ("failed", 3), describe(result)


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_a_runtime_error_fails_with_its_message(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "runtime_error")
    assert result.status == "failed" and result.exit_code != 0, describe(result)
    assert b"boom" in result.stderr, describe(result)


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_an_endless_loop_times_out_at_its_deadline(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "loop")
    deadline_ms = limits.language_defaults(languages.CATALOG[name]).timeout_seconds * 1000
    assert result.status == "timed_out", describe(result)
    assert deadline_ms <= result.duration_ms <= deadline_ms + DEADLINE_MARGIN_MS[runtime], describe(result)


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_a_memory_bomb_is_oom_killed(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "memory")
    # Under gVisor the engine sometimes reports the OOM-killed sandbox as a plain SIGKILL (137).
    allowed = {"oom_killed"} if runtime == "runc" else {"oom_killed", "failed"}
    assert result.status in allowed, describe(result)
    if result.status == "failed":
        assert result.exit_code == 137, describe(result)


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_an_output_flood_is_cut_at_the_limit(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "flood")
    assert result.status == "output_limit_exceeded", describe(result)
    assert result.stdout_truncated and len(result.stdout) == settings.SANDBOX_OUTPUT_LIMIT_BYTES


@pytest.mark.parametrize("runtime, name", PARAMS)
def test_a_fork_bomb_is_contained(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "fork")
    # The pids limit refuses the processes; the run then ends at its deadline (or, under gVisor,
    # as its sentry gives up), never later, and leaves nothing behind (the session checks that).
    assert result.status in {"timed_out", "failed", "oom_killed"}, describe(result)
    deadline_ms = limits.language_defaults(languages.CATALOG[name]).timeout_seconds * 1000
    assert result.duration_ms <= deadline_ms + FORK_KILL_MARGIN_MS, describe(result)
    if runtime == "runc" and name in ("c", "cpp", "python", "go", "rust", "java"):
        assert b"fork refused" in result.stdout, describe(result)


COMPILED = [
    pytest.param(runtime, name, id=f"{runtime}-{name}")
    for runtime in RUNTIMES
    for name, language in languages.CATALOG.items()
    if language.compile
]


@pytest.mark.parametrize("runtime, name", COMPILED)
def test_a_compile_error_is_a_compilation_error_with_the_compilers_message(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "compile_error")
    assert result.status == "compilation_error", describe(result)
    assert b"boom" in result.compile_output, describe(result)
    # The program never ran.
    assert (result.stdout, result.stderr, result.duration_ms) == (b"", b"", 0)


@pytest.mark.parametrize("runtime, name", COMPILED)
def test_a_compile_bomb_is_stopped_by_the_compile_limits(outcomes, runtime, name):
    result = outcome_of(outcomes, runtime, name, "compile_bomb")
    compile_limits = languages.CATALOG[name].compile.limits
    assert result.status == "compilation_error", describe(result)
    assert result.compile_duration_ms <= compile_limits.timeout_seconds * 1000 + DEADLINE_MARGIN_MS[runtime], describe(result)
