"""Hostile scripts, end to end: the API, the queue, a real worker and the Docker engine.

Each file in tests/corpus is one attack. Its leading comment lines say what must happen:

    # expect: <status>          the terminal status (first line, required)
    # expect-runsc: <status>    under gVisor, where it differs: a status or several (a|b), then a
                                reason; must-contain does not apply there
    # runtimes: runc            run under these runtimes only (default: every one the engine has)
    # must-contain: <text>      text that must appear in stdout or stderr
    # must-not-contain: <text>  text that must appear in neither

Every case runs under runc; where the engine has gVisor (runsc), once more under runsc, on the
first database backend only (the runtime, not the database, is what that run is about).

After every case the host must still be healthy: the engine answers, the run left no container,
and a benign script still completes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import pytest
from django.conf import settings

from executions.models import Execution
from executions.sandbox import premade
from executions.sandbox.runner import docker_api
from tests.conftest import run_worker, sandboxes_of

CORPUS = Path(__file__).resolve().parent / "corpus"
LANGUAGES = {".py": "python", ".sh": "bash"}
STATUSES = {"completed", "failed", "timed_out", "oom_killed", "output_limit_exceeded"}
EXPECT = re.compile(r"# expect: (\S+)$")
RULE = re.compile(r"# (must-contain|must-not-contain): (.+)$")
PER_RUNTIME = re.compile(r"# (expect-runsc|runtimes): (\S+)")
# How long after its deadline a killed run may take to end: the kill and the drain of its output.
KILL_MARGIN_MS = 5000
# The deadline of a case that must not time out: the platform's default (5 s) is a judgement
# about the case's work, and a slow CI machine under gVisor may take longer to walk an image.
UNHURRIED_SECONDS = 30.0


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str
    must_contain: tuple[str, ...]
    must_not_contain: tuple[str, ...]
    expect_runsc: str | None
    runtimes: tuple[str, ...]

    @property
    def language(self) -> str:
        return LANGUAGES[self.path.suffix]

    @classmethod
    def load(cls, path: Path) -> Case:
        lines = path.read_text().splitlines()
        match = EXPECT.match(lines[0]) if lines else None
        assert match and match[1] in STATUSES, f"{path.name}: the first line must be `# expect: <status>`"
        rules: dict[str, list[str]] = {"must-contain": [], "must-not-contain": []}
        per_runtime = {"expect-runsc": None, "runtimes": "runc,runsc"}
        # The rules live in the comment block at the top; a comment further down is just a comment.
        for line in lines[1:]:
            if not line.startswith("#"):
                break
            rule = RULE.match(line)
            if rule:
                rules[rule[1]].append(rule[2])
            other = PER_RUNTIME.match(line)
            if other:
                per_runtime[other[1]] = other[2]
        runsc = per_runtime["expect-runsc"]
        assert runsc is None or set(runsc.split("|")) <= STATUSES, f"{path.name}: bad expect-runsc"
        return cls(
            path,
            match[1],
            tuple(rules["must-contain"]),
            tuple(rules["must-not-contain"]),
            per_runtime["expect-runsc"],
            tuple(per_runtime["runtimes"].split(",")),
        )

    def expected(self, runtime: str) -> set[str]:
        return set((self.expect_runsc if runtime == "runsc" and self.expect_runsc else self.expect).split("|"))


def corpus() -> list[Case]:
    return [Case.load(path) for path in sorted(CORPUS.iterdir()) if path.suffix in LANGUAGES]


CASES = corpus()


def engine_runtimes() -> list[str]:
    runtimes = ["runc"]
    on_first_backend = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    if on_first_backend and "runsc" in docker_api().info().get("Runtimes", {}):
        runtimes.append("runsc")
    return runtimes


PARAMS = [
    pytest.param(case, runtime, id=f"{runtime}-{case.path.name}")
    for runtime in engine_runtimes()
    for case in CASES
    if runtime in case.runtimes
]


@pytest.mark.no_database
def test_the_corpus_is_only_scripts():
    assert len(CASES) >= 40
    assert {path.suffix for path in CORPUS.iterdir()} <= set(LANGUAGES)


@pytest.fixture
def made_ahead(monkeypatch) -> list[str]:
    """The containers that ran an execution in a sandbox made ahead (the worker's usual path)."""
    used = []
    deliver = premade.run_in

    def spy(api, sandbox, *args, **kwargs):
        used.append(sandbox.container_id)
        return deliver(api, sandbox, *args, **kwargs)

    monkeypatch.setattr(premade, "run_in", spy)
    return used


@pytest.mark.parametrize("case, runtime", PARAMS)
def test_it_contains_the_hostile_script(case, runtime, alice, transactional_db, settings, made_ahead):
    settings.SANDBOX_RUNTIME = "" if runtime == "runc" else runtime
    if "timed_out" not in case.expected(runtime):
        settings.SANDBOX_TIMEOUT_SECONDS = UNHURRIED_SECONDS
    task_id = alice.submit(case.path.read_text(), case.language)
    run_worker()
    result = alice.get(task_id)
    execution = Execution.objects.get(id=task_id)
    assert execution.container_id in made_ahead
    assert execution.timeout_seconds == settings.SANDBOX_TIMEOUT_SECONDS
    output = result["stdout"] + result["stderr"]

    assert result["status"] in case.expected(runtime), describe(result)
    # What a script prints on its way to a different verdict under gVisor is not comparable.
    must_contain = case.must_contain if runtime == "runc" or case.expect_runsc is None else ()
    for text in must_contain:
        assert text in output, f"missing {text!r}\n{describe(result)}"
    for text in case.must_not_contain:
        assert text not in output, f"found {text!r}\n{describe(result)}"
    assert_stored_safely(result)
    assert_no_container_left(task_id)
    assert_host_healthy(alice)


def assert_stored_safely(result: dict) -> None:
    limit = settings.SANDBOX_OUTPUT_LIMIT_BYTES
    for stream in ("stdout", "stderr"):
        # Stored text never holds NUL, and each byte becomes at most one character.
        assert "\x00" not in result[stream]
        assert len(result[stream]) <= limit
    truncated = result["stdout_truncated"] or result["stderr_truncated"]
    assert truncated == (result["status"] == "output_limit_exceeded"), describe(result)
    assert result["duration_ms"] < settings.SANDBOX_TIMEOUT_SECONDS * 1000 + KILL_MARGIN_MS, describe(result)


def assert_no_container_left(task_id: str) -> None:
    api = docker_api()
    # Only this run's containers: other workers may share the engine while the corpus runs.
    left = sandboxes_of(task_id)
    assert left == [], f"containers left: {[c['Id'][:12] for c in left]}"
    container_id = Execution.objects.get(id=task_id).container_id
    assert container_id
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(container_id)


def assert_host_healthy(persona) -> None:
    assert docker_api().ping()
    task_id = persona.submit("print('ok')")
    run_worker()
    result = persona.get(task_id)
    assert (result["status"], result["stdout"], result["stderr"]) == ("completed", "ok\n", ""), describe(result)
    assert_no_container_left(task_id)


def describe(result: dict) -> str:
    shown = {key: result[key] for key in ("status", "exit_code", "duration_ms", "error")}
    return f"{shown}\nstdout: {result['stdout'][:1500]!r}\nstderr: {result['stderr'][:1500]!r}"
