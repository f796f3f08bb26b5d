"""Judging in real sandboxes (executions.sandbox.judge, without the queue or a database): every
verdict in Python, C++ and Java (one program per language that does what its test's stdin says, so
that one compile covers them all), tests that try to reach each other, programs that sleep or stop
themselves, CPU time and memory under gVisor."""

from __future__ import annotations

import dataclasses
import time

import pytest

from executions.judging import Comparison
from executions.sandbox import judge, runner

pytestmark = pytest.mark.no_database

PYTHON = """
import os, sys
what = sys.stdin.read().strip()
if what == "ok":
    print("42 ")
elif what == "wrong":
    print(41)
elif what == "spin":
    while True:
        pass
elif what == "eat":
    hog = []
    while True:
        hog.append(bytearray(4 << 20))
elif what == "crash":
    sys.exit(3)
elif what == "flood":
    while True:
        sys.stdout.write("x" * 65536)
"""

CPP = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
int main() {
    std::string what;
    std::cin >> what;
    if (what == "ok") std::cout << 42 << "\n";
    else if (what == "wrong") std::cout << 41 << "\n";
    else if (what == "spin") { volatile unsigned long n = 0; for (;;) n++; }
    else if (what == "eat") { for (;;) { char *p = (char *)malloc(4 << 20); memset(p, 1, 4 << 20); } }
    else if (what == "crash") abort();
    else if (what == "flood") { for (;;) fputs("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", stdout); }
    else if (what == "tamper") {
        // The compiled program and the test's stdin are read-only for every test.
        bool wrote = fopen("/code/main", "r+") || fopen("/code/stdin", "w");
        std::cout << (wrote ? "changed" : "denied") << "\n";
    }
    return 0;
}
"""

JAVA = """
import java.util.*;
class Main {
    public static void main(String[] args) {
        String what = new Scanner(System.in).next();
        switch (what) {
            case "ok": System.out.println(42); break;
            case "wrong": System.out.println(41); break;
            case "spin": { long n = 0; while (true) n++; }
            case "eat": { List<long[]> hog = new ArrayList<>(); while (true) hog.add(new long[1 << 19]); }
            case "crash": throw new IllegalStateException("crash");
            case "flood": while (true) System.out.print("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n");
        }
    }
}
"""

EVERY_VERDICT = [
    ("ok", "accepted"),
    ("wrong", "wrong_answer"),
    ("spin", "time_limit_exceeded"),
    ("eat", "memory_limit_exceeded"),
    ("crash", "runtime_error"),
    ("flood", "output_limit_exceeded"),
]


def as_tests(cases) -> list[dict]:
    return [{"name": what, "stdin": what + "\n", "args": [], "expected_output": "42"} for what, _ in cases]


def limits_with(language: str, timeout_seconds: float) -> runner.Limits:
    return dataclasses.replace(runner.Limits.for_stage(judge.languages.get(language).limits), timeout_seconds=timeout_seconds)


def assert_every_verdict(outcome: judge.Judged, cpu_limit_ms: int) -> None:
    assert (outcome.status, outcome.verdict) == ("completed", "wrong_answer"), outcome
    assert (outcome.passed, outcome.failed) == (1, 5)
    results = {result["name"]: result for result in outcome.results}
    assert {name: result["verdict"] for name, result in results.items()} == dict(EVERY_VERDICT)
    assert results["ok"]["stdout"].strip() == "42" and results["ok"]["exit_code"] == 0
    # The CPU limit stopped the loop, measured on the host; or, on a host too busy to give the loop
    # its share of a core, the wall ceiling did (the limit / SANDBOX_CPUS + 1 s).
    spin = results["spin"]
    assert spin["cpu_time_ms"] >= cpu_limit_ms or spin["wall_time_ms"] >= cpu_limit_ms / 0.5 + 1000, spin
    assert results["eat"]["memory_kb"] > results["ok"]["memory_kb"]
    assert results["crash"]["exit_code"] != 0
    assert results["flood"]["stdout_truncated"]
    assert all(result["cpu_time_ms"] > 0 and result["memory_kb"] > 0 for result in results.values())


def test_every_verdict_in_python():
    outcome = judge.judge("python", PYTHON, as_tests(EVERY_VERDICT), Comparison(), limits=limits_with("python", 1))
    assert_every_verdict(outcome, 1000)
    assert outcome.compile_duration_ms is None


def test_every_verdict_in_cpp_compiled_once_and_its_binary_read_only():
    tests = as_tests([*EVERY_VERDICT, ("tamper", "accepted")])
    tests[-1]["expected_output"] = "denied"
    outcome = judge.judge("cpp", CPP, tests, Comparison(), limits=limits_with("cpp", 1))
    assert outcome.compile_duration_ms > 0
    assert outcome.results.pop()["verdict"] == "accepted"
    assert_every_verdict(outcome, 1000)


def test_every_verdict_in_java():
    outcome = judge.judge("java", JAVA, as_tests(EVERY_VERDICT), Comparison(), limits=limits_with("java", 2))
    assert_every_verdict(outcome, 2000)


@pytest.mark.parametrize("delivery", ["bind", "copy"])
def test_a_java_program_is_judged_by_the_public_class_it_declares(settings, delivery):
    # Made ahead (bind) or cold (copy), each test's sandbox runs the class the source names.
    settings.SANDBOX_CODE_DELIVERY = delivery
    code = JAVA.replace("class Main", "public class Solution")
    outcome = judge.judge("java", code, as_tests([("ok", "accepted")]), Comparison(), limits=limits_with("java", 2))
    assert (outcome.status, outcome.verdict) == ("completed", "accepted"), outcome


def test_a_program_that_sleeps_or_stops_itself_is_ended_by_the_wall_ceiling():
    code = "import os, signal, sys, time\nif sys.argv[1] == 'stop':\n    os.kill(os.getpid(), signal.SIGSTOP)\ntime.sleep(60)\n"
    tests = [{"name": what, "stdin": "", "args": [what], "expected_output": ""} for what in ("stop", "sleep")]
    outcome = judge.judge("python", code, tests, Comparison(), limits=limits_with("python", 0.5))
    for result in outcome.results:
        assert result["verdict"] == "time_limit_exceeded", result
        # Little CPU used: the wall-clock ceiling (0.5 s / 0.5 of a core + 1 s) ended it.
        assert result["cpu_time_ms"] < 500 and 1900 <= result["wall_time_ms"] < 15_000


TAMPER = """
import os, signal, sys, time
if sys.argv[1] == "attack":
    # Everything but itself, its parent (which answers this test) and the init: anything of another test's.
    spared = {os.getpid(), 1}
    if os.fork() == 0:
        os.setsid()
        end = time.time() + 4
        while time.time() < end:
            with open("/tmp/marker", "w") as marker:
                marker.write("here")
            for pid in os.listdir("/proc"):
                if pid.isdigit() and int(pid) not in spared | {os.getpid()}:
                    for fd in ("0", "1", "2"):
                        try:
                            with open(f"/proc/{pid}/fd/{fd}", "w") as pipe:
                                pipe.write("42\\n")
                        except OSError:
                            pass
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.05)
        os._exit(0)
    # While the child attacks, the tests beside this one run.
    time.sleep(1.5)
    print("42")
else:
    time.sleep(1)
    mine = {os.getpid(), os.getppid(), 1}
    others = [pid for pid in os.listdir("/proc") if pid.isdigit() and int(pid) not in mine]
    print("clean" if not os.path.exists("/tmp/marker") and not others else f"touched {others}")
"""



def test_a_test_cannot_reach_another_tests_files_processes_or_output(settings):
    settings.JUDGE_PARALLEL_TESTS = 2
    tests = [
        {"name": "attack", "stdin": "", "args": ["attack"], "expected_output": "42"},
        {"name": "alongside", "stdin": "", "args": ["look"], "expected_output": "clean"},
        {"name": "after", "stdin": "", "args": ["look"], "expected_output": "clean"},
    ]
    outcome = judge.judge("python", TAMPER, tests, Comparison(), limits=limits_with("python", 2))
    assert [result["verdict"] for result in outcome.results] == ["accepted"] * 3, outcome.results


def test_a_regex_comparison_over_its_budget_is_a_wrong_answer_and_the_other_tests_are_judged(settings):
    settings.JUDGE_COMPARISON_SECONDS = 0.1
    code = "import random, sys\nrandom.seed(1)\nsys.stdout.write(''.join(random.choice('ab') for _ in range(60000)))\n"
    tests = [
        # About a second and a half of RE2's NFA unbounded (tests/test_comparison_budget.py).
        {"name": "slow", "stdin": "", "args": [], "expected_output": "[ab]*a" + "[ab]" * 4000},
        {"name": "quick", "stdin": "", "args": [], "expected_output": "[ab]*"},
    ]
    outcome = judge.judge("python", code, tests, Comparison("regex"), limits=limits_with("python", 2))
    slow, quick = outcome.results
    assert (slow["verdict"], quick["verdict"], outcome.verdict) == ("wrong_answer", "accepted", "wrong_answer"), outcome.results
    assert "time budget" in slow["message"] and "message" not in quick


needs_runsc = pytest.mark.skipif(
    "runsc" not in (runner.docker_api().info().get("Runtimes") or {}), reason="the engine has no gVisor runtime"
)


@needs_runsc
def test_cpu_time_and_memory_are_the_hosts_under_gvisor_too(settings):
    settings.SANDBOX_RUNTIME = "runsc"
    cases = [("ok", "accepted"), ("spin", "time_limit_exceeded")]
    outcome = judge.judge("python", PYTHON, as_tests(cases), Comparison(), limits=limits_with("python", 0.5))
    assert outcome.results[1]["verdict"] == "time_limit_exceeded", outcome.results
    assert outcome.results[0]["verdict"] == "accepted", outcome.results
    spin = outcome.results[1]
    assert spin["cpu_time_ms"] >= 500 or spin["wall_time_ms"] >= 2000, spin
    assert 0 < outcome.results[0]["cpu_time_ms"] < 500 and all(result["memory_kb"] > 0 for result in outcome.results)


def test_with_code_copied_each_test_makes_its_own_sandbox(settings):
    # The sandboxes made ahead need a bind-mounted /code; with "copy" each test takes the cold path.
    settings.SANDBOX_CODE_DELIVERY = "copy"
    cases = [("ok", "accepted"), ("wrong", "wrong_answer")]
    outcome = judge.judge("python", PYTHON, as_tests(cases), Comparison(), limits=limits_with("python", 1))
    assert [result["verdict"] for result in outcome.results] == ["accepted", "wrong_answer"]
    assert all(result["cpu_time_ms"] > 0 and result["memory_kb"] > 0 for result in outcome.results)


def test_tests_start_in_their_order_so_a_later_failure_skips_only_later_tests(settings, monkeypatch):
    settings.JUDGE_PARALLEL_TESTS = 1
    made = judge.WaitingSandbox.make

    def first_made_last(api, spec, code, test, *args):
        # The first test's sandbox is ready after the second's, which once ran first.
        if test["name"] == "first":
            time.sleep(1.5)
        return made(api, spec, code, test, *args)

    monkeypatch.setattr(judge.WaitingSandbox, "make", first_made_last)
    tests = as_tests([("ok", "accepted"), ("wrong", "wrong_answer"), ("ok", "skipped")])
    tests[0]["name"] = "first"
    outcome = judge.judge("python", PYTHON, tests, Comparison(), stop_on_first_failure=True, limits=limits_with("python", 1))
    assert [result["verdict"] for result in outcome.results] == ["accepted", "wrong_answer", "skipped"], outcome.results
    assert outcome.verdict == "wrong_answer"


def test_a_sandbox_that_stops_before_its_program_starts_runs_nothing(monkeypatch):
    made = judge.WaitingSandbox.make

    def make_and_kill(api, *args):
        sandbox = made(api, *args)
        api.kill(sandbox.container_id)
        api.wait(sandbox.container_id, timeout=10)
        return sandbox

    monkeypatch.setattr(judge.WaitingSandbox, "make", make_and_kill)
    with pytest.raises(runner.SandboxError, match="stopped before its program started"):
        judge.judge("python", PYTHON, as_tests([("ok", "accepted")]), Comparison(), limits=limits_with("python", 1))
