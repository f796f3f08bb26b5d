"""The OpenAPI description of the Judge0 and Piston dialects: their own shapes, written as schemas
because the views build plain dicts (as Judge0 and Piston define them), never through serializers."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

STRING_OR_NULL = {"type": "string", "nullable": True}


class Judge0TokenScheme(OpenApiAuthenticationExtension):
    target_class = "executions.compat.judge0.Judge0KeyAuthentication"
    name = "judge0AuthToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "An API key, where Judge0's clients put theirs."}

    def get_security_requirement(self, auto_schema):
        # The platform's own two headers (executions.api.schema.ApiKeyScheme) work here too.
        return [{"judge0AuthToken": []}, {"bearerAuth": []}, {"apiKeyAuth": []}]


JUDGE0_ERROR = OpenApiResponse(
    {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    description="Judge0's error: `{\"error\": \"...\"}` (401, 403, 429 and 503 too).",
)
JUDGE0_INVALID = OpenApiResponse(
    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    description="Judge0's validation error: the messages by field, e.g. `{\"enable_network\": [...]}`; nothing was created.",
)
JUDGE0_NOT_FOUND = OpenApiResponse(
    {"type": "object", "properties": {"status": {"type": "integer"}, "error": {"type": "string"}}},
    description="`{\"status\": 404, \"error\": \"Not Found\"}`: no such token for this tenant (another tenant's looks the same).",
)
JUDGE0_STATUS = {
    "type": "object",
    "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 14}, "description": {"type": "string"}},
}
JUDGE0_SUBMISSION = {
    "type": "object",
    "description": "The fields asked for with `fields=` (Judge0's defaults without it; `*` for all).",
    "properties": {
        "token": {"type": "string", "format": "uuid"},
        "stdout": STRING_OR_NULL,
        "stderr": STRING_OR_NULL,
        "compile_output": STRING_OR_NULL,
        "message": STRING_OR_NULL,
        "exit_code": {"type": "integer", "nullable": True},
        "exit_signal": {"type": "integer", "nullable": True},
        "status": JUDGE0_STATUS,
        "time": {
            **STRING_OR_NULL,
            "description": "Seconds, as a decimal string: the run's CPU time when it was judged (with "
            "`expected_output`), else its wall-clock time.",
        },
        "wall_time": {**STRING_OR_NULL, "description": "Seconds the run took on the wall clock, as a decimal string."},
        "memory": {
            "type": "integer",
            "nullable": True,
            "description": "The run's peak memory in KB when it was judged (with `expected_output`); else null.",
        },
    },
}
JUDGE0_REQUEST = {
    "type": "object",
    "required": ["source_code", "language_id"],
    "properties": {
        "source_code": {"type": "string"},
        "language_id": {"type": "integer"},
        "stdin": STRING_OR_NULL,
        "expected_output": {
            **STRING_OR_NULL,
            "description": "The run is judged against it: Accepted (3) or Wrong Answer (4); whitespace at "
            "the ends of lines and of the output does not count.",
        },
        "cpu_time_limit": {"type": "number", "nullable": True},
        "wall_time_limit": {"type": "number", "nullable": True},
        "memory_limit": {"type": "number", "nullable": True, "description": "KB"},
        "command_line_arguments": {**STRING_OR_NULL, "maxLength": 512},
        "compiler_options": {
            **STRING_OR_NULL,
            "description": "Refused (422) unless empty: not supported yet (see `/config_info`).",
        },
        "additional_files": {**STRING_OR_NULL, "description": "A base64 zip: the program's other files."},
        "callback_url": STRING_OR_NULL,
        "enable_network": {"type": "boolean", "nullable": True, "description": "`true` is refused (422)."},
    },
}
BASE64_ENCODED = OpenApiParameter("base64_encoded", OpenApiTypes.STR, enum=["true", "false"], description="`true`: text fields are base64.")
FIELDS = OpenApiParameter("fields", OpenApiTypes.STR, description="Comma-separated field names, or `*`.")
WAIT = OpenApiParameter("wait", OpenApiTypes.STR, enum=["true", "false"], description="`true`: answer with the result if it ends within 30 s.")


def judge0(summary: str, response, *statuses: int, **kwargs):
    """extend_schema for a Judge0 operation: its answer, and its errors in Judge0's shapes."""
    errors = {status: JUDGE0_ERROR for status in sorted({*statuses, 401, 403, 429, 503})}
    if 404 in statuses:
        errors[404] = JUDGE0_NOT_FOUND
    if 422 in statuses:
        errors[422] = JUDGE0_INVALID
    success = kwargs.pop("success", 200)
    return extend_schema(summary=summary, tags=["Judge0 CE"], responses={success: response, **errors}, **kwargs)


PISTON_ERROR = OpenApiResponse(
    {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    description="Piston's error: `{\"message\": \"...\"}`.",
)
PISTON_STAGE = {
    "type": "object",
    "properties": {
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "output": {"type": "string", "description": "stdout, then stderr (not interleaved)."},
        "code": {"type": "integer", "nullable": True},
        "signal": STRING_OR_NULL,
        "message": STRING_OR_NULL,
        "status": STRING_OR_NULL,
        "wall_time": {"type": "integer", "nullable": True, "description": "Milliseconds."},
    },
}
PISTON_RESULT = {
    "type": "object",
    "properties": {"language": {"type": "string"}, "version": {"type": "string"}, "run": PISTON_STAGE, "compile": PISTON_STAGE},
}
PISTON_RUNTIMES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "language": {"type": "string"},
            "version": {"type": "string", "description": "`*` until a worker has read it in the image."},
            "aliases": {"type": "array", "items": {"type": "string"}},
            "runtime": {"type": "string"},
        },
    },
}
PISTON_REQUEST = {
    "type": "object",
    "required": ["language", "version", "files"],
    "properties": {
        "language": {"type": "string"},
        "version": {"type": "string", "description": "A version or range: `*`, `3.11`, `^3.10`, `>=3.8 <4`."},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["content"],
                "properties": {
                    "name": {"type": "string"},
                    "content": {"type": "string"},
                    "encoding": {"type": "string", "enum": ["utf8", "base64", "hex"]},
                },
            },
        },
        "stdin": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "run_timeout": {"type": "number", "description": "Milliseconds."},
        "run_memory_limit": {"type": "number", "description": "Bytes; -1 for the default."},
        "compile_timeout": {"type": "number", "description": "Checked, not applied: compilers run with the catalog's limits."},
        "compile_memory_limit": {"type": "number"},
    },
}
PATH_KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="An API key (never logged).")


def piston(summary: str, response, keyed: bool, **kwargs):
    """extend_schema for a Piston operation: the key is a path parameter, not a security scheme."""
    description = (
        "The API key is in the path." if keyed else "No key: acts for the operator's PISTON_TENANT, if one is set (else 401)."
    )
    errors = {status: PISTON_ERROR for status in (400, 401, 403, 413, 415, 429, 500, 503)}
    return extend_schema(
        summary=summary,
        description=description,
        tags=["Piston v2"],
        auth=[],
        parameters=[PATH_KEY] if keyed else [],
        responses={200: response, **errors},
        **kwargs,
    )
