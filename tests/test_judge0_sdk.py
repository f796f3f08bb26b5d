"""Judge0's official Python SDK against /judge0/ on the production server, with real workers.

The client is constructed explicitly with the local endpoint and our key in X-Auth-Token: the SDK
must never fall back to its public default endpoint (no traffic leaves the machine).
"""

from __future__ import annotations

import judge0
import pytest

from executions.compat.judge0 import LANGUAGE_IDS
from executions.models import Execution, Tenant
from tests.compat_programs import ARGS, EXPECTED, PROGRAMS, STDIN
from tests.conftest import start_web_server, start_workers, stop_web_server, stop_workers


@pytest.fixture
def client(transactional_db):
    process, port = start_web_server()
    workers = start_workers(2)
    _, key = Tenant.objects.create(name="alice").create_api_key()
    try:
        yield judge0.Client(
            f"http://127.0.0.1:{port}/judge0",
            headers={"X-Auth-Token": key},
            retry_strategy=judge0.RegularPeriodRetry(0.5),
        )
    finally:
        stop_workers(workers)
        stop_web_server(process)


def test_the_sdk_runs_every_catalog_language_in_one_batch(client):
    assert client.version == "1.13.1"
    submissions = [
        judge0.Submission(source_code=PROGRAMS[name], language=ids[0], stdin=STDIN, command_line_arguments="x 'y z'")
        for name, ids in LANGUAGE_IDS.items()
    ]
    # A list is sent as one batch (POST /submissions/batch) and polled by tokens.
    results = judge0.run(client=client, submissions=submissions)
    for name, result in zip(LANGUAGE_IDS, results):
        assert (result.status, result.stdout) == (judge0.Status.ACCEPTED, EXPECTED), (name, result)
    assert Execution.objects.filter(status="completed").count() == len(LANGUAGE_IDS)
    assert " ".join(ARGS) in EXPECTED


def test_the_sdk_sees_a_compile_error_and_a_time_limit(client):
    broken = judge0.run(client=client, source_code="int main(void) { return boom; }", language=judge0.LanguageAlias.C)
    assert broken.status == judge0.Status.COMPILATION_ERROR and "boom" in broken.compile_output
    slow = judge0.run(client=client, source_code="while True: pass", language=judge0.LanguageAlias.PYTHON,
                      cpu_time_limit=1)
    assert slow.status == judge0.Status.TIME_LIMIT_EXCEEDED
    failed = judge0.run(client=client, source_code="raise SystemExit(3)", language=judge0.LanguageAlias.PYTHON)
    assert (failed.status, failed.exit_code) == (judge0.Status.RUNTIME_ERROR_NZEC, 3)


def test_the_sdk_gets_accepted_and_wrong_answer_against_an_expected_output(client):
    code = "print(input()[::-1])"
    right = judge0.run(client=client, source_code=code, language=judge0.LanguageAlias.PYTHON, stdin="abc",
                       expected_output="cba")
    assert (right.status, right.stdout) == (judge0.Status.ACCEPTED, "cba\n")
    wrong = judge0.run(client=client, source_code=code, language=judge0.LanguageAlias.PYTHON, stdin="abc",
                       expected_output="abc")
    assert wrong.status == judge0.Status.WRONG_ANSWER
