"""Piston's v2 API (runtimes and execute) under /piston/, for Piston's clients.

Piston's clients send no credentials (the piston-client npm package sends no headers at all), so
the API key travels in the path, /piston/<key>/api/v2/...: it is never written to a log line
(sandbox_project.logs.RedactFilter, on the console's and the access log's handlers), a metric label (the views' names label the request metrics) or an
error message. Without a key, /piston/api/v2/... acts for settings.PISTON_TENANT if the operator
chose one (off by default). An execute is an ordinary Execution: admitted by submissions.submit,
then waited for (waiting.wait_for, one wait slot) and answered in Piston's shape.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import signal

from django.conf import settings
from rest_framework import exceptions, permissions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import limits, submissions
from executions.api import auth, errors, waiting
from executions.api.views import AdmissionMixin
from executions.compat import platform_refusal
from executions.compat.judge0 import language_versions
from executions.compat.schema import PISTON_REQUEST, PISTON_RESULT, PISTON_RUNTIMES, piston as piston_schema
from executions.models import Execution, NotCancellable, Tenant
from executions.sandbox import languages

# Piston's own names for the catalog's languages where they differ, and the runtime it names.
PISTON_NAMES = {"cpp": "c++"}
RUNTIMES = {"c": "gcc", "cpp": "gcc", "javascript": "node", "typescript": "node"}
# How long an execute waits for a place in the queue, on top of its stages' own limits.
QUEUE_WAIT_SECONDS = 30
BUSY_RETRY_AFTER_SECONDS = 5


class PistonError(exceptions.APIException):
    """Piston's error shape: {"message": "..."}, 400 unless said otherwise."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code or self.status_code


def exception_handler(exc, context):
    """The platform's handling (metrics, Retry-After, status), in Piston's shape."""
    if isinstance(exc, exceptions.UnsupportedMediaType):
        exc = PistonError("requests must be of type application/json", status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
    response = errors.exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"message": response.data["error"]["message"]}
    return response


class PathKeyAuthentication(BaseAuthentication):
    """The API key in the path (/piston/<key>/...); without one, the operator's PISTON_TENANT, if set."""

    def authenticate(self, request):
        plain = request.parser_context["kwargs"].get("key")
        if plain is None:
            return self.anonymous()
        key = auth.KEYS.find(plain)
        if key is None:
            # Never the key itself: error messages are shown and logged.
            raise exceptions.AuthenticationFailed("Invalid or revoked API key in the path.")
        if not key.tenant.is_active:
            raise auth.TenantDisabled()
        return key.tenant, key

    def anonymous(self):
        name = settings.PISTON_TENANT
        tenant = Tenant.objects.filter(name=name).first() if name else None
        if tenant is None:
            raise exceptions.AuthenticationFailed("An API key is required: use /piston/<api key>/api/v2/.")
        if not tenant.is_active:
            raise auth.TenantDisabled()
        return tenant, None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="piston"'


class IsPistonTenant(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Tenant)


class JSONAsTextParser(JSONParser):
    # piston-client posts its JSON as text/plain (node-fetch's default for a string body).
    media_type = "text/plain"


class PistonView(APIView):
    authentication_classes = [PathKeyAuthentication]
    permission_classes = [IsPistonTenant]
    parser_classes = [JSONParser, JSONAsTextParser]

    def get_exception_handler(self):
        return exception_handler


def version_of(language: languages.Language, versions: dict[str, str]) -> str:
    # Until a worker has read the version in the image, any version asked for matches.
    return versions.get(language.name) or "*"


def runtime(language: languages.Language, versions: dict[str, str]) -> dict:
    name = PISTON_NAMES.get(language.name, language.name)
    aliases = [spelling for spelling in (language.name, *language.aliases) if spelling != name]
    entry = {"language": name, "version": version_of(language, versions), "aliases": aliases}
    if language.name in RUNTIMES:
        entry["runtime"] = RUNTIMES[language.name]
    return entry


class RuntimesView(PistonView):
    @piston_schema("Piston's runtimes: the catalog's languages", PISTON_RUNTIMES, keyed=False, operation_id="piston_runtimes")
    def get(self, request: Request, key: str | None = None) -> Response:
        versions = language_versions()
        return Response([runtime(language, versions) for language in languages.CATALOG.values()])


# --- Versions: the part of npm's semver that Piston's clients use ---------------------------------


def version_numbers(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def satisfies(version: str, spec: str) -> bool:
    """Whether `version` is within the range `spec`: `*`, `3`, `3.11.x`, `3.11.2`, `^3.10`, `~3.11`,
    comparisons (`>=3.8 <4`), and alternatives with `||`."""
    if version == "*":
        return True
    actual = version_numbers(version)
    if actual is None:
        return False
    return any(all(within(actual, part) for part in alternative.split()) for alternative in spec.split("||"))


def within(actual: tuple[int, int, int], part: str) -> bool:
    operator, rest = re.match(r"^(\^|~|>=|<=|>|<|=)?(.*)$", part).groups()
    numbers: list[int] = []
    for piece in rest.lstrip("v").split(".")[:3]:
        if piece in ("*", "x", "X", ""):
            break
        if not piece.isdigit():
            return False
        numbers.append(int(piece))
    if not numbers:
        return True
    given = len(numbers)
    lower = tuple(numbers + [0] * (3 - given))
    prefix = actual[:given]
    if operator in (None, "="):
        return prefix == tuple(numbers)
    if operator == ">=":
        return actual >= lower
    if operator == ">":
        return prefix > tuple(numbers)
    if operator == "<":
        return actual < lower
    if operator == "<=":
        return prefix <= tuple(numbers)
    if operator == "~":
        upper = (numbers[0], numbers[1] + 1, 0) if given >= 2 else (numbers[0] + 1, 0, 0)
        return lower <= actual < upper
    # ^: up to the next change of the first non-zero number given.
    if numbers[0] > 0 or given == 1:
        upper = (numbers[0] + 1, 0, 0)
    elif numbers[1] > 0 or given == 2:
        upper = (0, numbers[1] + 1, 0)
    else:
        upper = (0, 0, numbers[2] + 1)
    return lower <= actual < upper


# --- Execute ------------------------------------------------------------------------------------


def find_runtime(name: str, version: str, versions: dict[str, str]) -> languages.Language | None:
    for language in languages.CATALOG.values():
        entry = runtime(language, versions)
        if (name == entry["language"] or name in entry["aliases"]) and satisfies(entry["version"], version):
            return language
    return None


def configured_limits(language: languages.Language) -> dict[str, float]:
    """The most each of Piston's limits may ask for, in Piston's units (milliseconds, bytes)."""
    maxima = limits.language_maxima(language)
    compile_limits = language.compile.limits if language.compile else None
    compile_seconds = (compile_limits and compile_limits.timeout_seconds) or settings.SANDBOX_TIMEOUT_SECONDS
    compile_mb = (compile_limits and compile_limits.memory_mb) or settings.SANDBOX_MEMORY_MB
    return {
        "run_timeout": maxima.timeout_seconds * 1000,
        "run_cpu_time": maxima.timeout_seconds * 1000,
        "run_memory_limit": maxima.memory_mb * 1024 * 1024,
        "compile_timeout": compile_seconds * 1000,
        "compile_cpu_time": compile_seconds * 1000,
        "compile_memory_limit": compile_mb * 1024 * 1024,
    }


def check_limits(body: dict, language: languages.Language) -> None:
    """Piston's checks of its limits, with its messages. -1, which Piston's clients send for "no
    limit", and 0 mean the default here. A language with no compile stage ignores compile limits."""
    configured = configured_limits(language)
    for constraint in ("memory_limit", "timeout", "cpu_time"):
        for stage in ("compile", "run") if language.compile else ("run",):
            name = f"{stage}_{constraint}"
            value = body.get(name)
            if not value or value == -1:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PistonError(f"If specified, {name} must be a number")
            if value > configured[name]:
                raise PistonError(f"{name} cannot exceed the configured limit of {configured[name]:g}")
            if value < 0:
                raise PistonError(f"{name} must be non-negative")


def program_file(file: dict, index: int) -> dict:
    """A Piston file as one of the program's files (utf8, base64 or hex)."""
    name = file.get("name") or f"file{index}.code"
    encoding = file.get("encoding") or "utf8"
    content = file["content"]
    if encoding == "utf8":
        return {"name": name, "content": content, "encoding": "utf-8"}
    if encoding not in ("hex", "base64"):
        raise PistonError(f"files[{index}].encoding must be utf8, base64 or hex")
    try:
        raw = bytes.fromhex(content) if encoding == "hex" else base64.b64decode(content, validate=True)
    except (ValueError, binascii.Error):
        raise PistonError(f"files[{index}].content is not valid {encoding}") from None
    return {"name": name, "content": base64.b64encode(raw).decode(), "encoding": "base64"}


def as_submission(body, versions: dict[str, str]) -> tuple[languages.Language, submissions.Submission]:
    """Piston's checks, in its order and with its messages, then the platform's Submission."""
    if not isinstance(body, dict):
        raise PistonError("language is required as a string")
    language_name, version, files = body.get("language"), body.get("version"), body.get("files")
    if not language_name or not isinstance(language_name, str):
        raise PistonError("language is required as a string")
    if not version or not isinstance(version, str):
        raise PistonError("version is required as a string")
    if not isinstance(files, list):
        raise PistonError("files is required as an array")
    for index, file in enumerate(files):
        if not isinstance(file, dict) or not isinstance(file.get("content"), str):
            raise PistonError(f"files[{index}].content is required as a string")
    language = find_runtime(language_name, version, versions)
    if language is None:
        raise PistonError(f"{language_name}-{version} runtime is unknown")
    entry = next((i for i, f in enumerate(files) if (f.get("encoding") or "utf8") == "utf8"), None)
    if entry is None:
        raise PistonError("files must include at least one utf8 encoded file")
    check_limits(body, language)
    args, stdin = body.get("args") or [], body.get("stdin") or ""
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise PistonError("args must be an array of strings")
    if not isinstance(stdin, str):
        raise PistonError("stdin must be a string")
    run_timeout, run_memory = body.get("run_timeout"), body.get("run_memory_limit")
    # Piston runs its first utf8 file; here that file is the language's entry point.
    code = files[entry]["content"]
    others = tuple(program_file(file, index) for index, file in enumerate(files) if index != entry)
    if language.name == "java":
        code, others = java_program(code, others)
    return language, submissions.Submission(
        language.name,
        code,
        stdin,
        timeout_seconds=run_timeout / 1000 if run_timeout and run_timeout > 0 else None,
        memory_mb=math.ceil(run_memory / (1024 * 1024)) if run_memory and run_memory > 0 else None,
        files=others,
        args=tuple(args),
    )


# A Java source's class, declared at the start of a line (not in a comment): its public one, else
# its first. A plain identifier only, since it becomes a file name and a line of Java source.
JAVA_PUBLIC_CLASS = re.compile(
    r"^[ \t]*public\s+(?:(?:final|abstract|strictfp)\s+)*class\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\$)", re.MULTILINE
)
JAVA_CLASS = re.compile(r"^[ \t]*(?:(?:final|abstract|strictfp)\s+)*class\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\$)", re.MULTILINE)


def java_program(code: str, files: tuple[dict, ...]) -> tuple[str, tuple[dict, ...]]:
    """Piston runs a Java program whatever its class is called (java's single-file launcher); the
    catalog compiles Main.java and runs class Main, and javac wants a public class in a file of its
    name. A program whose class is not Main goes in a file named after it, and the entry point
    becomes a Main that calls its main."""
    match = JAVA_PUBLIC_CLASS.search(code) or JAVA_CLASS.search(code)
    if match is None or re.search(r"\bclass\s+Main\b", code):
        return code, files
    name = match.group(1)
    launcher = f"public class Main {{ public static void main(String[] args) throws Throwable {{ {name}.main(args); }} }}\n"
    return launcher, ({"name": f"{name}.java", "content": code, "encoding": "utf-8"}, *files)


PISTON_FIELDS = {"timeout_seconds": "run_timeout", "memory_mb": "run_memory_limit", "code": "files"}


def admission_error(exc: submissions.AdmissionError) -> exceptions.APIException:
    refused = platform_refusal(exc, PistonError)
    if refused is not None:
        return refused
    field = PISTON_FIELDS.get(exc.field or "", exc.field)
    return PistonError(f"{field}: {exc.message}" if field else exc.message)


def signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def run_stage(execution: Execution) -> dict:
    """The run in Piston's shape: code, or the signal that ended it (SIGKILL at a limit, as Piston)."""
    Status = Execution.Status
    code, killed_by, state, message = execution.exit_code, None, None, None
    if execution.status == Status.FAILED and code is not None and 128 < code < 160:
        code, killed_by, state, message = None, signal_name(code - 128), "SG", f"Caught fatal signal {code - 128}"
    elif execution.status == Status.FAILED:
        state, message = "RE", f"Exited with error status {code}"
    elif execution.status in KILLED:
        code, killed_by, (state, message) = None, "SIGKILL", KILLED[execution.status]
    return stage(execution.stdout, execution.stderr, code, killed_by, state, message, execution.duration_ms)


KILLED = {
    Execution.Status.TIMED_OUT: ("TO", "Time limit exceeded"),
    Execution.Status.OOM_KILLED: ("SG", "Memory limit exceeded"),
    Execution.Status.OUTPUT_LIMIT_EXCEEDED: ("OL", "Output limit exceeded"),
    Execution.Status.CANCELLED: ("XX", "Cancelled"),
}


def stage(stdout: str, stderr: str, code, killed_by, state, message, wall_ms) -> dict:
    return {
        "stdout": stdout,
        "stderr": stderr,
        "code": code,
        "signal": killed_by,
        # Piston interleaves the two streams as they come; the platform keeps them apart.
        "output": stdout + stderr,
        "memory": None,
        "message": message,
        "status": state,
        "cpu_time": None,
        "wall_time": wall_ms,
    }


def result(execution: Execution, language: languages.Language, versions: dict[str, str]) -> dict:
    body = {"language": PISTON_NAMES.get(language.name, language.name), "version": version_of(language, versions)}
    if language.compile is not None:
        failed = execution.status == Execution.Status.COMPILATION_ERROR
        output = execution.compile_output or ""
        body["compile"] = stage(
            "", output, 1 if failed else 0, None, "RE" if failed else None, None, execution.compile_duration_ms
        )
        if failed:
            # As Piston: a program that did not compile reports its compile stage as its run too.
            body["run"] = body["compile"]
            return body
    body["run"] = run_stage(execution)
    return body


class ExecuteView(AdmissionMixin, PistonView):
    @piston_schema(
        "Run a program and answer with its result (Piston's execute)", PISTON_RESULT, keyed=False,
        request={"application/json": PISTON_REQUEST}, operation_id="piston_execute",
    )
    def post(self, request: Request, key: str | None = None) -> Response:
        content_type = request.content_type.split(";")[0].strip()
        if content_type not in ("application/json", "text/plain"):
            raise exceptions.UnsupportedMediaType(content_type)
        versions = language_versions()
        language, submission = as_submission(request.data, versions)
        try:
            execution, _ = submissions.submit(request.user, submission)
        except submissions.AdmissionError as exc:
            raise admission_error(exc) from None
        compile_seconds = configured_limits(language)["compile_timeout"] / 1000 if language.compile else 0
        waiting.wait_for(execution, execution.timeout_seconds + compile_seconds + QUEUE_WAIT_SECONDS)
        execution = Execution.objects.select_related("tenant").get(id=execution.id)
        if not execution.is_terminal:
            give_up(execution)
            execution = Execution.objects.get(id=execution.id)
        if execution.status == Execution.Status.ERROR:
            raise PistonError(execution.error or "The platform could not run the program.", 500)
        return Response(result(execution, language, versions))


def give_up(execution: Execution) -> None:
    """Cancel an execution this request cannot wait for: Piston answers with the result or not at all."""
    try:
        submissions.cancel(execution)
    except NotCancellable:
        # It ended meanwhile: its result is the answer.
        return
    error = PistonError("The platform is busy; nothing was run. Retry later.", status.HTTP_503_SERVICE_UNAVAILABLE)
    error.retry_after = BUSY_RETRY_AFTER_SECONDS
    raise error


# The same operations with the key in the path: documented apart, since their parameters differ.
class KeyRuntimesView(RuntimesView):
    @piston_schema("Piston's runtimes: the catalog's languages", PISTON_RUNTIMES, keyed=True, operation_id="piston_key_runtimes")
    def get(self, request: Request, key: str | None = None) -> Response:
        return super().get(request, key)


class KeyExecuteView(ExecuteView):
    @piston_schema(
        "Run a program and answer with its result (Piston's execute)", PISTON_RESULT, keyed=True,
        request={"application/json": PISTON_REQUEST}, operation_id="piston_key_execute",
    )
    def post(self, request: Request, key: str | None = None) -> Response:
        return super().post(request, key)
