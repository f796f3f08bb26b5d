"""Fuzz every operation of the API from its own OpenAPI schema (schemathesis): valid and invalid
requests, with a valid key. No answer may be a server error, and every error has the common shape."""

from __future__ import annotations

import json
import threading

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from executions.api import waiting

EXAMPLES_PER_OPERATION = 100


# Loading the schema needs no database: it is read from the app itself, as a client would.
# The platform's own API; /judge0/ and /piston/ answer in their originals' shapes (tests/test_judge0_api.py,
# tests/test_piston_api.py).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application()).include(path_regex="^/api/v1/")


@pytest.fixture
def no_wait_slots(monkeypatch):
    # No worker runs here: every ?wait would last its full N seconds. With no slot free, a wait
    # answers 202 at once, through the real code path.
    full = threading.BoundedSemaphore(1)
    full.acquire()
    monkeypatch.setattr(waiting, "_slots", full)


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_never_fails_and_always_answers_errors_in_one_shape(case, transactional_db, alice, no_wait_slots):
    response = case.call(headers={"Authorization": f"Bearer {alice.key}", **(case.headers or {})})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        content_type = {name.lower(): value for name, value in response.headers.items()}["content-type"][0]
        assert content_type.startswith("application/json"), (response.status_code, response.content[:200])
        body = json.loads(response.content)
        assert set(body) == {"error"}, body
        assert body["error"]["code"] and body["error"]["message"], body
