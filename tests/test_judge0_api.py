"""Judge0 CE's API under /judge0/: its shapes, statuses and errors, over the platform's admission."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from executions.models import Execution, Tenant
from tests.conftest import assert_nothing_created, run_worker

pytestmark = pytest.mark.usefixtures("transactional_db")


def judge0_client(persona) -> APIClient:
    """A client that authenticates as Judge0's do: X-Auth-Token."""
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=persona.key)
    return client


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def submit(persona, body: dict, query: str = "") -> dict:
    response = judge0_client(persona).post(f"/judge0/submissions{query}", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_about_names_a_version_the_sdk_knows(alice):
    response = judge0_client(alice).get("/judge0/about")
    assert response.status_code == 200
    assert response.json()["version"] == "1.13.1"


def test_it_lists_judge0_ids_for_the_catalog(alice):
    body = judge0_client(alice).get("/judge0/languages").json()
    ids = {language["id"] for language in body}
    assert {46, 50, 52, 54, 60, 62, 63, 64, 68, 71, 72, 73, 74} <= ids
    assert set(body[0]) == {"id", "name"}
    python = judge0_client(alice).get("/judge0/languages/71").json()
    assert python["source_file"] == "main.py" and python["is_archived"] is False
    assert python["name"].startswith("Python")
    assert judge0_client(alice).get("/judge0/languages/999").json() == {"status": 404, "error": "Not Found"}


def test_it_lists_judge0s_fourteen_statuses(alice):
    body = judge0_client(alice).get("/judge0/statuses").json()
    assert [status["id"] for status in body] == list(range(1, 15))
    assert body[2] == {"id": 3, "description": "Accepted"}


def test_config_info_has_every_key_the_sdk_reads(alice):
    import judge0

    body = judge0_client(alice).get("/judge0/config_info").json()
    config = judge0.base_types.Config(**body)
    assert config.allow_enable_network is False and config.max_submission_batch_size == 20


def test_callbacks_are_enabled_for_a_tenant_with_a_webhook_secret(alice):
    assert judge0_client(alice).get("/judge0/config_info").json()["enable_callbacks"] is False
    body = {"source_code": "print(1)", "language_id": 71, "callback_url": "https://example.com/hook"}
    refused = judge0_client(alice).post("/judge0/submissions", body, format="json")
    assert refused.status_code == 422 and list(refused.json()) == ["callback_url"]
    alice.tenant.rotate_webhook_secret()
    assert judge0_client(alice).get("/judge0/config_info").json()["enable_callbacks"] is True


@pytest.mark.parametrize(
    "body, errors",
    [
        # Judge0 1.14.0's ids are not 1.13.1's, which this platform says it is.
        ({"source_code": b64("print(1)"), "language_id": 92}, {"language_id": ["language with id 92 doesn't exist"]}),
        ({"source_code": b64("print(1)"), "language_id": 71, "stdin": base64.b64encode(b"\xff\xfe").decode()},
         {"stdin": ["is not valid base64 of UTF-8 text"]}),
    ],
)
def test_what_the_readme_says_is_refused_is_a_422(alice, body, errors):
    response = judge0_client(alice).post("/judge0/submissions?base64_encoded=true", body, format="json")
    assert (response.status_code, response.json()) == (422, errors)
    assert_nothing_created()


def zipped(*names: str) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in names:
            zipped.writestr(name, "x = 1\n")
    return base64.b64encode(archive.getvalue()).decode()


# zipfile warns when it writes a name twice: that is the point here.
@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("names", [(".env",), ("lib/.hidden.py",), ("main.py",), ("a.py", "a.py")])
def test_a_hidden_or_twice_named_additional_file_is_a_422(alice, names):
    body = {"source_code": "print(1)", "language_id": 71, "additional_files": zipped(*names)}
    response = judge0_client(alice).post("/judge0/submissions", body, format="json")
    assert response.status_code == 422 and list(response.json()) == ["additional_files"], response.json()
    assert_nothing_created()


def test_a_submission_is_an_execution_of_its_tenant(alice):
    token = submit(alice, {"source_code": "print(input()[::-1])", "language_id": 71, "stdin": "olleh"})["token"]
    execution = Execution.objects.get(id=token)
    assert (execution.tenant, execution.language, execution.stdin) == (alice.tenant, "python", "olleh")
    queued = judge0_client(alice).get(f"/judge0/submissions/{token}").json()
    assert queued["status"] == {"id": 1, "description": "In Queue"}
    run_worker()
    body = judge0_client(alice).get(f"/judge0/submissions/{token}").json()
    assert set(body) == {"token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"}
    assert (body["stdout"], body["stderr"], body["status"]["id"]) == ("hello\n", None, 3)
    assert float(body["time"]) >= 0
    # The native API shows the same execution, and so does the admin's list.
    assert alice.get(token)["stdout"] == "hello\n"
    User.objects.create_superuser("operator", "operator@example.com", "correct horse battery")
    operator = Client()
    assert operator.login(username="operator", password="correct horse battery")
    listed = operator.get("/admin/executions/execution/")
    assert listed.status_code == 200 and token in listed.content.decode()


def test_base64_goes_both_ways_and_fields_choose_the_answer(alice):
    body = {"source_code": b64("import sys\nprint(sys.argv[1:])\nsys.exit(4)"), "language_id": 71,
            "command_line_arguments": "a 'b c'"}
    token = submit(alice, body, "?base64_encoded=true")["token"]
    run_worker()
    answer = judge0_client(alice).get(f"/judge0/submissions/{token}?base64_encoded=true&fields=stdout,exit_code,status_id,message").json()
    assert answer == {
        # As Judge0's: the message is encoded too.
        "stdout": b64("['a', 'b c']\n"), "exit_code": 4, "status_id": 11, "message": b64("Exited with error status 4")
    }
    everything = judge0_client(alice).get(f"/judge0/submissions/{token}?fields=*").json()
    assert everything["language"]["id"] == 71 and everything["command_line_arguments"] == "a 'b c'"
    assert everything["created_at"].endswith("Z")


def test_command_line_arguments_lose_judge0s_shell_characters_and_expand_no_globs(alice):
    arguments = "a;b $HOME `id` c|d e&f <in >out 'x y' *.py"
    token = submit(alice, {"source_code": "print(1)", "language_id": 71, "command_line_arguments": arguments})["token"]
    # As Judge0: $&;<>|` deleted, then split; no shell here, so no glob is expanded.
    assert Execution.objects.get(id=token).args == ["ab", "HOME", "id", "cd", "ef", "in", "out", "x y", "*.py"]


def test_additional_files_are_the_programs_files(alice):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("helper.py", "NAME = 'from the zip'\n")
    token = submit(alice, {"source_code": "import helper\nprint(helper.NAME)", "language_id": 71,
                           "additional_files": base64.b64encode(archive.getvalue()).decode()})["token"]
    run_worker()
    assert judge0_client(alice).get(f"/judge0/submissions/{token}").json()["stdout"] == "from the zip\n"


def test_a_compile_error_a_time_limit_and_a_signal_have_their_statuses(alice):
    broken = submit(alice, {"source_code": "int main(void) { return boom; }", "language_id": 50})["token"]
    slow = submit(alice, {"source_code": "while True: pass", "language_id": 71, "cpu_time_limit": 0.5})["token"]
    crash = submit(alice, {"source_code": "int main(void) { volatile int *p = 0; return *p; }", "language_id": 48})["token"]
    run_worker()
    compiled = judge0_client(alice).get(f"/judge0/submissions/{broken}").json()
    assert compiled["status"]["id"] == 6 and "boom" in compiled["compile_output"]
    assert judge0_client(alice).get(f"/judge0/submissions/{slow}").json()["status"]["id"] == 5
    crashed = judge0_client(alice).get(f"/judge0/submissions/{crash}?fields=status,exit_signal,message").json()
    assert crashed == {
        "status": {"id": 7, "description": "Runtime Error (SIGSEGV)"}, "exit_signal": 11, "message": "Exited with signal 11"
    }


@pytest.mark.parametrize(
    "body, errors",
    [
        ({"source_code": "print(1)"}, {"language_id": ["can't be blank"]}),
        ({"language_id": 71}, {"source_code": ["can't be blank"]}),
        ({"source_code": "x", "language_id": 150000}, {"language_id": ["language with id 150000 doesn't exist"]}),
        ({"source_code": "x", "language_id": 71, "enable_network": True},
         {"enable_network": ["enabling network is not allowed"]}),
        ({"source_code": "x", "language_id": 71, "compiler_options": "-O3"},
         {"compiler_options": ["setting compiler options is not allowed"]}),
    ],
)
def test_bad_input_is_judge0s_422(alice, body, errors):
    response = judge0_client(alice).post("/judge0/submissions", body, format="json")
    assert response.status_code == 422
    assert response.json() == errors
    assert_nothing_created()


@pytest.mark.parametrize(
    "limits, fields",
    [
        ({"wall_time_limit": 500}, ["wall_time_limit"]),
        ({"cpu_time_limit": 500}, ["cpu_time_limit"]),
        ({"cpu_time_limit": 500, "wall_time_limit": 600}, ["cpu_time_limit"]),
        ({"cpu_time_limit": 700, "wall_time_limit": 600}, ["wall_time_limit"]),
        ({"cpu_time_limit": 500, "wall_time_limit": 500}, ["cpu_time_limit", "wall_time_limit"]),
        ({"memory_limit": 10**9}, ["memory_limit"]),
    ],
)
def test_a_limit_out_of_bounds_is_a_422_naming_judge0s_field(alice, limits, fields):
    response = judge0_client(alice).post("/judge0/submissions", {"source_code": "x", "language_id": 71, **limits}, format="json")
    assert response.status_code == 422 and sorted(response.json()) == fields
    assert_nothing_created()
    batch = judge0_client(alice).post(
        "/judge0/submissions/batch", {"submissions": [{"source_code": "x", "language_id": 71, **limits}]}, format="json"
    )
    assert batch.status_code == 422 and sorted(batch.json()[0]) == fields


def test_an_expected_output_is_judged_as_judge0_judges_it(alice):
    body = {"source_code": "import sys; print(sys.stdin.read().upper())", "language_id": 71, "stdin": "ab\n",
            "command_line_arguments": "x y"}
    right = submit(alice, {**body, "expected_output": "AB  \n\n"})["token"]
    wrong = submit(alice, {**body, "expected_output": "ab"})["token"]
    run_worker()
    fields = "status,stdout,stdin,expected_output,command_line_arguments,time,wall_time,memory"
    accepted = judge0_client(alice).get(f"/judge0/submissions/{right}?fields={fields}").json()
    assert accepted["status"] == {"id": 3, "description": "Accepted"}
    assert (accepted["stdout"], accepted["stdin"], accepted["expected_output"]) == ("AB\n\n", "ab\n", "AB  \n\n")
    assert accepted["command_line_arguments"] == "x y"
    assert float(accepted["time"]) >= 0 and float(accepted["wall_time"]) > 0 and accepted["memory"] > 0
    rejected = judge0_client(alice).get(f"/judge0/submissions/{wrong}?fields=status,stdout").json()
    assert rejected == {"status": {"id": 4, "description": "Wrong Answer"}, "stdout": "AB\n\n"}
    # Each is the platform's one-test judged execution.
    assert Execution.objects.get(id=wrong).verdict == "wrong_answer"


def test_unknown_fields_are_a_400(alice):
    response = judge0_client(alice).get("/judge0/submissions/6f1c0000-0000-4000-8000-000000000000?fields=stdout,nope")
    assert (response.status_code, response.json()) == (400, {"error": "invalid fields: [nope]"})


def test_another_tenants_token_is_a_404(alice, bob):
    token = submit(alice, {"source_code": "print(1)", "language_id": 71})["token"]
    for path in (f"/judge0/submissions/{token}", "/judge0/submissions/not-a-token"):
        response = judge0_client(bob).get(path)
        assert (response.status_code, response.json()) == (404, {"status": 404, "error": "Not Found"})
    assert judge0_client(bob).get(f"/judge0/submissions/batch?tokens={token}").json() == {"submissions": [None]}


def test_a_missing_or_wrong_key_is_a_401(alice):
    assert APIClient().get("/judge0/about").status_code == 401
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN="rce_wrong")
    response = client.post("/judge0/submissions", {"source_code": "x", "language_id": 71}, format="json")
    assert response.status_code == 401 and set(response.json()) == {"error"}
    # The platform's own headers work too.
    assert alice.client.get("/judge0/statuses").status_code == 200


def test_a_batch_takes_the_valid_items_and_reports_the_others_in_place(alice):
    response = judge0_client(alice).post(
        "/judge0/submissions/batch",
        {"submissions": [{"source_code": "print(1)", "language_id": 71}, {"source_code": "x", "language_id": 9999},
                         {"source_code": "echo 2", "language_id": 46}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    first, second, third = response.json()
    assert second == {"language_id": ["language with id 9999 doesn't exist"]}
    assert Execution.objects.count() == 2
    run_worker()
    tokens = f"{first['token']},{third['token']},6f1c0000-0000-4000-8000-000000000000"
    answer = judge0_client(alice).get(f"/judge0/submissions/batch?tokens={tokens}&fields=stdout").json()
    assert answer == {"submissions": [{"stdout": "1\n"}, {"stdout": "2\n"}, None]}


def test_a_batch_with_no_valid_item_is_a_422_and_creates_nothing(alice):
    response = judge0_client(alice).post(
        "/judge0/submissions/batch", {"submissions": [{"source_code": "x", "language_id": 9999}]}, format="json"
    )
    assert response.status_code == 422
    assert_nothing_created()
    empty = judge0_client(alice).post("/judge0/submissions/batch", {"submissions": []}, format="json")
    assert (empty.status_code, empty.json()) == (400, {"error": "there should be at least one submission in a batch"})


@pytest.mark.usefixtures("worker_process")
def test_wait_true_answers_with_the_finished_submission(alice):
    body = submit(alice, {"source_code": b64("print('waited')"), "language_id": 71}, "?wait=true&base64_encoded=true")
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert base64.b64decode(body["stdout"]) == b"waited\n"


def test_a_quota_or_rate_refusal_is_judge0s_429_with_retry_after(alice, bob):
    Tenant.objects.filter(pk=alice.tenant.pk).update(max_queued=1)
    submit(alice, {"source_code": "print(1)", "language_id": 71})
    refused = judge0_client(alice).post("/judge0/submissions", {"source_code": "print(2)", "language_id": 71}, format="json")
    assert refused.status_code == 429 and set(refused.json()) == {"error"}
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Execution.objects.count() == 1
    Tenant.objects.filter(pk=bob.tenant.pk).update(rate_per_minute=2)
    for _ in range(2):
        assert judge0_client(bob).get("/judge0/statuses").status_code == 200
    limited = judge0_client(bob).get("/judge0/statuses")
    assert limited.status_code == 429 and set(limited.json()) == {"error"}
    assert 1 <= int(limited["Retry-After"]) <= 60
