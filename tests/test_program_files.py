"""What a program's files and arguments may be: checked at admission, refused with a clear error,
nothing created."""

from __future__ import annotations

import pytest

from executions.sandbox import languages
from tests.conftest import assert_nothing_created
from tests.helpers import assert_error


def post(persona, body: dict):
    return persona.client.post("/api/v1/executions", body, format="json")


@pytest.mark.parametrize(
    "name",
    ["../escape.py", "/etc/passwd", "a/../../b.py", ".hidden", "dir/.git/config", "", "a//b.py", "stdin", "a\\b.py", "a/b/c/d/e.py"],
)
def test_it_refuses_an_unsafe_file_name(alice, name):
    response = post(alice, {"language": "python", "code": "print(1)", "files": [{"name": name, "content": "x"}]})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"invalid_file_name", "blank"}
    assert_nothing_created()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", ".hidden.py", "stdin"])
def test_it_refuses_an_unsafe_name_for_the_entry_point_too(alice, name):
    # Without `code`, the entry point is one of the files: its name is checked before it is let go.
    entry_first = {"language": "python", "files": [{"name": name, "content": "print(1)"}]}
    body = assert_error(post(alice, entry_first), 400, "invalid_file_name")
    assert body["error"]["message"].startswith("files: ")
    entry_later = {"language": "python", "files": [{"name": "lib.py", "content": ""}, {"name": name, "content": "x"}]}
    assert_error(post(alice, entry_later), 400, "invalid_file_name")
    batch = alice.client.post("/api/v1/executions/batch", {"executions": [entry_first]}, format="json")
    assert_error(batch, 400, "invalid_file_name")
    assert_nothing_created()


def test_it_refuses_two_files_of_one_name(alice):
    body = {"language": "python", "code": "print(1)", "files": [{"name": "a.py", "content": ""}, {"name": "a.py", "content": ""}]}
    assert_error(post(alice, body), 400, "duplicate_file")
    clash = {"language": "python", "code": "print(1)", "files": [{"name": "main.py", "content": ""}]}
    assert_error(post(alice, clash), 400, "duplicate_file")
    assert_nothing_created()


def test_a_java_entry_point_is_named_after_its_public_class(alice):
    # So Main.java may be another file of the program, and Solution.java may not.
    entry = "public class Solution { public static void main(String[] a) {} }"
    other = {"name": "Main.java", "content": "class Main {}"}
    assert post(alice, {"language": "java", "code": entry, "files": [other]}).status_code == 202
    same = {"language": "java", "code": entry, "files": [{"name": "Solution.java", "content": ""}]}
    assert_error(post(alice, same), 400, "duplicate_file")


@pytest.mark.parametrize(
    "code, entry",
    [
        ("public class Solution { }", "Solution.java"),
        ("import java.util.*;\n\npublic final class Solver_2 {\n}\n", "Solver_2.java"),
        ("public record Point(int x) { }", "Point.java"),
        # No public class, or only a nested one (indented): Main, as javac and the JVM are told.
        ("class Solution { }", "Main.java"),
        ("class Outer {\n    public class Inner { }\n}\n", "Main.java"),
        ("// public class Comment\nclass Main { }", "Main.java"),
    ],
)
def test_the_java_entry_points_name_comes_from_its_public_class(code, entry):
    java = languages.CATALOG["java"]
    assert java.entry(code) == entry
    assert java.environment_for(code) == {"ENTRY": entry.removesuffix(".java")}


def test_other_languages_keep_their_source_name():
    for language in languages.CATALOG.values():
        if language.name != "java":
            assert language.entry("public class Solution { }") == language.source
            assert language.environment_for("public class X { }") == language.environment


def test_it_refuses_a_file_that_is_also_a_directory(alice):
    body = {"language": "python", "code": "print(1)", "files": [{"name": "a", "content": ""}, {"name": "a/b.py", "content": ""}]}
    assert_error(post(alice, body), 400, "duplicate_file")


def test_it_bounds_the_number_and_size_of_the_files(alice, settings):
    many = [{"name": f"f{i}.py", "content": ""} for i in range(languages.MAX_FILES + 1)]
    assert post(alice, {"language": "python", "code": "print(1)", "files": many}).status_code == 400
    settings.SANDBOX_MAX_CODE_BYTES = 1000
    big = [{"name": "big.txt", "content": "x" * 600}, {"name": "big2.txt", "content": "x" * 600}]
    assert_error(post(alice, {"language": "python", "code": "print(1)", "files": big}), 413, "payload_too_large")
    assert_nothing_created()


def test_it_refuses_content_that_is_not_base64(alice):
    body = {"language": "python", "code": "print(1)", "files": [{"name": "a.bin", "content": "not base64!", "encoding": "base64"}]}
    assert_error(post(alice, body), 400, "invalid_encoding")


def test_it_refuses_bad_arguments(alice):
    assert_error(post(alice, {"language": "python", "code": "print(1)", "args": ["a\x00b"]}), 400, "nul_character")
    assert post(alice, {"language": "python", "code": "print(1)", "args": "a b"}).status_code == 400
    assert post(alice, {"language": "python", "code": "print(1)", "args": [1]}).status_code == 400
    too_many = ["x"] * (languages.MAX_ARGS + 1)
    assert post(alice, {"language": "python", "code": "print(1)", "args": too_many}).status_code == 400
    assert_nothing_created()


def test_the_entry_point_is_the_file_named_like_the_languages_source_else_the_first(alice):
    named = post(alice, {"language": "python", "files": [{"name": "lib.py", "content": "X = 1"}, {"name": "main.py", "content": "import lib"}]})
    assert named.status_code == 202
    first = post(alice, {"language": "python", "files": [{"name": "app.py", "content": "print(2)"}]})
    assert first.status_code == 202
    from executions.models import Execution

    assert Execution.objects.get(id=named.json()["task_id"]).code == "import lib"
    assert Execution.objects.get(id=first.json()["task_id"]).code == "print(2)"


def test_a_program_needs_code_or_files(alice):
    assert post(alice, {"language": "python"}).status_code == 400
    assert post(alice, {"language": "python", "files": []}).status_code == 400
    assert_nothing_created()
