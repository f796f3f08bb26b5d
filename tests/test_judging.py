"""Judging with real sandboxes, through the API and a real worker: every verdict in Python, C++ and
Java (one program per language that does what its test's stdin says, so that one submission covers
them all), tests that try to reach each other, programs that sleep or stop themselves, gVisor."""

from __future__ import annotations

import time

import pytest

from executions import submissions
from executions.models import Execution
from executions.sandbox import runner
from tests.conftest import run_worker, sandboxes_of, wait_for_status

pytestmark = pytest.mark.usefixtures("transactional_db")

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


def judge(persona, body: dict) -> dict:
    response = persona.client.post("/api/v1/executions", body, format="json")
    assert response.status_code == 202, response.content
    run_worker()
    return persona.get(response.json()["task_id"])


def as_tests(cases) -> list[dict]:
    return [{"name": what, "stdin": what + "\n", "expected_output": "42"} for what, _ in cases]


def assert_every_verdict(body: dict, cpu_limit_ms: int) -> None:
    assert (body["status"], body["verdict"]) == ("completed", "wrong_answer"), body
    assert (body["tests_passed"], body["tests_failed"]) == (1, 5)
    results = {result["name"]: result for result in body["test_results"]}
    assert {name: result["verdict"] for name, result in results.items()} == dict(EVERY_VERDICT)
    assert results["ok"]["stdout"].strip() == "42" and results["ok"]["exit_code"] == 0
    # The CPU limit stopped the loop, measured on the host; the wall clock allowed for its share of a core.
    assert results["spin"]["cpu_time_ms"] >= cpu_limit_ms
    assert results["spin"]["wall_time_ms"] >= results["spin"]["cpu_time_ms"]
    assert results["eat"]["memory_kb"] > results["ok"]["memory_kb"]
    assert results["crash"]["exit_code"] != 0
    assert results["flood"]["stdout_truncated"]
    assert all(result["cpu_time_ms"] > 0 and result["memory_kb"] > 0 for result in results.values())


def test_every_verdict_in_python(alice):
    body = judge(alice, {"language": "python", "code": PYTHON, "tests": as_tests(EVERY_VERDICT), "timeout_seconds": 1})
    assert_every_verdict(body, 1000)
    assert body["compile_output"] == "" and body["compile_duration_ms"] is None


def test_every_verdict_in_cpp_compiled_once_and_its_binary_read_only(alice):
    cases = [*EVERY_VERDICT, ("tamper", "accepted")]
    tests = as_tests(cases)
    tests[-1]["expected_output"] = "denied"
    body = judge(alice, {"language": "cpp", "code": CPP, "tests": tests, "timeout_seconds": 1})
    assert body["compile_duration_ms"] > 0
    assert body["test_results"].pop()["verdict"] == "accepted"
    body["tests_passed"] -= 1
    assert_every_verdict(body, 1000)


def test_every_verdict_in_java(alice):
    body = judge(alice, {"language": "java", "code": JAVA, "tests": as_tests(EVERY_VERDICT), "timeout_seconds": 2})
    assert_every_verdict(body, 2000)


def test_a_compile_error_is_the_verdict_and_no_test_runs(alice):
    body = judge(alice, {"language": "cpp", "code": "int main() { return nope; }", "tests": as_tests(EVERY_VERDICT[:2])})
    assert (body["status"], body["verdict"]) == ("compilation_error", "compilation_error")
    assert "nope" in body["compile_output"] and body["test_results"] == []


def test_a_program_that_sleeps_or_stops_itself_is_ended_by_the_wall_ceiling(alice):
    code = "import os, signal, sys, time\nif sys.argv[1] == 'stop':\n    os.kill(os.getpid(), signal.SIGSTOP)\ntime.sleep(60)\n"
    tests = [{"name": what, "args": [what], "expected_output": ""} for what in ("stop", "sleep")]
    body = judge(alice, {"language": "python", "code": code, "tests": tests, "timeout_seconds": 0.5})
    for result in body["test_results"]:
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


def test_a_test_cannot_reach_another_tests_files_processes_or_output(alice, settings):
    settings.JUDGE_PARALLEL_TESTS = 2
    tests = [
        {"name": "attack", "args": ["attack"], "expected_output": "42"},
        {"name": "alongside", "args": ["look"], "expected_output": "clean"},
        {"name": "after", "args": ["look"], "expected_output": "clean"},
    ]
    body = judge(alice, {"language": "python", "code": TAMPER, "tests": tests, "timeout_seconds": 2})
    assert [result["verdict"] for result in body["test_results"]] == ["accepted"] * 3, body["test_results"]


def test_stop_on_first_failure_skips_the_tests_not_started(alice, settings):
    settings.JUDGE_PARALLEL_TESTS = 1
    cases = [("ok", "accepted"), ("crash", "runtime_error"), ("ok", "skipped"), ("wrong", "skipped")]
    body = judge(alice, {"language": "python", "code": PYTHON, "tests": as_tests(cases), "stop_on_first_failure": True})
    assert [result["verdict"] for result in body["test_results"]] == [verdict for _, verdict in cases]
    assert (body["verdict"], body["tests_passed"], body["tests_failed"]) == ("runtime_error", 1, 1)


def test_a_regex_comparison_and_the_float_tolerance(alice):
    code = "import sys\nprint(sys.argv[1])\n"
    tests = [
        {"args": ["3.14159"], "expected_output": "3.1416"},
        {"args": ["3.2"], "expected_output": "3.1416"},
    ]
    body = judge(alice, {"language": "python", "code": code, "tests": tests, "comparison": "float", "abs_tolerance": 1e-3})
    assert [result["verdict"] for result in body["test_results"]] == ["accepted", "wrong_answer"]
    tests = [{"args": ["id-4711"], "expected_output": r"id-\d+"}, {"args": ["id-x"], "expected_output": r"id-\d+"}]
    body = judge(alice, {"language": "python", "code": code, "tests": tests, "comparison": "regex"})
    assert [result["verdict"] for result in body["test_results"]] == ["accepted", "wrong_answer"]


def test_the_one_test_helper_judges_like_judge0(alice):
    execution, created = submissions.judged(alice.tenant, "python", "print(input()[::-1])", "olleh\n", (), "hello  \n\n")
    assert created and execution.tests == [{"name": "test 1", "stdin": "olleh\n", "args": [], "expected_output": "hello  \n\n"}]
    run_worker()
    execution.refresh_from_db()
    assert (execution.status, execution.verdict, execution.tests_passed) == ("completed", "accepted", 1)


needs_runsc = pytest.mark.skipif(
    "runsc" not in (runner.docker_api().info().get("Runtimes") or {}), reason="the engine has no gVisor runtime"
)


@needs_runsc
def test_cpu_time_and_memory_are_the_hosts_under_gvisor_too(alice, settings):
    settings.SANDBOX_RUNTIME = "runsc"
    cases = [("ok", "accepted"), ("spin", "time_limit_exceeded")]
    body = judge(alice, {"language": "python", "code": PYTHON, "tests": as_tests(cases), "timeout_seconds": 0.5})
    results = [result for result in body["test_results"]]
    assert [result["verdict"] for result in results] == ["accepted", "time_limit_exceeded"], body
    assert results[1]["cpu_time_ms"] >= 500 and all(result["memory_kb"] > 0 for result in results)
    assert Execution.objects.get(id=body["task_id"]).status == "completed"


def test_cancelling_a_judged_execution_stops_its_tests(alice, worker_process):
    tests = [{"name": f"sleep {index}", "expected_output": ""} for index in range(4)]
    response = alice.client.post(
        "/api/v1/executions",
        {"language": "python", "code": "import time\ntime.sleep(60)\n", "tests": tests, "timeout_seconds": 5},
        format="json",
    )
    task_id = response.json()["task_id"]
    wait_for_status(task_id, {"running"})
    deadline = time.monotonic() + 30
    while not sandboxes_of(task_id, running=True):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").json()["status"] == "cancelled"
    # Each test could sleep 11 s by the clock; the cancel ends the running ones and starts no more.
    while sandboxes_of(task_id):
        assert time.monotonic() < deadline, "the judged execution's sandboxes outlived its cancel"
        time.sleep(0.05)
    assert Execution.objects.get(id=task_id).status == "cancelled"
