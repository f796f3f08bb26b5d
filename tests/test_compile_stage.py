"""A compiled language through the API and a real worker: the compile stage, its own limits and
`compilation_error`; per-language limits on the execution; multi-file programs and arguments."""

from __future__ import annotations

import base64

import pytest

from executions.models import Execution
from tests.conftest import run_worker

pytestmark = pytest.mark.usefixtures("transactional_db")

C_ARGS = """#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("[%s]\\n", argv[i]);
    return 0;
}
"""


def run_json(persona, body: dict) -> dict:
    response = persona.client.post("/api/v1/executions", body, format="json")
    assert response.status_code == 202, response.content
    run_worker()
    return persona.get(response.json()["task_id"])


def test_a_compiled_program_reports_compile_and_run_times_apart(alice):
    body = run_json(alice, {"language": "c", "code": C_ARGS, "args": ["a b", "$HOME", "; rm -rf /", "*"]})
    assert (body["status"], body["exit_code"]) == ("completed", 0), body
    # Each argument arrives whole and literal: no shell ever parsed it.
    assert body["stdout"] == "[a b]\n[$HOME]\n[; rm -rf /]\n[*]\n"
    assert body["compile_duration_ms"] > 0 and body["duration_ms"] >= 0
    assert body["compile_output"] == ""


def test_a_compile_error_is_its_own_status_with_the_compilers_output(alice):
    body = run_json(alice, {"language": "cpp", "code": "int main() { return missing_name; }\n"})
    assert body["status"] == "compilation_error", body
    assert "missing_name" in body["compile_output"]
    assert (body["stdout"], body["stderr"]) == ("", "")
    assert body["compile_duration_ms"] > 0
    assert Execution.objects.get(id=body["task_id"]).is_terminal


def test_a_compiler_that_reads_forever_is_stopped_by_the_compile_limits(alice):
    body = run_json(alice, {"language": "c", "code": '#include "/proc/self/fd/0"\n#include "/dev/zero"\n'})
    assert body["status"] == "compilation_error", body
    assert body["compile_duration_ms"] <= 20_300


def test_the_execution_shows_its_languages_limits(alice):
    java = run_json(alice, {"language": "java", "code": 'class Main { public static void main(String[] a) { System.out.println("hi"); } }'})
    assert (java["status"], java["stdout"]) == ("completed", "hi\n"), java
    assert (java["timeout_seconds"], java["memory_mb"]) == (5.0, 256)
    python = alice.get(alice.submit("print(1)"))
    assert python["memory_mb"] == 64


def test_a_tenants_maximum_caps_a_languages_default(alice):
    alice.tenant.max_memory_mb = 128
    alice.tenant.save()
    response = alice.client.post("/api/v1/executions", {"language": "java", "code": "class Main {}"}, format="json")
    assert Execution.objects.get(id=response.json()["task_id"]).memory_mb == 128
    too_much = alice.client.post(
        "/api/v1/executions", {"language": "java", "code": "class Main {}", "memory_mb": 256}, format="json"
    )
    assert too_much.status_code == 400 and too_much.json()["error"]["code"] == "invalid_limit"


def test_a_language_may_be_named_by_an_alias(alice):
    body = run_json(alice, {"language": "js", "code": "console.log(6 * 7)"})
    assert (body["language"], body["stdout"]) == ("javascript", "42\n")


def test_a_program_of_several_files_imports_its_own_modules(alice):
    body = run_json(
        alice,
        {
            "language": "python",
            "files": [
                {"name": "helpers/greet.py", "content": "def greet(name):\n    return f'hello, {name}'\n"},
                {"name": "helpers/__init__.py", "content": ""},
                {"name": "main.py", "content": "import sys\nfrom helpers.greet import greet\nprint(greet(sys.argv[1]))\n"},
            ],
            "args": ["files"],
        },
    )
    assert (body["status"], body["stdout"]) == ("completed", "hello, files\n"), body
    execution = Execution.objects.get(id=body["task_id"])
    assert execution.code.startswith("import sys")
    assert [file["name"] for file in execution.files] == ["helpers/greet.py", "helpers/__init__.py"]


def test_a_compiled_program_of_several_files(alice):
    body = run_json(
        alice,
        {
            "language": "java",
            "files": [
                {"name": "Main.java", "content": "public class Main { public static void main(String[] a) { System.out.println(Util.twice(21)); } }"},
                {"name": "Util.java", "content": "class Util { static int twice(int n) { return 2 * n; } }"},
            ],
        },
    )
    assert (body["status"], body["stdout"]) == ("completed", "42\n"), body


def test_a_java_program_runs_the_public_class_its_entry_point_declares(alice):
    solution = "public class Solution { public static void main(String[] a) { System.out.println(%s.twice(21)); } }"
    helper = "class %s { static int twice(int n) { return 2 * n; } }"
    files = [{"name": "Solution.java", "content": solution % "Helper"}, {"name": "Helper.java", "content": helper % "Helper"}]
    body = run_json(alice, {"language": "java", "files": files})
    assert (body["status"], body["stdout"]) == ("completed", "42\n"), (body["stderr"], body["compile_output"])
    # Sent as `code`, without a name: the same rule, so another file of the program may be Main.java.
    files = [{"name": "Main.java", "content": helper % "Main"}]
    body = run_json(alice, {"language": "java", "code": solution % "Main", "files": files})
    assert (body["status"], body["stdout"]) == ("completed", "42\n"), (body["stderr"], body["compile_output"])


def test_a_binary_file_arrives_byte_for_byte(alice):
    data = bytes(range(256))
    body = run_json(
        alice,
        {
            "language": "python",
            "code": "import hashlib\nprint(hashlib.sha256(open('/code/data.bin', 'rb').read()).hexdigest())\n",
            "files": [{"name": "data.bin", "content": base64.b64encode(data).decode(), "encoding": "base64"}],
        },
    )
    import hashlib

    assert body["stdout"] == hashlib.sha256(data).hexdigest() + "\n", body


def test_the_files_cannot_be_written_by_the_program(alice):
    body = run_json(
        alice,
        {"language": "bash", "code": "echo x > /code/other.txt; echo x > /code/main.sh; ls /code", "files": [{"name": "other.txt", "content": "o"}]},
    )
    assert "Read-only file system" in body["stderr"] or "Permission denied" in body["stderr"], body
    assert sorted(body["stdout"].split()) == ["main.sh", "other.txt", "stdin"]
