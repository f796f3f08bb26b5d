"""Judge0 CE's API (version 1.13.1) under /judge0/, for Judge0's clients and its official SDK.

A Judge0 submission is an ordinary Execution: the token is its task id, the tenant is the API key's
(also accepted in Judge0's X-Auth-Token header). What Judge0 has and this platform does not (CPU
time and memory measurements, compiler options, network) is null or refused with Judge0's own
422; the README's table lists every difference.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import shlex
import uuid
import zipfile
from datetime import timezone as dt_timezone

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import judging, limits, store, submissions
from executions.api import auth, errors, waiting
from executions.api.serializers import MAX_BATCH, MAX_WAIT_SECONDS
from executions.api.views import AdmissionMixin, idempotency_key
from executions.compat import platform_refusal
from executions.compat.schema import (
    BASE64_ENCODED, FIELDS, JUDGE0_REQUEST, JUDGE0_STATUS, JUDGE0_SUBMISSION, WAIT, judge0 as judge0_schema,
)
from executions.models import Execution, Tenant
from executions.sandbox import images, languages

VERSION = "1.13.1"

# Judge0 CE 1.13.1's ids for the catalog's languages. The first id of each language is the one the
# official SDK picks for it (and the one a submission shows); the others are Judge0's older
# compilers of the same language, accepted so that clients that hard-code them keep working.
LANGUAGE_IDS: dict[str, tuple[int, ...]] = {
    "bash": (46,),
    "c": (50, 48, 49),
    "cpp": (52, 53, 54),
    "go": (60,),
    "java": (62,),
    "javascript": (63,),
    "lua": (64,),
    "php": (68,),
    "python": (71,),
    "ruby": (72,),
    "rust": (73,),
    "typescript": (74,),
}
LANGUAGE_BY_ID: dict[int, str] = {id_: name for name, ids in LANGUAGE_IDS.items() for id_ in ids}

# Judge0's statuses, by id: its clients compare these ids.
STATUSES: dict[int, str] = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
# Judge0's runtime errors by the signal that ended the program.
SIGNAL_STATUSES = {11: 7, 25: 8, 8: 9, 6: 10}

# Judge0's fields: those a GET shows without `fields=`, and all it knows (`fields=*`).
DEFAULT_FIELDS = ("token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status")
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id", "created_at",
    "finished_at", "time", "memory", "stderr", "token", "number_of_runs", "cpu_time_limit",
    "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit", "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
    "max_file_size", "compile_output", "exit_code", "exit_signal", "message", "wall_time",
    "compiler_options", "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
    "additional_files", "enable_network", "status", "language",
)
BASE64_FIELDS = ("source_code", "stdin", "expected_output", "stdout", "stderr", "compile_output", "message")

# The platform's field names as Judge0 calls them, for admission's refusals.
FIELD_NAMES = {
    "code": "source_code",
    "language": "language_id",
    "stdin": "stdin",
    "memory_mb": "memory_limit",
    "args": "command_line_arguments",
    "files": "additional_files",
    "callback_url": "callback_url",
}


class Judge0Invalid(exceptions.APIException):
    """Judge0's 422: {"field": ["message", ...], ...}."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid submission")
        self.fields = fields


class Judge0Error(exceptions.APIException):
    """Judge0's other errors: {"error": "message"}."""

    def __init__(self, message: str, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(message)
        self.status_code = status_code


def exception_handler(exc, context):
    """The platform's handling (metrics, Retry-After, status), in Judge0's error shapes."""
    response = errors.exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Judge0Invalid):
        response.data = exc.fields
    elif response.status_code == status.HTTP_404_NOT_FOUND:
        # What Judge0 (a Rails API) answers for a token or language it does not have.
        response.data = {"status": 404, "error": "Not Found"}
    else:
        response.data = {"error": response.data["error"]["message"]}
    return response


class Judge0KeyAuthentication(auth.ApiKeyAuthentication):
    """Our API keys, also in Judge0's X-Auth-Token header (where Judge0's clients put theirs)."""

    def presented_key(self, request) -> str | None:
        token = request.META.get("HTTP_X_AUTH_TOKEN", "").strip()
        return token or super().presented_key(request)


class Judge0View(APIView):
    authentication_classes = [Judge0KeyAuthentication]

    def get_exception_handler(self):
        return exception_handler


def language_name(language: languages.Language, version: str | None) -> str:
    """Judge0's way of naming a language: its label with the version, "C (GCC 12.2.0)"."""
    if not version:
        return language.label
    if language.label.endswith(")"):
        return f"{language.label[:-1]} {version})"
    return f"{language.label} ({version})"


def language_versions() -> dict[str, str]:
    return store.known_versions([images.sandbox_image(family) for family in images.families()])


def describe_language(id_: int, versions: dict[str, str]) -> dict:
    language = languages.CATALOG[LANGUAGE_BY_ID[id_]]
    return {
        "id": id_,
        "name": language_name(language, versions.get(language.name)),
        "is_archived": False,
        "source_file": language.source,
        "compile_cmd": language.compile.command if language.compile else None,
        "run_cmd": language.run,
    }


class AboutView(Judge0View):
    @judge0_schema("Judge0's about: the version (1.13.1) its clients pick language ids by", {"type": "object"}, operation_id="judge0_about")
    def get(self, request: Request) -> Response:
        # The official SDK picks its language ids by this version.
        return Response({"version": VERSION, "homepage": None, "source_code": None, "maintainer": None})


class ConfigInfoView(Judge0View):
    @judge0_schema("Judge0's configuration keys, with this platform's values", {"type": "object"}, operation_id="judge0_config_info")
    def get(self, request: Request) -> Response:
        return Response(config_info(request.user))


def config_info(tenant: Tenant) -> dict:
    """Judge0's configuration keys, with this platform's values for this tenant (limits of the
    default language). Callbacks are the tenant's webhooks: signed, so only with a webhook secret."""
    default = languages.CATALOG["python"]
    defaults, maxima = limits.language_defaults(default), limits.language_maxima(default)
    return {
        "maintenance_mode": False,
        "enable_wait_result": True,
        "enable_compiler_options": False,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": True,
        "enable_submission_delete": False,
        "enable_callbacks": bool(tenant.webhook_secret),
        "callbacks_max_tries": 1,
        "callbacks_timeout": float(settings.WEBHOOK_TIMEOUT_SECONDS),
        "enable_additional_files": True,
        "max_queue_size": settings.QUEUE_MAX_DEPTH,
        "cpu_time_limit": defaults.timeout_seconds,
        "max_cpu_time_limit": maxima.timeout_seconds,
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": 0.0,
        "wall_time_limit": defaults.timeout_seconds,
        "max_wall_time_limit": maxima.timeout_seconds,
        "memory_limit": defaults.memory_mb * 1024,
        "max_memory_limit": maxima.memory_mb * 1024,
        "stack_limit": 0,
        "max_stack_limit": 0,
        "max_processes_and_or_threads": settings.SANDBOX_PIDS_LIMIT,
        "max_max_processes_and_or_threads": settings.SANDBOX_PIDS_LIMIT,
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": settings.SANDBOX_OUTPUT_LIMIT_BYTES // 1024,
        "max_max_file_size": settings.SANDBOX_OUTPUT_LIMIT_BYTES // 1024,
        "number_of_runs": 1,
        "max_number_of_runs": 1,
        "redirect_stderr_to_stdout": False,
        "max_extract_size": settings.SANDBOX_MAX_CODE_BYTES // 1024,
        "enable_batched_submissions": True,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


class LanguagesView(Judge0View):
    @judge0_schema(
        "The catalog's languages under Judge0 CE's ids",
        {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}},
        operation_id="judge0_languages",
    )
    def get(self, request: Request) -> Response:
        versions = language_versions()
        return Response(
            [{"id": d["id"], "name": d["name"]} for d in (describe_language(i, versions) for i in sorted(LANGUAGE_BY_ID))]
        )


class LanguageView(Judge0View):
    @judge0_schema("One language by its Judge0 id", {"type": "object"}, 404, operation_id="judge0_language")
    def get(self, request: Request, language_id: str) -> Response:
        if int(language_id) not in LANGUAGE_BY_ID:
            raise exceptions.NotFound()
        return Response(describe_language(int(language_id), language_versions()))


class StatusesView(Judge0View):
    @judge0_schema("Judge0's 14 statuses", {"type": "array", "items": JUDGE0_STATUS}, operation_id="judge0_statuses")
    def get(self, request: Request) -> Response:
        return Response([{"id": id_, "description": description} for id_, description in STATUSES.items()])


# --- Submissions: Judge0's fields to a platform Submission -------------------------------------


# Judging (issue 15) is the platform's, wired in by these two functions and nowhere else: what a
# Judge0 `expected_output` asks of admission, and the Judge0 status of a verdict.


def judged_fields(expected_output: str | None, stdin: str, args: tuple[str, ...]) -> dict:
    """Submission's fields for Judge0's expected_output: the platform's one-test judged submission
    (the run's stdin and arguments are its test's, compared as Judge0 compares: whitespace at the
    ends of lines and of the output does not count), or a plain run's without one."""
    if expected_output is None:
        return {"stdin": stdin, "args": args}
    return submissions.one_test(stdin, args, expected_output)


# A judged execution's verdict as Judge0's status; a runtime error is told by its signal (status_id).
VERDICT_STATUSES = {
    judging.ACCEPTED: 3,
    judging.WRONG_ANSWER: 4,
    judging.TIME_LIMIT_EXCEEDED: 5,
    judging.COMPILATION_ERROR: 6,
    judging.OUTPUT_LIMIT_EXCEEDED: 8,
    judging.MEMORY_LIMIT_EXCEEDED: 12,
}


def verdict_status(execution: Execution) -> int:
    """A completed execution's Judge0 status: Accepted (3), or by its verdict if it was judged."""
    if not execution.verdict:
        return 3
    if execution.verdict == judging.RUNTIME_ERROR:
        signal = exit_signal(execution)
        return SIGNAL_STATUSES.get(signal, 12) if signal else 11
    return VERDICT_STATUSES.get(execution.verdict, 13)


def judged_test(execution: Execution) -> dict:
    """The one test of a submission with an expected output, as it ran (empty before it did)."""
    results = execution.test_results if execution.verdict else []
    return results[0] if results else {}


def text_field(data: dict, name: str, encoded: bool, problems: dict) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.setdefault(name, []).append("must be a string")
        return None
    if not encoded:
        return value
    try:
        return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        problems.setdefault(name, []).append("is not valid base64 of UTF-8 text")
        return None


def number_field(data: dict, name: str, problems: dict) -> float | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        problems.setdefault(name, []).append("is not a number")
        return None
    return number


# The characters Judge0 deletes from command_line_arguments and compiler_options before its shell
# sees them. Here no shell ever does (the rest is split into argv items), but a client that relied
# on Judge0 deleting them gets the same arguments.
SHELL_CHARACTERS = str.maketrans("", "", "$&;<>|`")
MAX_OPTIONS_LENGTH = 512


def split_options(data: dict, name: str, problems: dict) -> tuple[str, ...]:
    """Judge0's command_line_arguments or compiler_options as argv items: at most 512 characters,
    without Judge0's deleted characters, split by shell quoting (no expansion of any kind)."""
    value = data.get(name)
    if not value:
        return ()
    try:
        if not isinstance(value, str) or len(value) > MAX_OPTIONS_LENGTH:
            raise ValueError
        return tuple(shlex.split(value.translate(SHELL_CHARACTERS)))
    except ValueError:
        problems[name] = [f"must be a string of at most {MAX_OPTIONS_LENGTH} characters that a shell can split"]
        return ()


def time_limit_fields(data: dict, problems: dict) -> dict[str, float]:
    """Judge0's time limits given, by name. The platform has one deadline per run, on the wall
    clock: the lower of the two."""
    given = {name: number_field(data, name, problems) for name in ("cpu_time_limit", "wall_time_limit")}
    return {name: value for name, value in given.items() if value is not None}


def true(value) -> bool:
    return value is True or value in ("true", "1", 1)


def additional_files(encoded: str) -> tuple[dict, ...]:
    """Judge0's additional_files (a base64 zip) as the program's files; each is checked by admission."""
    try:
        archive_bytes = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Judge0Invalid({"additional_files": ["is not valid base64"]}) from None
    limit = settings.SANDBOX_MAX_CODE_BYTES
    files = []
    try:
        with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) > languages.MAX_FILES:
                raise Judge0Invalid({"additional_files": [f"at most {languages.MAX_FILES} files"]})
            total = 0
            for info in members:
                # The sizes a zip declares may lie: read at most what is left of the limit.
                with archive.open(info) as member:
                    content = member.read(limit - total + 1)
                total += len(content)
                if total > limit:
                    raise Judge0Invalid({"additional_files": [f"extract to more than {limit} bytes"]})
                files.append({"name": info.filename, "content": base64.b64encode(content).decode(), "encoding": "base64"})
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError):
        raise Judge0Invalid({"additional_files": ["is not a zip archive this platform can read"]}) from None
    return tuple(files)


def as_submission(data, encoded: bool) -> submissions.Submission:
    """A Judge0 submission's JSON as the platform's Submission, or Judge0Invalid naming the fields at fault."""
    if not isinstance(data, dict):
        raise Judge0Invalid({"source_code": ["can't be blank"], "language_id": ["can't be blank"]})
    problems: dict[str, list[str]] = {}
    code = text_field(data, "source_code", encoded, problems)
    if not code and "source_code" not in problems:
        problems["source_code"] = ["can't be blank"]
    stdin = text_field(data, "stdin", encoded, problems) or ""
    expected_output = text_field(data, "expected_output", encoded, problems)
    language_id = data.get("language_id")
    language = None
    if language_id in (None, ""):
        problems["language_id"] = ["can't be blank"]
    else:
        try:
            language = LANGUAGE_BY_ID.get(int(language_id))
        except (TypeError, ValueError):
            pass
        if language is None:
            problems["language_id"] = [f"language with id {language_id} doesn't exist"]
    time_limits = time_limit_fields(data, problems)
    memory_kb = number_field(data, "memory_limit", problems)
    if data.get("compiler_options"):
        problems["compiler_options"] = ["setting compiler options is not allowed"]
    if true(data.get("enable_network")):
        problems["enable_network"] = ["enabling network is not allowed"]
    for name in ("enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit"):
        if true(data.get(name)):
            problems[name] = ["this option cannot be enabled"]
    args = split_options(data, "command_line_arguments", problems)
    callback_url = data.get("callback_url") or ""
    if not isinstance(callback_url, str):
        problems["callback_url"] = ["must be a string"]
    if problems:
        raise Judge0Invalid(problems)
    files = additional_files(data["additional_files"]) if data.get("additional_files") else ()
    return submissions.Submission(
        language,
        code,
        **judged_fields(expected_output, stdin, args),
        timeout_seconds=min(time_limits.values()) if time_limits else None,
        memory_mb=math.ceil(memory_kb / 1024) if memory_kb is not None else None,
        files=files,
        callback_url=callback_url,
    )


def admission_error(exc: submissions.AdmissionError, data=None) -> exceptions.APIException:
    """Admission's refusal of the submission `data` in Judge0's shapes: a field's fault is a 422
    naming that field, the rest keep their status."""
    refused = platform_refusal(exc, Judge0Error)
    if refused is not None:
        return refused
    if exc.code == "invalid_limit" and exc.field == "timeout_seconds":
        # The one deadline is the lower time limit: the fields that set it are at fault.
        given = time_limit_fields(data, {}) if isinstance(data, dict) else {}
        lowest = min(given.values(), default=None)
        at_fault = [name for name, value in given.items() if value == lowest] or ["cpu_time_limit"]
        return Judge0Invalid({name: [exc.message] for name in at_fault})
    if exc.code == "invalid_limit":
        return Judge0Invalid({"memory_limit": [f"{exc.message} (here in MiB; Judge0's is in KB)"]})
    if exc.code == "language_not_allowed":
        return Judge0Invalid({"language_id": [exc.message]})
    if exc.field in FIELD_NAMES:
        return Judge0Invalid({FIELD_NAMES[exc.field]: [exc.message]})
    return Judge0Error(exc.message)


# --- Executions in Judge0's shape --------------------------------------------------------------


def status_id(execution: Execution) -> int:
    """Judge0's status for an execution."""
    Status = Execution.Status
    if execution.status == Status.QUEUED:
        return 1
    if execution.status == Status.RUNNING:
        return 2
    if execution.status == Status.COMPLETED:
        return verdict_status(execution)
    if execution.status == Status.TIMED_OUT:
        return 5
    if execution.status == Status.COMPILATION_ERROR:
        return 6
    if execution.status == Status.OUTPUT_LIMIT_EXCEEDED:
        return 8
    if execution.status == Status.OOM_KILLED:
        return 12
    if execution.status == Status.FAILED:
        signal = exit_signal(execution)
        return SIGNAL_STATUSES.get(signal, 12) if signal else 11
    return 13


def exit_signal(execution: Execution) -> int | None:
    # A program killed by a signal exits, through the sandbox's shell, with 128 + the signal.
    code = execution.exit_code
    return code - 128 if code is not None and 128 < code < 160 else None


MESSAGES = {
    Execution.Status.TIMED_OUT: "Time limit exceeded",
    Execution.Status.OOM_KILLED: "Memory limit exceeded",
    Execution.Status.OUTPUT_LIMIT_EXCEEDED: "Output limit exceeded",
    Execution.Status.CANCELLED: "Cancelled",
}


def message(execution: Execution) -> str | None:
    if execution.status == Execution.Status.FAILED:
        signal = exit_signal(execution)
        return f"Exited with signal {signal}" if signal else f"Exited with error status {execution.exit_code}"
    if execution.status == Execution.Status.ERROR:
        return execution.error or "Internal error"
    return MESSAGES.get(execution.status)


def judge0_time(value) -> str | None:
    """Rails' JSON time: UTC, milliseconds, Z (the official SDK parses exactly this)."""
    if value is None:
        return None
    value = value.astimezone(dt_timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def seconds(milliseconds: int | None) -> str | None:
    # Judge0's times are decimals, which Rails writes as strings.
    return None if milliseconds is None else f"{milliseconds / 1000:.3f}"


def represent(execution: Execution) -> dict:
    """Every Judge0 field of an execution (text fields plain, not yet base64)."""
    id_ = status_id(execution)
    language_id = LANGUAGE_IDS[execution.language][0] if execution.language in LANGUAGE_IDS else None
    language = languages.CATALOG.get(execution.language)
    # A submission with an expected output is the platform's one-test judged execution: its stdin and
    # arguments are the test's, and the test's own CPU time, wall time and peak memory are known.
    test = execution.tests[0] if execution.tests else {}
    ran = judged_test(execution)
    return {
        "source_code": execution.code,
        "language_id": language_id,
        "stdin": test.get("stdin", execution.stdin) or None,
        "expected_output": test.get("expected_output"),
        "stdout": execution.stdout or None,
        "status_id": id_,
        "created_at": judge0_time(execution.created_at),
        "finished_at": judge0_time(execution.finished_at),
        "time": seconds(ran.get("cpu_time_ms", execution.duration_ms)),
        "memory": ran.get("memory_kb"),
        "stderr": execution.stderr or None,
        "token": str(execution.id),
        "number_of_runs": 1,
        "cpu_time_limit": f"{execution.timeout_seconds:g}" if execution.timeout_seconds else None,
        "cpu_extra_time": None,
        "wall_time_limit": f"{execution.timeout_seconds:g}" if execution.timeout_seconds else None,
        "memory_limit": execution.memory_mb * 1024 if execution.memory_mb else None,
        "stack_limit": None,
        "max_processes_and_or_threads": None,
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "max_file_size": None,
        "compile_output": execution.compile_output or None,
        "exit_code": execution.exit_code,
        "exit_signal": exit_signal(execution),
        "message": message(execution),
        "wall_time": seconds(ran.get("wall_time_ms", execution.duration_ms)),
        "compiler_options": None,
        "command_line_arguments": shlex.join(test.get("args", execution.args)) or None,
        "redirect_stderr_to_stdout": False,
        "callback_url": execution.callback_url or None,
        "additional_files": None,
        "enable_network": False,
        "status": {"id": id_, "description": STATUSES[id_]},
        "language": {"id": language_id, "name": language.label if language else execution.language},
    }


def shaped(execution: Execution, fields: tuple[str, ...], encoded: bool) -> dict:
    whole = represent(execution)
    body = {name: whole[name] for name in fields}
    if encoded:
        for name in BASE64_FIELDS:
            if body.get(name) is not None:
                body[name] = base64.b64encode(body[name].encode("utf-8", errors="surrogatepass")).decode()
    return body


def requested_fields(request: Request) -> tuple[str, ...]:
    """Judge0's `fields=`: a comma-separated list, `*` for all; an unknown name is a 400."""
    names = [name for name in request.query_params.get("fields", "").split(",") if name]
    invalid = [name for name in names if name != "*" and name not in ALL_FIELDS]
    if invalid:
        raise Judge0Error(f"invalid fields: [{', '.join(invalid)}]")
    if "*" in names:
        return ALL_FIELDS
    return tuple(dict.fromkeys(names)) or DEFAULT_FIELDS


def base64_encoded(request: Request) -> bool:
    # Judge0 1.13.1: text is base64 only when the client says so.
    return request.query_params.get("base64_encoded") == "true"


def owned(tenant: Tenant, tokens: list[str]) -> dict[str, Execution]:
    """The caller's executions among these tokens, by token (a token that is not a UUID has none)."""
    ids = {}
    for token in tokens:
        try:
            ids[uuid.UUID(token)] = token
        except ValueError:
            continue
    found = Execution.objects.owned_by(tenant).filter(id__in=list(ids)) if ids else []
    return {ids[execution.id]: execution for execution in found}


class SubmissionsView(AdmissionMixin, Judge0View):
    @judge0_schema(
        "Create a submission (an execution of the key's tenant)",
        JUDGE0_SUBMISSION,
        400, 409, 413, 422,
        success=201,
        request={"application/json": JUDGE0_REQUEST},
        parameters=[BASE64_ENCODED, WAIT, FIELDS],
        operation_id="judge0_submissions_create",
    )
    def post(self, request: Request) -> Response:
        fields, encoded = requested_fields(request), base64_encoded(request)
        submission = as_submission(request.data, encoded)
        try:
            execution, _ = submissions.submit(request.user, submission, idempotency_key(request))
        except submissions.AdmissionError as exc:
            raise admission_error(exc, request.data) from None
        if request.query_params.get("wait") != "true":
            return Response({"token": str(execution.id)}, status=status.HTTP_201_CREATED)
        # Judge0 answers when the run ends; here a run that outlasts the wait (or finds no free
        # wait slot) is answered as it is then, In Queue or Processing, and the client polls its token.
        waiting.wait_for(execution, MAX_WAIT_SECONDS)
        execution = Execution.objects.get(id=execution.id)
        return Response(shaped(execution, fields, encoded), status=status.HTTP_201_CREATED)


class SubmissionView(Judge0View):
    @judge0_schema(
        "A submission by its token", JUDGE0_SUBMISSION, 400, 404, parameters=[BASE64_ENCODED, FIELDS],
        operation_id="judge0_submission",
    )
    def get(self, request: Request, token: str) -> Response:
        fields, encoded = requested_fields(request), base64_encoded(request)
        execution = owned(request.user, [token]).get(token)
        if execution is None:
            raise exceptions.NotFound()
        return Response(shaped(execution, fields, encoded))


class BatchView(AdmissionMixin, Judge0View):
    @judge0_schema(
        "Submissions by their tokens (null for a token this tenant does not have)",
        {"type": "object", "properties": {"submissions": {"type": "array", "items": {**JUDGE0_SUBMISSION, "nullable": True}}}},
        400,
        parameters=[OpenApiParameter("tokens", OpenApiTypes.STR, required=True), BASE64_ENCODED, FIELDS],
        operation_id="judge0_batch",
    )
    def get(self, request: Request) -> Response:
        fields, encoded = requested_fields(request), base64_encoded(request)
        tokens = [token for token in request.query_params.get("tokens", "").strip().split(",") if token]
        check_batch_size(len(tokens))
        found = owned(request.user, tokens)
        # Judge0 keeps the order of the tokens, with null for one it does not know.
        return Response({"submissions": [shaped(found[t], fields, encoded) if t in found else None for t in tokens]})

    @judge0_schema(
        "Create up to 20 submissions: the valid ones are created, the others answered in their places",
        {"type": "array", "items": {"type": "object"}},
        400, 413, 422,
        success=201,
        request={
            "application/json": {
                "type": "object",
                "required": ["submissions"],
                "properties": {"submissions": {"type": "array", "items": JUDGE0_REQUEST}},
            }
        },
        parameters=[BASE64_ENCODED],
        operation_id="judge0_batch_create",
    )
    def post(self, request: Request) -> Response:
        encoded = base64_encoded(request)
        items = request.data.get("submissions") if isinstance(request.data, dict) else None
        check_batch_size(len(items) if isinstance(items, list) else 0)
        # Judge0 takes the valid items of a batch and reports the others in their places.
        answers: list[dict | None] = []
        valid: list[submissions.Submission] = []
        quotas = request.user.limits()
        lookups = submissions.lookups_for(request.user, [item.get("callback_url") for item in items if isinstance(item, dict)])
        for item in items:
            try:
                submission = as_submission(item, encoded)
                submissions.check(request.user, submission, quotas, lookups)
            except Judge0Invalid as exc:
                answers.append(exc.fields)
            except submissions.AdmissionError as exc:
                error = admission_error(exc, item)
                if not isinstance(error, Judge0Invalid):
                    raise error from None
                answers.append(error.fields)
            else:
                answers.append(None)
                valid.append(submission)
        if not valid:
            return Response(answers, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        try:
            executions = iter(submissions.submit_batch(request.user, valid))
        except submissions.AdmissionError as exc:
            raise admission_error(exc) from None
        return Response(
            [answer if answer is not None else {"token": str(next(executions).id)} for answer in answers],
            status=status.HTTP_201_CREATED,
        )


def check_batch_size(count: int) -> None:
    if count > MAX_BATCH:
        raise Judge0Error(f"number of submissions in a batch should be less than or equal to {MAX_BATCH}")
    if count == 0:
        raise Judge0Error("there should be at least one submission in a batch")
