"""What drf-spectacular cannot see in the views: the API key schemes, the error shape, the headers.

The serializers here only describe responses that the views and the exception handler build as
plain dicts; they never validate anything.
"""

from __future__ import annotations

from django.conf import settings

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from executions import judging, limits
from executions.models import Execution
from executions.sandbox import languages


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "executions.api.auth.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api key>`"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key, in its own header."},
        ]

    def get_security_requirement(self, auto_schema):
        # Either header will do: a list of requirements means "one of".
        return [{"bearerAuth": []}, {"apiKeyAuth": []}]


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "executions.api.auth.SessionTenantAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "A signed-in member of a tenant (the browser page); writes need the CSRF token.",
        }


class TimeoutFieldScheme(OpenApiSerializerFieldExtension):
    # The bounds are the maxima when the schema is generated, so the schema follows the settings.
    target_class = "executions.api.serializers.TimeoutField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        maximum = limits.platform_maxima().timeout_seconds
        return {"type": "number", "minimum": limits.MIN_TIMEOUT_SECONDS, "maximum": maximum}


class MemoryFieldScheme(OpenApiSerializerFieldExtension):
    target_class = "executions.api.serializers.MemoryField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": limits.MIN_MEMORY_MB, "maximum": limits.platform_maxima().memory_mb}


class WaitFieldScheme(OpenApiSerializerFieldExtension):
    target_class = "executions.api.serializers.WaitField"

    def map_serializer_field(self, auto_schema, direction):
        from executions.api.serializers import MAX_WAIT_SECONDS

        return {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_WAIT_SECONDS}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `empty_code`.")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(
        required=False, help_text="Validation errors only: the messages by field (by item index in a batch)."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class AcceptedSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=Execution.Status.choices, help_text="`queued`, or the original's status for a replayed request."
    )


ACCEPTED = OpenApiResponse(AcceptedSerializer, description="Queued; the `Location` header says where to read it.")

# What the API accepts as code: text with something other than whitespace, and no NUL.
CODE_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
CODE_SCHEMA = {"type": "string", "pattern": CODE_PATTERN}
NO_NUL_SCHEMA = {"type": "string", "pattern": r"^[^\u0000]*$"}

ERROR_DESCRIPTIONS = {
    400: "Bad input (`error.code` says which); nothing was created.",
    401: "No API key (`missing_api_key`), or a wrong or revoked one (`invalid_api_key`).",
    403: "The key's tenant is disabled (`tenant_disabled`).",
    404: "No such execution for this tenant, or an invalid cursor (`not_found`).",
    409: "The Idempotency-Key was used for a different request (`idempotency_key_reused`).",
    408: "The request body did not arrive in time (`request_timeout`); nothing was created.",
    413: (
        "Code, stdin, files, an argument or a judged test over its limit (`payload_too_large`; a test's field is "
        "named in `details`); nothing was created."
    ),
    415: "The body is not JSON (`unsupported_media_type`).",
    429: (
        "Over the tenant's requests per minute (`rate_limited`) or its executions queued or running "
        "(`queue_quota_exceeded`); `Retry-After` says when to retry."
    ),
    503: (
        "Redis or the database is unreachable (`queue_unavailable`, `database_unavailable`), or the "
        "platform's queue is full (`overloaded`, with `Retry-After`); retry later."
    ),
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The given error responses, each in the common error shape; 401, 403, 429 and 503 always apply."""
    wanted = sorted({*statuses, 401, 403, 429, 503})
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]) for status in wanted}


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Up to 255 printable ASCII characters. The same key from the same tenant within 24 hours "
        "returns the original execution instead of running the script again."
    ),
)
ACCEPTED_HEADERS = [
    OpenApiParameter(
        "Location",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[200, 202],
        required=True,
        description="`/api/v1/executions/<task_id>`: where to read the execution.",
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[200, 202],
        enum=["true"],
        description="Present when an Idempotency-Key returned an earlier execution.",
    ),
]


def canonical_paths_only(endpoints):
    """The API's paths match with or without a trailing slash; document each once, without it."""
    seen = set()
    kept = []
    for path, path_regex, method, callback in endpoints:
        if path.startswith(("/api/v1/", "/judge0/", "/piston/")):
            path = path.rstrip("/")
        if (path, method) in seen:
            continue
        seen.add((path, method))
        kept.append((path, path_regex, method, callback))
    return kept


# Request bodies whose serializers refuse unknown fields (a typo must not be silently ignored).
CLOSED_COMPONENTS = {"ExecutionCreate", "ExecutionBatch", "TestCase", "File"}


def closed_request_bodies(result, generator, request, public):
    from executions.api.serializers import MAX_BATCH

    components = result.get("components", {}).get("schemas", {})
    for name in CLOSED_COMPONENTS & set(components):
        components[name]["additionalProperties"] = False
    # drf-spectacular does not carry a list serializer's length bounds over.
    if "ExecutionBatch" in components:
        components["ExecutionBatch"]["properties"]["executions"].update(minItems=1, maxItems=MAX_BATCH)
    if "ExecutionCreate" in components:
        properties = components["ExecutionCreate"]["properties"]
        properties["tests"]["maxItems"] = judging.MAX_TESTS
        properties["files"]["maxItems"] = languages.MAX_FILES + 1
    for operation in operations(result):
        # Every body this API takes is required (the raw script's too).
        if "requestBody" in operation:
            operation["requestBody"]["required"] = True
        # Where to read what a submission created: for clients, and for stateful fuzzers.
        for status in ("200", "202"):
            response = operation["responses"].get(status, {})
            if operation["operationId"] in SUBMISSIONS and "content" in response:
                response["links"] = {"GetExecution": READ_EXECUTION_LINK}
    return result


SUBMISSIONS = {"v1_execute_create", "v1_executions_create"}
READ_EXECUTION_LINK = {
    "operationId": "v1_executions_retrieve",
    "parameters": {"execution_id": "$response.body#/task_id"},
    "description": "The execution this request created (also in the `Location` header).",
}


def operations(result):
    for path in result.get("paths", {}).values():
        yield from path.values()
