from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, ErrorDetail, Throttled
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import events, limits, store, submissions
from executions.api import throttles, waiting
from executions.api.schema import ACCEPTED, ACCEPTED_HEADERS, CODE_SCHEMA, IDEMPOTENCY_KEY, ErrorSerializer, errors
from executions.api.errors import (
    AlreadyFinished,
    BadRequest,
    EventStreamsUnavailable,
    IdempotencyConflict,
    Overloaded,
    PayloadTooLarge,
    QueueQuotaExceeded,
    QueueUnavailable,
    error_body,
)
from executions.api.serializers import (
    BatchAcceptedSerializer,
    DeliverySerializer,
    ExecutionBatchSerializer,
    ExecutionCreateSerializer,
    ExecutionSerializer,
    LanguagesSerializer,
    RawQuerySerializer,
    WaitQuerySerializer,
)
from executions.models import Delivery, Execution, NotCancellable, Tenant
from executions.sandbox import images, languages


FINISHED = OpenApiResponse(ExecutionSerializer, description="With `?wait=N`: the execution, finished within N seconds.")


class TenantScopedMixin:
    """Every tenant-owned lookup starts here: subclasses may narrow the queryset, never widen it."""

    request: Request

    def tenant_executions(self) -> QuerySet[Execution]:
        return Execution.objects.owned_by(self.request.user)


def accepted(execution: Execution, created: bool, wait: float | None = None) -> Response:
    """202 with the task id; or, with `wait`, 200 with the execution if it finishes within `wait` seconds."""
    headers = {"Location": f"/api/v1/executions/{execution.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    if wait:
        finished = waiting.wait_for(execution, wait)
        if finished is not None:
            return Response(finished, status=status.HTTP_200_OK, headers=headers)
    body = {"task_id": str(execution.id), "status": execution.status}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 255 or not all(" " <= c <= "~" for c in key):
        raise BadRequest(
            "Idempotency-Key must be at most 255 printable ASCII characters.", code="invalid_idempotency_key"
        )
    return key.strip()


def submit(request: Request, submission: submissions.Submission, wait: float | None) -> Response:
    with admission_errors():
        execution, created = submissions.submit(request.user, submission, idempotency_key(request))
    if not created:
        # A replay never reached admission, which counts every other accepted request.
        count_request(request)
    return accepted(execution, created, wait)


def query_options(request: Request, serializer_class: type[serializers.Serializer]) -> dict:
    """The submission's options from the query string, validated; {} when it has none of them.

    Most submissions carry none, and building a serializer (DRF copies its fields each time)
    cost 0.2 ms of the 2.6 a submission took.
    """
    if not any(name in request.query_params for name in serializer_class._declared_fields):
        return {}
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


@contextmanager
def admission_errors():
    """Admission's refusals as the API's errors; a refusal by the admission script is marked counted."""
    try:
        yield
    except submissions.AdmissionError as exc:
        error = api_error(exc)
        error.counted = isinstance(exc, submissions.Refused)
        raise error from None


def api_error(exc: submissions.AdmissionError) -> APIException:
    if isinstance(exc, submissions.RateLimited):
        return Throttled(exc.retry_after)
    if isinstance(exc, submissions.QuotaExceeded):
        return QueueQuotaExceeded(exc.limit, exc.retry_after)
    if isinstance(exc, submissions.Overloaded):
        return Overloaded(exc.retry_after)
    if isinstance(exc, submissions.QueueUnavailable):
        return QueueUnavailable()
    if isinstance(exc, submissions.IdempotencyConflict):
        return IdempotencyConflict()
    if isinstance(exc, submissions.TooLarge):
        return PayloadTooLarge(str(exc), field_details(exc) if exc.field else None)
    if exc.field is None:
        return BadRequest(str(exc), code=exc.code)
    return serializers.ValidationError(field_details(exc))


def field_details(exc: submissions.AdmissionError) -> dict:
    """{field: [message]}, under its batch item's name if it has one."""
    detail = {exc.field: [ErrorDetail(exc.message, code=exc.code)]}
    return detail if exc.item is None else {f"executions[{exc.item}]": detail}


def count_request(request: Request) -> None:
    """Count a submission admission did not see against its tenant's rate: 429 if over it."""
    allowed, retry_after, _ = throttles.count(request.user)
    if not allowed:
        raise Throttled(retry_after)


class AdmissionMixin:
    """A view whose POST submits: the admission script counts the request against its tenant's
    rate in the same round trip as the rest; the throttle counts only what never reached it."""

    request: Request

    def get_throttles(self):
        return [] if self.request.method == "POST" else super().get_throttles()

    def perform_authentication(self, request: Request) -> None:
        super().perform_authentication(request)
        # Only a request that got this far is counted on error: reading request.user after a
        # failed authentication would try it again.
        self.authenticated = True

    def handle_exception(self, exc):
        counted = getattr(exc, "counted", False)
        if self.request.method == "POST" and getattr(self, "authenticated", False) and not counted:
            if isinstance(self.request.user, Tenant):
                try:
                    count_request(self.request)
                except Throttled as throttled:
                    exc = throttled
        return super().handle_exception(exc)


class ExecuteRawView(AdmissionMixin, APIView):
    """The original design's endpoint: the raw body is the script; `?language=bash` for Bash."""

    # The body is read as bytes, whatever its content type (curl -d sends form encoding).
    parser_classes: list = []

    @extend_schema(
        summary="Run a script sent as the raw body",
        description="The body is the script, as UTF-8 text in any content type; `?language=bash` for Bash.",
        request={"text/plain": CODE_SCHEMA},
        parameters=[
            OpenApiParameter("language", enum=languages.NAMES, default="python"),
            RawQuerySerializer,
            IDEMPOTENCY_KEY,
            *ACCEPTED_HEADERS,
        ],
        responses={200: FINISHED, 202: ACCEPTED, **errors(400, 408, 409, 413)},
    )
    def post(self, request: Request) -> Response:
        language = request.query_params.get("language", "python")
        language = languages.name_of(language) or language
        try:
            code = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The body must be UTF-8 text.", code="invalid_encoding") from None
        options = query_options(request, RawQuerySerializer)
        submission = submissions.Submission(
            language, code, "", options.get("timeout_seconds"), options.get("memory_mb")
        )
        return submit(request, submission, options.get("wait"))


class ExecutionPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        # DRF would quietly use the default for `page_size=x`; a client should learn of its mistake.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise BadRequest(
                f"page_size must be a whole number from 1 to {self.max_page_size}.", code="invalid_page_size"
            )
        return int(raw)


class ExecutionListCreateView(AdmissionMixin, TenantScopedMixin, generics.ListAPIView):
    serializer_class = ExecutionSerializer
    pagination_class = ExecutionPagination

    @extend_schema(
        summary="List the caller's executions, newest first",
        description="Cursor-paginated: follow `next` and `previous`.",
        parameters=[
            OpenApiParameter("status", enum=Execution.Status.values),
            OpenApiParameter("language", enum=languages.NAMES),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": ExecutionPagination.max_page_size},
                description=f"Default {ExecutionPagination.page_size}.",
            ),
        ],
        responses={200: ExecutionSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Execution]:
        queryset = self.tenant_executions()
        for name, values in (("status", Execution.Status.values), ("language", languages.NAMES)):
            value = self.request.query_params.get(name)
            if value is None:
                continue
            if name == "language":
                # Any spelling a submission may use: ?language=js lists the javascript ones.
                value = languages.name_of(value) or value
            if value not in values:
                raise BadRequest(f"Unknown {name} {value!r}; use one of: {', '.join(values)}.", code=f"unknown_{name}")
            queryset = queryset.filter(**{name: value})
        return queryset

    @extend_schema(
        summary="Run a script sent as JSON",
        description="Queue the script; read the execution at the `Location` the 202 gives.",
        request=ExecutionCreateSerializer,
        parameters=[WaitQuerySerializer, IDEMPOTENCY_KEY, *ACCEPTED_HEADERS],
        responses={200: FINISHED, 202: ACCEPTED, **errors(400, 408, 409, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        options = query_options(request, WaitQuerySerializer)
        serializer = ExecutionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return submit(request, as_submission(serializer.validated_data), options.get("wait"))


class ExecutionBatchView(AdmissionMixin, APIView):
    @extend_schema(
        summary="Run up to 20 scripts sent as JSON",
        description=(
            "All or nothing: one invalid item is a 400 naming its index (`executions[3]`), and nothing "
            "is created. The 202 lists the task ids in the order of the request."
        ),
        request=ExecutionBatchSerializer,
        responses={202: BatchAcceptedSerializer, **errors(400, 408, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        if request.headers.get("Idempotency-Key"):
            # Silently ignoring it would make a retry run the whole batch again.
            raise BadRequest("Idempotency-Key is not supported on batches.", code="invalid_idempotency_key")
        serializer = ExecutionBatchSerializer(data=request.data)
        if not serializer.is_valid():
            raise serializers.ValidationError(by_item_index(serializer.errors))
        items = [as_submission(item) for item in serializer.validated_data["executions"]]
        with admission_errors():
            executions = submissions.submit_batch(
                request.user, items, serializer.validated_data.get("callback_url", "")
            )
        body = {"task_ids": [str(execution.id) for execution in executions]}
        if executions[0].batch_id:
            body["batch_id"] = str(executions[0].batch_id)
        return Response(body, status=status.HTTP_202_ACCEPTED)


def as_submission(data: dict) -> submissions.Submission:
    return submissions.Submission(
        data["language"],
        data["code"],
        data["stdin"],
        data.get("timeout_seconds"),
        data.get("memory_mb"),
        files=tuple(data["files"]),
        args=tuple(data["args"]),
        callback_url=data.get("callback_url", ""),
        tests=tuple(data.get("tests") or ()),
        comparison=data.get("comparison", ""),
        abs_tolerance=data.get("abs_tolerance"),
        rel_tolerance=data.get("rel_tolerance"),
        stop_on_first_failure=data.get("stop_on_first_failure", False),
    )


def by_item_index(errors: dict) -> dict:
    """DRF reports the items' errors by index (a list, or a dict keyed by int); name the first bad item."""
    items = errors.get("executions")
    if isinstance(items, list):
        items = dict(enumerate(items))
    if isinstance(items, dict):
        for index, item in sorted((k, v) for k, v in items.items() if isinstance(k, int)):
            if item:
                return {f"executions[{index}]": item}
    return errors


class ExecutionDetailView(TenantScopedMixin, APIView):
    def get_throttles(self):
        # get() counts the request itself, in the round trip that reads the cached result.
        return [] if self.request.method in ("GET", "HEAD") else super().get_throttles()

    @extend_schema(
        summary="Read one execution",
        description="Another tenant's execution is a 404, like one that does not exist.",
        responses={200: ExecutionSerializer, **errors(404)},
    )
    def get(self, request: Request, execution_id) -> Response:
        allowed, retry_after, (raw,) = throttles.count(request.user, store.RESULT_KEY.format(execution_id))
        if not allowed:
            raise Throttled(retry_after)
        cached = store.owned_json(raw, request.user.id)
        if cached is not None:
            # Stored as the API writes it: no parsing, no serializer, no query.
            return HttpResponse(cached, content_type="application/json")
        execution = get_object_or_404(self.tenant_executions(), id=execution_id)
        return Response(execution.to_dict())


class ExecutionCancelView(TenantScopedMixin, APIView):
    """Stop a queued or running execution; cancelling a cancelled one again changes nothing."""

    @extend_schema(
        summary="Cancel an execution",
        description=(
            "A queued execution never runs; a running one is stopped and its sandbox removed. "
            "The answer is the execution, now `cancelled`; a second cancel changes nothing."
        ),
        request=None,
        responses={
            200: ExecutionSerializer,
            **errors(404),
            409: OpenApiResponse(ErrorSerializer, description="It already finished (`already_finished`)."),
        },
    )
    def post(self, request: Request, execution_id) -> Response:
        execution = get_object_or_404(self.tenant_executions().select_related("tenant"), id=execution_id)
        try:
            submissions.cancel(execution)
        except NotCancellable as exc:
            raise AlreadyFinished(f"The execution has already finished with status {exc.status!r}.") from None
        return Response(execution.to_dict())


class ExecutionEventsView(TenantScopedMixin, APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False):
        # Clients send Accept: text/event-stream; the stream is not DRF's to render, and errors are JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Follow an execution as server-sent events",
        description=(
            "`status` events (`{\"status\": …}`) as the execution's status changes, the first one being "
            "its status now; `output` events (`{\"stream\": \"stdout\", \"offset\": 0, \"length\": 6, "
            "\"data\": \"hello\\n\"}`; stream `stdout`, `stderr` or `compile`; offset and length in bytes, "
            "`truncated: true` on the last one of a stream cut at its cap) as the program writes, the "
            "output so far first; then one `execution` event with the execution (as GET returns it) once it "
            "has ended, and the end of the stream. Reconnecting with `Last-Event-ID` resumes after that "
            "event. Needs the project's web server (`python -m sandbox_project.serve`), which streams "
            "on its event loop; any other server answers 501. Another tenant's execution is a 404."
        ),
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            **errors(404),
            501: OpenApiResponse(
                ErrorSerializer, description="Served by another server, which cannot stream (`event_streams_unavailable`)."
            ),
        },
    )
    def get(self, request: Request, execution_id) -> Response:
        execution = get_object_or_404(self.tenant_executions().only("id", "tenant_id", "status", "output_pending"), id=execution_id)
        # The web server (sandbox_project/rsgi.py) streams the events; this only says what to stream,
        # and only to it: any other server would send the handoff (and its tenant id) as it is.
        if not request.META.get(events.STREAMS_ENVIRON_KEY):
            raise EventStreamsUnavailable()
        response = HttpResponse(content_type="text/event-stream")
        response[events.HANDOFF_HEADER] = events.handoff(execution, request.headers.get("Last-Event-ID", ""))
        return response


class ExecutionDeliveriesView(TenantScopedMixin, APIView):
    @extend_schema(
        summary="The webhook deliveries of an execution",
        description="Oldest first, with their attempts so far. Another tenant's execution is a 404.",
        responses={200: DeliverySerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, execution_id) -> Response:
        execution = get_object_or_404(self.tenant_executions(), id=execution_id)
        deliveries = Delivery.objects.owned_by(request.user).filter(execution=execution).order_by("created_at")
        return Response([delivery.to_dict() for delivery in deliveries])


class LanguagesView(APIView):
    @extend_schema(
        summary="The languages, their versions and limits",
        description="Each language's default limits and the most a request may ask for; the platform's others.",
        responses={200: LanguagesSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        versions = store.known_versions([images.sandbox_image(family) for family in images.families()])
        body = {
            "languages": [describe_language(language, versions.get(language.name)) for language in languages.CATALOG.values()],
            "limits": {
                "timeout_seconds": settings.SANDBOX_TIMEOUT_SECONDS,
                "memory_mb": settings.SANDBOX_MEMORY_MB,
                "cpus": settings.SANDBOX_CPUS,
                "output_limit_bytes": settings.SANDBOX_OUTPUT_LIMIT_BYTES,
                "max_code_bytes": settings.SANDBOX_MAX_CODE_BYTES,
                "max_stdin_bytes": settings.SANDBOX_MAX_STDIN_BYTES,
            },
        }
        return Response(LanguagesSerializer(body).data)


def describe_language(language: languages.Language, version: str | None) -> dict:
    defaults, maxima = limits.language_defaults(language), limits.language_maxima(language)
    compile_limits = language.compile.limits if language.compile else None
    return {
        "name": language.name,
        "label": language.label,
        "aliases": list(language.aliases),
        "extensions": list(language.extensions),
        "source": language.source,
        "compiled": language.compile is not None,
        "version": version,
        "limits": {"timeout_seconds": defaults.timeout_seconds, "memory_mb": defaults.memory_mb},
        "max_limits": {"timeout_seconds": maxima.timeout_seconds, "memory_mb": maxima.memory_mb},
        "compile_limits": compile_limits
        and {"timeout_seconds": compile_limits.timeout_seconds, "memory_mb": compile_limits.memory_mb},
    }


@csrf_exempt
def not_found(request, *args, **kwargs):
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
