"""Piston v2 under /piston/: its errors and shapes, version ranges, the key in the path, and the
operator's tenant for calls without one."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.test import APIClient

from executions import store
from executions.compat.piston import satisfies
from executions.models import Execution, Tenant
from executions.sandbox import images
from tests.conftest import assert_nothing_created

pytestmark = pytest.mark.usefixtures("transactional_db")

PYTHON = {"language": "python", "version": "*", "files": [{"content": "print(1)"}]}


@pytest.fixture(autouse=True)
def python_version(redis_conn):
    """Python's version as a worker records it, read in its image."""
    redis_conn.set(store.RUNTIMES_KEY.format(images.sandbox_image("python")), '{"versions": {"python": "3.11.2"}}')


def execute(path: str, body, content_type: str = "application/json"):
    return APIClient().post(path, body, format="json" if content_type == "application/json" else None,
                            content_type=None if content_type == "application/json" else content_type)


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "language is required as a string"),
        ({"language": "python"}, "version is required as a string"),
        ({"language": "python", "version": "*"}, "files is required as an array"),
        ({"language": "python", "version": "*", "files": [{"name": "a"}]}, "files[0].content is required as a string"),
        ({"language": "cobol", "version": "*", "files": [{"content": "x"}]}, "cobol-* runtime is unknown"),
        ({"language": "python", "version": "2", "files": [{"content": "x"}]}, "python-2 runtime is unknown"),
        ({"language": "python", "version": "*", "files": [{"content": "eA==", "encoding": "base64"}]},
         "files must include at least one utf8 encoded file"),
        ({**PYTHON, "run_timeout": "5"}, "If specified, run_timeout must be a number"),
        ({**PYTHON, "run_timeout": 3_600_000}, "run_timeout cannot exceed the configured limit of 5000"),
        ({**PYTHON, "run_memory_limit": -5}, "run_memory_limit must be non-negative"),
    ],
)
def test_bad_input_is_pistons_400(alice, body, message):
    response = execute(f"/piston/{alice.key}/api/v2/execute", body)
    assert (response.status_code, response.json()) == (400, {"message": message})
    assert_nothing_created()


def test_a_body_that_is_not_json_is_pistons_415(alice):
    response = execute(f"/piston/{alice.key}/api/v2/execute", "language=python", "application/x-www-form-urlencoded")
    assert (response.status_code, response.json()) == (415, {"message": "requests must be of type application/json"})


def test_the_platforms_own_refusals_keep_pistons_shape(alice):
    response = execute(f"/piston/{alice.key}/api/v2/execute", {**PYTHON, "files": [{"content": "   "}]})
    assert response.status_code == 400 and response.json()["message"].startswith("files: ")
    assert_nothing_created()


def test_runtimes_use_pistons_names_and_the_versions_read_in_the_images(alice):
    runtimes = APIClient().get(f"/piston/{alice.key}/api/v2/runtimes").json()
    by_name = {runtime["language"]: runtime for runtime in runtimes}
    assert by_name["python"] == {"language": "python", "version": "3.11.2", "aliases": ["python3", "py"]}
    assert by_name["c++"]["aliases"] == ["cpp", "g++"] and by_name["c++"]["runtime"] == "gcc"
    # A version not read yet is any version.
    assert by_name["lua"]["version"] == "*"
    unknown = execute(f"/piston/{alice.key}/api/v2/execute", {**PYTHON, "version": "3.10"})
    assert unknown.json() == {"message": "python-3.10 runtime is unknown"}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("*", True), ("3", True), ("3.11", True), ("3.11.2", True), ("3.11.x", True), ("3.10", False),
        ("^3.10", True), ("^3.12", False), ("~3.11.0", True), ("~3.10", False), (">=3.8 <4", True),
        (">3.11.2", False), ("<=3.11", True), ("2.7 || >=3", True), ("banana", False),
    ],
)
def test_versions_match_as_npm_semver_ranges(spec, expected):
    assert satisfies("3.11.2", spec) is expected


def test_a_wrong_key_in_the_path_is_a_401_that_does_not_repeat_it(alice):
    response = APIClient().get("/piston/rce_000000000000_wrong/api/v2/runtimes")
    assert response.status_code == 401
    assert "wrong" not in response.json()["message"]


def test_calls_without_a_key_are_refused_unless_the_operator_chose_a_tenant(alice, settings):
    response = APIClient().get("/piston/api/v2/runtimes")
    assert response.status_code == 401 and set(response.json()) == {"message"}
    settings.PISTON_TENANT = "alice"
    assert APIClient().get("/piston/api/v2/runtimes").status_code == 200
    Tenant.objects.filter(name="alice").update(is_active=False)
    assert APIClient().get("/piston/api/v2/runtimes").status_code == 403


def test_the_system_check_names_a_piston_tenant_that_does_not_exist(settings):
    settings.PISTON_TENANT = "nobody"
    with pytest.raises(SystemCheckError, match="executions.W002"):
        call_command("check", fail_level="WARNING")
    Tenant.objects.create(name="nobody")
    call_command("check", fail_level="WARNING")


def test_an_execute_that_cannot_be_waited_for_is_cancelled_and_refused(alice, monkeypatch):
    from executions.api import waiting

    # No worker here, and no wait slot: the run cannot be answered, so it must not run later.
    monkeypatch.setattr(waiting, "wait_for", lambda execution, seconds: None)
    response = execute(f"/piston/{alice.key}/api/v2/execute", PYTHON)
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert set(response.json()) == {"message"}
    assert Execution.objects.get().status == "cancelled"


def test_a_quota_or_rate_refusal_is_pistons_429_with_retry_after(alice, bob):
    Tenant.objects.filter(pk=alice.tenant.pk).update(max_queued=1)
    alice.submit("print(1)")
    refused = execute(f"/piston/{alice.key}/api/v2/execute", PYTHON)
    assert refused.status_code == 429 and set(refused.json()) == {"message"}
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Execution.objects.count() == 1
    Tenant.objects.filter(pk=bob.tenant.pk).update(rate_per_minute=2)
    for _ in range(2):
        assert APIClient().get(f"/piston/{bob.key}/api/v2/runtimes").status_code == 200
    limited = APIClient().get(f"/piston/{bob.key}/api/v2/runtimes")
    assert limited.status_code == 429 and set(limited.json()) == {"message"}
    assert 1 <= int(limited["Retry-After"]) <= 60


@pytest.mark.usefixtures("worker_process")
def test_a_compile_error_is_pistons_compile_stage_and_its_run(alice):
    response = execute(
        f"/piston/{alice.key}/api/v2/execute",
        {"language": "c", "version": "*", "files": [{"name": "main.c", "content": "int main(void) { return boom; }"}]},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["language"], set(body)) == ("c", {"language", "version", "compile", "run"})
    compiled = body["compile"]
    assert (compiled["stdout"], compiled["code"], compiled["signal"], compiled["status"]) == ("", 1, None, "RE")
    assert "boom" in compiled["stderr"] and compiled["output"] == compiled["stderr"]
    # As Piston: the run that never happened is the compile stage again.
    assert body["run"] == compiled


JAVA_CLASSES = [
    ("public class HelloWorld {", "HelloWorld"),
    ("public final class Solution {", "Solution"),
    ("class Program {", "Program"),
]


@pytest.mark.usefixtures("worker_process")
def test_a_java_class_of_any_name_runs_as_on_piston(alice):
    for declaration, name in JAVA_CLASSES:
        source = f"{declaration}\n  public static void main(String[] args) {{ System.out.println(\"{name} \" + args[0]); }}\n}}\n"
        body = {"language": "java", "version": "*", "files": [{"name": "Main.java", "content": source}], "args": ["ran"]}
        response = execute(f"/piston/{alice.key}/api/v2/execute", body)
        assert response.status_code == 200, response.content
        result = response.json()
        assert (result["run"]["stdout"], result["run"]["code"]) == (f"{name} ran\n", 0), result


def test_a_java_class_name_is_only_ever_an_identifier(alice):
    from executions.compat.piston import java_program

    assert java_program("public class Main { }", ()) == ("public class Main { }", ())
    # Not an identifier this reads as a file name: left as it is (and javac says what is wrong).
    for source in ("public class Hello$World { }", "public class ../../x { }", "// the class here\n"):
        assert java_program(source, ()) == (source, ())
    launcher, (program,) = java_program("class A {}\npublic class B { }", ())
    assert program == {"name": "B.java", "content": "class A {}\npublic class B { }", "encoding": "utf-8"}
    assert "B.main(args)" in launcher
