"""Judging through the API and a real worker: the execution's verdict, counts and each test's result,
a compile error, stop_on_first_failure, the comparisons, the one-test helper, a cancel. The sandboxes'
side (every verdict in three languages, tampering, gVisor) is tests/test_judge_sandboxes.py."""

from __future__ import annotations

import time

import pytest

from executions import submissions
from executions.models import Execution
from tests.conftest import run_worker, sandboxes_of, wait_for_status

pytestmark = pytest.mark.usefixtures("transactional_db")

# What it does is its test's stdin: enough to give each verdict that needs no limit.
PYTHON = """
import sys
what = input()
if what == "ok":
    print("42 ")
elif what == "wrong":
    print(41)
elif what == "crash":
    sys.exit(3)
"""


def judge(persona, body: dict) -> dict:
    response = persona.client.post("/api/v1/executions", body, format="json")
    assert response.status_code == 202, response.content
    run_worker()
    return persona.get(response.json()["task_id"])


def as_tests(cases) -> list[dict]:
    return [{"name": what, "stdin": what + "\n", "expected_output": "42"} for what, _ in cases]


def test_the_execution_shows_its_verdict_counts_and_each_tests_result(alice):
    cases = [("ok", "accepted"), ("wrong", "wrong_answer"), ("crash", "runtime_error")]
    body = judge(alice, {"language": "python", "code": PYTHON, "tests": as_tests(cases), "timeout_seconds": 1})
    assert (body["status"], body["verdict"], body["tests_passed"], body["tests_failed"]) == ("completed", "wrong_answer", 1, 2)
    assert [result["verdict"] for result in body["test_results"]] == [verdict for _, verdict in cases]
    ok = body["test_results"][0]
    assert (ok["name"], ok["stdout"], ok["exit_code"], ok["stdout_truncated"]) == ("ok", "42 \n", 0, False)
    assert ok["cpu_time_ms"] > 0 and ok["wall_time_ms"] > 0 and ok["memory_kb"] > 0
    assert body["test_results"][2]["exit_code"] == 3
    # The execution's own output is the deciding test's: the first that failed.
    assert (body["stdout"], body["exit_code"]) == ("41\n", 0)
    execution = Execution.objects.get(id=body["task_id"])
    assert (execution.verdict, execution.weight) == ("wrong_answer", 3)


def test_a_compile_error_is_the_verdict_and_no_test_runs(alice):
    body = judge(alice, {"language": "cpp", "code": "int main() { return nope; }", "tests": as_tests([("ok", "-")])})
    assert (body["status"], body["verdict"]) == ("compilation_error", "compilation_error")
    assert "nope" in body["compile_output"] and body["test_results"] == []


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
    # The test's output is the execution's own, as a plain run's would be.
    assert (execution.stdout, execution.exit_code) == ("hello\n", 0)


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
