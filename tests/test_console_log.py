"""The console a newcomer reads: no line per client mistake, no routine rq chatter, and JSON lines
for a log collector (LOG_FORMAT=json). Each case configures logging as the real processes do."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from executions import checks
from tests.conftest import ROOT

pytestmark = pytest.mark.no_database

SCRIPT = """
import logging
import django
django.setup()
from django.test import Client
logging.getLogger("rq.worker").info("Worker %s: cleaning registries for queue: %s", "w1", "sandbox")
logging.getLogger("rq.worker").info("Worker %s: cleaning group registries", "w1")
logging.getLogger("rq.worker").info("Worker %s: started with PID %d", "w1", 1)
logging.getLogger("executions.state").info("execution task_id=t1 state=running")
print("status", Client(HTTP_HOST="localhost").get("/api/v1/executions").status_code, flush=True)
logging.getLogger("django.request").error("Internal Server Error: /boom")
try:
    raise ValueError("no route for /piston/rce_abc_SECRET1/v2/execute")
except ValueError:
    logging.getLogger("django.request").exception("Internal Server Error: %s", "/piston/rce_abc_SECRET2")
"""


def console(**env: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "sandbox_project.settings", **env},
        check=True,
    )
    return done.stdout, done.stderr


def test_a_client_error_is_not_a_log_line_but_a_server_error_is():
    stdout, stderr = console()
    assert "status 401" in stdout
    assert "Unauthorized" not in stderr
    assert "ERROR django.request Internal Server Error: /boom" in stderr


def test_rqs_registry_cleaning_is_left_out_unless_debugging():
    _, stderr = console()
    assert "cleaning" not in stderr
    assert "started with PID 1" in stderr and "state=running" in stderr
    _, debug = console(LOG_LEVEL="DEBUG")
    assert "cleaning registries for queue: sandbox" in debug


def test_json_lines_for_a_log_collector():
    _, stderr = console(LOG_FORMAT="json")
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    state = next(line for line in lines if line["logger"] == "executions.state")
    assert state["level"] == "INFO" and state["message"] == "execution task_id=t1 state=running"
    assert state["time"].endswith("+00:00")
    assert any(line["logger"] == "django.request" and line["level"] == "ERROR" for line in lines)


def test_an_unknown_log_format_is_reported(settings):
    settings.LOG_FORMAT = "xml"
    assert [error.id for error in checks.check_log_format(None)] == ["executions.E010"]
    settings.LOG_FORMAT = "json"
    assert checks.check_log_format(None) == []


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_piston_key_in_a_path_is_masked_in_messages_and_tracebacks(log_format):
    _, stderr = console(LOG_FORMAT=log_format)
    assert "SECRET" not in stderr
    assert "Internal Server Error: /piston/<key>" in stderr
    assert "no route for /piston/<key>/v2/execute" in stderr
