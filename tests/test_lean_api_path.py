"""sandbox_project.wsgi: requests with an API key under /api/ skip the browser's middleware, others do not."""

from __future__ import annotations

import io
from wsgiref.util import setup_testing_defaults

from sandbox_project.wsgi import application


def call(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, dict]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "SERVER_NAME": "localhost", "HTTP_HOST": "localhost"}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    setup_testing_defaults(environ)
    answer = {}
    application(environ, lambda status, headers: answer.update(status=status, headers=dict(headers)))
    return answer["status"], answer["headers"]


def test_a_key_authenticated_submission_takes_the_lean_path(transactional_db, alice):
    status, headers = call("POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {alice.key}")
    assert status.startswith("202")
    assert headers["X-Content-Type-Options"] == "nosniff"
    # No frame options, no cookies: the browser's middleware never ran.
    assert "X-Frame-Options" not in headers and "Set-Cookie" not in headers


def test_a_request_without_a_key_keeps_every_middleware(transactional_db):
    status, headers = call("GET", "/api/v1/executions")
    assert status.startswith("401")
    assert headers["X-Frame-Options"] == "DENY"


def test_the_lean_path_counts_responses_and_latency_by_view(transactional_db, alice):
    from prometheus_client import REGISTRY

    labels = {"status": "202", "view": "execute", "method": "POST"}
    name = "django_http_responses_total_by_status_view_method_total"
    before = REGISTRY.get_sample_value(name, labels) or 0
    latency_before = REGISTRY.get_sample_value(
        "django_http_requests_latency_seconds_by_view_method_count", {"view": "execute", "method": "POST"}
    ) or 0
    call("POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {alice.key}")
    assert REGISTRY.get_sample_value(name, labels) == before + 1
    assert REGISTRY.get_sample_value(
        "django_http_requests_latency_seconds_by_view_method_count", {"view": "execute", "method": "POST"}
    ) == latency_before + 1
