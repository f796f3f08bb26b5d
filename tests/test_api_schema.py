"""The OpenAPI schema at /api/schema/ generates cleanly, describes the API, and its docs work offline."""

from __future__ import annotations

import re
from io import StringIO

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client, override_settings

from executions import judging
from executions.sandbox import languages

pytestmark = pytest.mark.no_database


@pytest.fixture
def schema(tmp_path) -> dict:
    # Any warning or error in generation or validation against the OpenAPI 3 meta-schema fails here.
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path), stderr=StringIO())
    return yaml.safe_load(path.read_text())


def client() -> Client:
    return Client(HTTP_HOST="localhost")


def test_it_serves_the_schema_without_a_key():
    response = client().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")


def test_it_ignores_a_wrong_key_on_the_schema():
    response = client().get("/api/schema/?format=json", HTTP_AUTHORIZATION="Bearer rce_nope_nope")
    assert response.status_code == 200
    assert "/api/v1/executions" in response.json()["paths"]


def test_it_documents_each_path_once_without_a_trailing_slash(schema):
    assert sorted(schema["paths"]) == [
        "/api/v1/execute",
        "/api/v1/executions",
        "/api/v1/executions/batch",
        "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/cancel",
        "/api/v1/executions/{execution_id}/deliveries",
        "/api/v1/executions/{execution_id}/events",
        "/api/v1/languages",
        "/judge0/about",
        "/judge0/config_info",
        "/judge0/languages",
        "/judge0/languages/{language_id}",
        "/judge0/statuses",
        "/judge0/submissions",
        "/judge0/submissions/batch",
        "/judge0/submissions/{token}",
        "/piston/api/v2/execute",
        "/piston/api/v2/runtimes",
        "/piston/{key}/api/v2/execute",
        "/piston/{key}/api/v2/runtimes",
    ]


def native(schema: dict) -> dict:
    """The platform's own paths; /judge0/ and /piston/ speak their originals' dialects."""
    return {path: item for path, item in schema["paths"].items() if path.startswith("/api/v1/")}


def test_it_documents_the_api_key_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": schemes["bearerAuth"]["description"]}
    assert (schemes["apiKeyAuth"]["in"], schemes["apiKeyAuth"]["name"]) == ("header", "X-API-Key")
    for path in native(schema).values():
        for operation in path.values():
            assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}, {"sessionAuth": []}]
    assert (schemes["judge0AuthToken"]["in"], schemes["judge0AuthToken"]["name"]) == ("header", "X-Auth-Token")
    for path, item in schema["paths"].items():
        for operation in item.values():
            if path.startswith("/judge0/"):
                assert operation["security"] == [{"judge0AuthToken": []}, {"bearerAuth": []}, {"apiKeyAuth": []}]
            if path.startswith("/piston/{key}/"):
                # The key is in the path, which OpenAPI's security schemes cannot say.
                assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["key"]


def test_every_error_response_has_the_common_shape(schema):
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    for path in native(schema).values():
        for operation in path.values():
            statuses = {int(status) for status in operation["responses"]}
            assert {401, 403, 503} <= statuses
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_dialects_document_their_originals_error_shapes(schema):
    for path, item in schema["paths"].items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                shape = response.get("content", {}).get("application/json", {}).get("schema", {})
                if path.startswith("/piston/") and int(status) >= 400:
                    assert shape["required"] == ["message"]
                if path.startswith("/judge0/") and int(status) >= 400 and int(status) not in (404, 422):
                    assert shape["required"] == ["error"]
    assert "422" in schema["paths"]["/judge0/submissions"]["post"]["responses"]


def test_judge0s_fields_are_described_as_they_behave(schema):
    post = schema["paths"]["/judge0/submissions"]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    answer = post["responses"]["201"]["content"]["application/json"]["schema"]["properties"]
    # expected_output is judged, and a judged run reports its CPU time and memory.
    assert "Accepted" in request["expected_output"]["description"]
    assert "judged" in answer["memory"]["description"] and "CPU time" in answer["time"]["description"]
    for field in (*request.values(), *answer.values()):
        assert "until judging" not in field.get("description", "") and "Always null" not in field.get("description", "")


def test_it_documents_the_202_with_its_location(schema):
    for path in ("/api/v1/execute", "/api/v1/executions"):
        accepted = schema["paths"][path]["post"]["responses"]["202"]
        assert accepted["headers"]["Location"]["required"] is True
        assert accepted["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Accepted"}


def test_it_documents_both_request_bodies(schema):
    raw = schema["paths"]["/api/v1/execute"]["post"]
    assert list(raw["requestBody"]["content"]) == ["text/plain"]
    assert [p["name"] for p in raw["parameters"] if p["in"] == "query"] == ["language", "memory_mb", "timeout_seconds", "wait"]
    body = schema["paths"]["/api/v1/executions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    create = schema["components"]["schemas"][body["$ref"].rpartition("/")[2]]
    # `code`, or the entry point among `files` (checked by the serializer, which the schema cannot say).
    assert "required" not in create
    # The languages' enum is the catalog's, whatever its length.
    assert create["properties"]["language"]["allOf"] == [{"$ref": "#/components/schemas/Language"}]
    assert schema["components"]["schemas"]["Language"]["enum"] == list(languages.NAMES)
    assert create["additionalProperties"] is False
    assert re.search(create["properties"]["code"]["pattern"], "print(1)")
    assert not re.search(create["properties"]["code"]["pattern"], " \n\t")
    assert not re.search(create["properties"]["code"]["pattern"], "print(1)\x00")


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_the_docs_load_only_local_assets():
    browser = client()
    response = browser.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", page)  # no CDN, no external URL at all
    assert '"validatorUrl": null' in page
    for url in assets:
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        assert finders.find(url.removeprefix("/static/")), url
        served = browser.get(url)
        assert served.status_code == 200, url


def test_every_body_is_required_and_submissions_link_to_their_execution(schema):
    for path in schema["paths"].values():
        for operation in path.values():
            if "requestBody" in operation:
                assert operation["requestBody"]["required"] is True
    for path in ("/api/v1/execute", "/api/v1/executions"):
        link = schema["paths"][path]["post"]["responses"]["202"]["links"]["GetExecution"]
        assert link["parameters"] == {"execution_id": "$response.body#/task_id"}
        assert link["operationId"] == schema["paths"]["/api/v1/executions/{execution_id}"]["get"]["operationId"]


def test_it_documents_judging(schema):
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/v1/executions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    create = components[body["$ref"].rpartition("/")[2]]["properties"]
    assert create["tests"]["items"] == {"$ref": "#/components/schemas/TestCase"}
    assert create["tests"]["maxItems"] == judging.MAX_TESTS
    assert create["files"]["maxItems"] == languages.MAX_FILES + 1
    assert list(components["TestCase"]["properties"]) == ["name", "stdin", "args", "expected_output"]
    assert components["TestCase"]["additionalProperties"] is False
    assert components["ComparisonEnum"]["enum"] == list(judging.COMPARISONS)
    execution = components["Execution"]["properties"]
    assert execution["test_results"]["items"] == {"$ref": "#/components/schemas/TestResult"}
    result = components["TestResult"]
    assert result["required"] == ["name", "verdict"]
    assert {"cpu_time_ms", "wall_time_ms", "memory_kb", "stdout", "stderr", "exit_code", "message"} <= set(result["properties"])
    assert components["TestResultVerdictEnum"]["enum"] == list(judging.TEST_VERDICTS)
    assert {"$ref": "#/components/schemas/ExecutionVerdictEnum"} in execution["verdict"]["oneOf"]
    assert components["ExecutionVerdictEnum"]["enum"] == list(judging.VERDICTS)
