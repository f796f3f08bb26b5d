from __future__ import annotations

import json
import subprocess
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from executions.models import ApiKey, Execution, Tenant
from tests.conftest import ROOT, manage, subprocess_env


def test_create_tenant_prints_a_working_key_last(db):
    out, err = StringIO(), StringIO()
    call_command("create_tenant", "acme", stdout=out, stderr=err)
    key = out.getvalue().strip().splitlines()[-1]
    found = ApiKey.find(key)
    assert found is not None and found.tenant.name == "acme"


def test_create_tenant_refuses_a_duplicate_and_a_bad_name(db):
    call_command("create_tenant", "acme", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="exists"):
        call_command("create_tenant", "acme", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="invalid"):
        call_command("create_tenant", "no spaces!", stdout=StringIO(), stderr=StringIO())
    assert Tenant.objects.count() == 1


def test_ensure_default_tenant_creates_once_and_shows_the_same_key(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = StringIO(), StringIO()
    call_command("ensure_default_tenant", stdout=first)
    call_command("ensure_default_tenant", stdout=second)
    key = (tmp_path / "default_api_key").read_text().strip()
    assert key in first.getvalue() and key in second.getvalue()
    assert (tmp_path / "default_api_key").stat().st_mode & 0o077 == 0
    assert Tenant.objects.filter(name="default").count() == 1
    assert ApiKey.objects.count() == 1


def execute(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        manage("execute", *args), env=subprocess_env(), cwd=ROOT, capture_output=True, input=stdin, timeout=60
    )


@pytest.fixture
def default_tenant(transactional_db):
    return Tenant.objects.create(name="default")


def test_execute_prints_streams_and_exits_with_the_programs_code(default_tenant, worker_process, tmp_path):
    script = tmp_path / "demo.py"
    script.write_text("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    done = execute(str(script))
    assert done.stdout == b"to stdout\n"
    assert done.stderr == b"to stderr\n"
    assert done.returncode == 3


def test_execute_infers_bash_and_passes_stdin(default_tenant, worker_process, tmp_path):
    script = tmp_path / "demo.sh"
    script.write_text("read name\necho \"hello $name\"\n")
    stdin = tmp_path / "input.txt"
    stdin.write_text("world\n")
    done = execute(str(script), "--stdin", str(stdin))
    assert (done.returncode, done.stdout) == (0, b"hello world\n")


def test_execute_reports_a_timeout(default_tenant, worker_process, tmp_path):
    script = tmp_path / "loop.txt"
    script.write_text("while True: pass\n")
    done = execute(str(script), "--language", "python")
    assert done.returncode == 124
    assert b"[timed_out]" in done.stderr


def test_execute_compiles_a_program_it_knows_by_its_extension_and_passes_its_arguments(
    default_tenant, worker_process, tmp_path
):
    program = tmp_path / "args.go"
    program.write_text('package main\nimport ("fmt"; "os")\nfunc main() { fmt.Println(os.Args[1:]); os.Exit(4) }\n')
    done = execute(str(program), "--", "a b", "--json")
    assert (done.returncode, done.stdout) == (4, b"[a b --json]\n")
    broken = tmp_path / "broken.rs"
    broken.write_text("fn main() { undefined_name(); }\n")
    done = execute(str(broken))
    assert done.returncode == 1
    assert b"undefined_name" in done.stderr


def test_execute_needs_a_language_it_can_tell(db, tmp_path):
    script = tmp_path / "script.cob"
    script.write_text("puts 1")
    with pytest.raises(CommandError, match="language"):
        call_command("execute", str(script))


def test_execute_reads_the_script_from_standard_input(default_tenant, worker_process):
    done = execute("-", stdin=b"print('from stdin')\n")
    assert (done.returncode, done.stdout) == (0, b"from stdin\n")


def test_execute_reads_a_bash_script_from_standard_input_with_its_stdin_file(default_tenant, worker_process, tmp_path):
    stdin = tmp_path / "input.txt"
    stdin.write_text("world\n")
    done = execute("-", "--language", "bash", "--stdin", str(stdin), stdin=b'read name\necho "hi $name"\n')
    assert (done.returncode, done.stdout) == (0, b"hi world\n")


def test_execute_prints_the_whole_execution_as_json(default_tenant, worker_process, tmp_path):
    script = tmp_path / "demo.py"
    script.write_text("print('x')\nraise SystemExit(2)\n")
    done = execute(str(script), "--json")
    body = json.loads(done.stdout)
    assert (body["status"], body["stdout"], body["exit_code"]) == ("failed", "x\n", 2)
    assert body["task_id"] and body["timeout_seconds"] == settings.SANDBOX_TIMEOUT_SECONDS
    assert done.returncode == 2


def test_execute_with_a_lower_timeout(default_tenant, worker_process):
    done = execute("-", "--timeout", "1", "--json", stdin=b"while True: pass\n")
    body = json.loads(done.stdout)
    assert (body["status"], body["timeout_seconds"]) == ("timed_out", 1.0)
    assert done.returncode == 124


def test_execute_refuses_a_timeout_above_the_maximum(db, tmp_path):
    script = tmp_path / "demo.py"
    script.write_text("print(1)")
    Tenant.objects.create(name="default")
    with pytest.raises(CommandError, match="--timeout must be between"):
        call_command("execute", str(script), "--timeout", "3600")
    assert Execution.objects.count() == 0


def test_execute_takes_any_spelling_of_a_language(db, tmp_path):
    Tenant.objects.create(name="default")
    script = tmp_path / "demo.txt"
    script.write_text("console.log(1)")
    for spelling in ("js", "JavaScript", "NODE"):
        call_command("execute", str(script), "--language", spelling, "--no-wait", stdout=StringIO())
    assert list(Execution.objects.values_list("language", flat=True)) == ["javascript"] * 3
    with pytest.raises(CommandError, match="invalid choice: 'cobol'"):
        call_command("execute", str(script), "--language", "cobol", "--no-wait")


def test_execute_without_waiting_prints_the_task_id(db, tmp_path):
    Tenant.objects.create(name="default")
    script = tmp_path / "demo.sh"
    script.write_text("echo 1")
    out = StringIO()
    call_command("execute", str(script), "--no-wait", stdout=out)
    execution = Execution.objects.get()
    assert out.getvalue().strip() == str(execution.id)
    assert (execution.status, execution.language) == ("queued", "bash")


def test_execute_refuses_both_script_and_stdin_from_standard_input(db):
    with pytest.raises(CommandError, match="both"):
        call_command("execute", "-", "--stdin", "-")


def test_execute_judges_a_program_against_a_tests_file(default_tenant, worker_process, tmp_path):
    program = tmp_path / "double.py"
    program.write_text("print(int(input()) * 2)\n")
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"name": "two", "stdin": "2", "expected_output": "4"}, {"stdin": "3", "expected_output": "6"}]))
    done = execute(str(program), "--tests", str(tests))
    assert done.returncode == 0, done
    assert b"two: accepted" in done.stdout and b"verdict: accepted (2/2 passed)" in done.stdout
    tests.write_text(json.dumps({"tests": [{"stdin": "2", "expected_output": "5"}], "comparison": "tokens"}))
    done = execute(str(program), "--tests", str(tests))
    assert done.returncode == 1 and b"verdict: wrong_answer (0/1 passed)" in done.stdout
    tests.write_text(json.dumps({"tests": [{"stdin": "2"}], "comparison": "fuzzy"}))
    refused = execute(str(program), "--tests", str(tests))
    assert refused.returncode == 65 and b"fuzzy" in refused.stderr
