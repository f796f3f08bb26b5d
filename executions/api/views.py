from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from executions import jobs
from executions.api.errors import (
    AlreadyFinished,
    BadRequest,
    IdempotencyConflict,
    Overloaded,
    PayloadTooLarge,
    QueueQuotaExceeded,
    QueueUnavailable,
    error_body,
)
from executions.api.serializers import (
    ExecutionCreateSerializer,
    ExecutionSerializer,
    check_sizes,
    validate_code,
)
from executions.models import Execution

# A tenant at its max_queued frees a place when one of its executions ends: a few seconds.
QUEUE_QUOTA_RETRY_AFTER_SECONDS = 5


class TenantScopedMixin:
    """Every tenant-owned lookup starts here: subclasses may narrow the queryset, never widen it."""

    request: Request

    def tenant_executions(self) -> QuerySet[Execution]:
        return Execution.objects.owned_by(self.request.user)


def accepted(execution: Execution, created: bool) -> Response:
    headers = {"Location": f"/api/v1/executions/{execution.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    body = {"task_id": str(execution.id), "status": execution.status}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > 255 or not all(" " <= c <= "~" for c in key):
        raise BadRequest(
            "Idempotency-Key must be at most 255 printable ASCII characters.", code="invalid_idempotency_key"
        )
    return key.strip()


def submit(request: Request, language: str, code: str, stdin: str) -> Response:
    problem = check_sizes(code, stdin)
    if problem:
        raise PayloadTooLarge(problem)
    allowed = request.user.limits().languages
    if language not in allowed:
        raise BadRequest(
            f"Language {language!r} is not allowed for this tenant; it may use: {', '.join(sorted(allowed))}.",
            code="language_not_allowed",
        )
    try:
        execution, created = jobs.submit(request.user, language, code, stdin, idempotency_key(request))
    except jobs.QueueUnavailable:
        raise QueueUnavailable() from None
    except jobs.Overloaded:
        raise Overloaded(settings.QUEUE_FULL_RETRY_AFTER_SECONDS) from None
    except jobs.QueueQuotaExceeded as exc:
        raise QueueQuotaExceeded(exc.limit, QUEUE_QUOTA_RETRY_AFTER_SECONDS) from None
    except jobs.IdempotencyConflict:
        raise IdempotencyConflict() from None
    return accepted(execution, created)


class ExecuteRawView(APIView):
    """The original design's endpoint: the raw body is the script; `?language=bash` for Bash."""

    # The body is read as bytes, whatever its content type (curl -d sends form encoding).
    parser_classes: list = []

    def post(self, request: Request) -> Response:
        language = request.query_params.get("language", Execution.Language.PYTHON)
        if language not in Execution.Language.values:
            raise BadRequest(
                f"Unknown language {language!r}; use one of: {', '.join(Execution.Language.values)}.",
                code="unknown_language",
            )
        try:
            code = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The body must be UTF-8 text.", code="invalid_encoding") from None
        if "\x00" in code:
            raise BadRequest("The code must not contain NUL characters.", code="nul_character")
        try:
            validate_code(code)
        except serializers.ValidationError:
            raise BadRequest("The code must not be empty.", code="empty_code") from None
        return submit(request, language, code, "")


class ExecutionPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class ExecutionListCreateView(TenantScopedMixin, generics.ListAPIView):
    serializer_class = ExecutionSerializer
    pagination_class = ExecutionPagination

    def get_queryset(self) -> QuerySet[Execution]:
        queryset = self.tenant_executions()
        for name, choices in (("status", Execution.Status), ("language", Execution.Language)):
            value = self.request.query_params.get(name)
            if value is None:
                continue
            if value not in choices.values:
                raise BadRequest(
                    f"Unknown {name} {value!r}; use one of: {', '.join(choices.values)}.", code=f"unknown_{name}"
                )
            queryset = queryset.filter(**{name: value})
        return queryset

    def post(self, request: Request) -> Response:
        serializer = ExecutionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return submit(request, data["language"], data["code"], data["stdin"])


class ExecutionDetailView(TenantScopedMixin, APIView):
    def get(self, request: Request, execution_id) -> Response:
        cached = jobs.cached_result(str(execution_id), request.user.id)
        if cached is not None:
            return Response(cached)
        execution = get_object_or_404(self.tenant_executions(), id=execution_id)
        return Response(ExecutionSerializer(execution).data)


class ExecutionCancelView(TenantScopedMixin, APIView):
    """Stop a queued or running execution; cancelling a cancelled one again changes nothing."""

    def post(self, request: Request, execution_id) -> Response:
        execution = get_object_or_404(self.tenant_executions().select_related("tenant"), id=execution_id)
        try:
            jobs.cancel(execution)
        except jobs.NotCancellable as exc:
            raise AlreadyFinished(f"The execution has already finished with status {exc.status!r}.") from None
        return Response(ExecutionSerializer(execution).data)


def not_found(request, *args, **kwargs):
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
