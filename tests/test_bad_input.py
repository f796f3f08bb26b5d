"""Every bad request gets the one JSON error shape, the right status, and creates neither row nor job."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from tests.conftest import assert_nothing_created
from tests.helpers import assert_error


def post_json(persona, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return persona.client.post("/api/v1/executions", data, content_type=content_type)


def post_raw(persona, body, query=""):
    return persona.client.post(f"/api/v1/execute{query}", body, content_type="text/plain")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"code": ""}, "empty_code"),
        ({"code": "   \n\t"}, "empty_code"),
        ({"language": "cobol", "code": "puts 1"}, "invalid_choice"),
        ({"language": "python"}, "required"),
        ({"code": 123}, "invalid"),
        ({"code": ["print(1)"]}, "invalid"),
        ({"code": "print(1)", "stdin": 5}, "invalid"),
        ({"code": "print(1)", "timeout": 3}, "unknown_field"),
        ({"code": "print('\x00')"}, "nul_character"),
        ({"code": "print(1)", "stdin": "a\x00b"}, "nul_character"),
        (["print(1)"], "invalid"),
        ("null", "null"),
        ("", "required"),
    ],
)
def test_it_rejects_invalid_json_fields(alice, body, code):
    response = post_json(alice, body if body != "null" else "null")
    error = assert_error(response, 400, code)["error"]
    assert error["message"]
    assert_nothing_created()


def test_it_names_the_field_in_the_message(alice):
    error = assert_error(post_json(alice, {"language": "cobol", "code": "x"}), 400, "invalid_choice")["error"]
    assert error["message"].startswith("language:")
    assert "language" in error["details"]


def test_it_rejects_a_lone_surrogate(alice):
    response = post_json(alice, b'{"code": "print(1) # \\ud800"}')
    assert_error(response, 400, "invalid_encoding")
    assert_nothing_created()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"code": "print(1)"', b'{"code": "\xff\xfe"}', b"[" * 100000 + b"]" * 100000],
)
def test_it_rejects_malformed_json(alice, body):
    assert_error(post_json(alice, body), 400, "invalid_json")
    assert_nothing_created()


def test_it_rejects_a_form_body_on_the_json_endpoint(alice):
    response = post_json(alice, "code=print(1)", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    assert_nothing_created()


@pytest.mark.parametrize("body, code", [("", "empty_code"), ("  \n ", "empty_code"), ("a\x00b", "nul_character")])
def test_it_rejects_bad_raw_code(alice, body, code):
    assert_error(post_raw(alice, body), 400, code)
    assert_nothing_created()


def test_it_rejects_raw_invalid_utf8(alice):
    assert_error(post_raw(alice, b"print('\xff')"), 400, "invalid_encoding")
    assert_nothing_created()


def test_it_rejects_an_unknown_raw_language(alice):
    assert_error(post_raw(alice, "puts 1", "?language=cobol"), 400, "unknown_language")
    assert_nothing_created()


@override_settings(SANDBOX_MAX_CODE_BYTES=100, SANDBOX_MAX_STDIN_BYTES=50)
def test_it_rejects_code_and_stdin_over_their_limits(alice):
    # Bytes, not characters: 34 three-byte characters are 102 bytes.
    error = assert_error(post_raw(alice, "€" * 34), 413, "payload_too_large")["error"]
    assert "102 bytes" in error["message"] and "100 bytes" in error["message"]
    assert_error(post_json(alice, {"code": "x" * 101}), 413, "payload_too_large")
    assert_error(post_json(alice, {"code": "print(1)", "stdin": "x" * 51}), 413, "payload_too_large")
    assert post_json(alice, {"code": "x" * 100, "stdin": "y" * 50}).status_code == 202


def test_it_accepts_code_at_the_default_limit_and_rejects_one_byte_more(alice):
    assert post_raw(alice, "#" * 65536).status_code == 202
    assert_error(post_raw(alice, "#" * 65537), 413, "payload_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_it_rejects_a_body_over_the_request_limit(alice):
    assert_error(post_raw(alice, "#" * 2000), 413, "payload_too_large")
    assert_error(post_json(alice, {"code": "#" * 2000}), 413, "payload_too_large")
    assert_nothing_created()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_it_rejects_wrong_methods_on_submit(alice, method):
    assert_error(getattr(alice.client, method)("/api/v1/execute"), 405, "method_not_allowed")


def test_it_answers_json_404_for_unknown_endpoints(alice):
    assert_error(alice.client.get("/api/v1/nothing"), 404, "not_found")
    assert_error(alice.client.get("/api/v1/executions/not-a-uuid"), 404, "not_found")


def test_an_unknown_endpoint_answers_json_even_to_a_post_without_a_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    assert_error(client.post("/api/v1/executions/null/cancel"), 404, "not_found")
