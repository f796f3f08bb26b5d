"""One JSON error shape for the whole API: {"error": {"code": "...", "message": "..."}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse, UnreadablePostError
from django.views import csrf as csrf_views
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from executions import metrics

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with a stable machine-readable code; subclasses set status, code and message."""


class QueueUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "queue_unavailable"
    default_detail = "The execution queue is unavailable; nothing was created. Retry later."


class DatabaseUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = "The database is unavailable. Retry later."


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."

    def __init__(self, detail: str | None = None, details: dict | None = None):
        super().__init__(detail)
        # The field over its limit, if one is, as a validation error's `details` name it.
        self.details = details


class IdempotencyConflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was used in the last 24 hours for a different request."


class RequestTimeout(ApiError):
    status_code = status.HTTP_408_REQUEST_TIMEOUT
    default_code = "request_timeout"
    default_detail = "The request body did not arrive in time; nothing was created."


class QueueQuotaExceeded(ApiError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "queue_quota_exceeded"
    default_detail = "This tenant has as many executions queued or running as its quota allows."

    def __init__(self, limit: int, retry_after: int):
        super().__init__(
            f"This tenant has {limit} executions queued or running, its quota; retry when some have finished."
        )
        self.retry_after = retry_after


class Overloaded(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "overloaded"
    default_detail = "The platform's queue is full; nothing was created. Retry later."

    def __init__(self, retry_after: int):
        super().__init__()
        self.retry_after = retry_after


class AlreadyFinished(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_finished"
    default_detail = "The execution has already finished."


class EventStreamsUnavailable(ApiError):
    status_code = status.HTTP_501_NOT_IMPLEMENTED
    default_code = "event_streams_unavailable"
    default_detail = (
        "Live events need the platform's own web server (python -m sandbox_project.serve), which streams "
        "them; this server cannot. Poll GET /api/v1/executions/<task_id> instead."
    )


class BadRequest(ApiError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_request"
    default_detail = "The request is invalid."


# Codes for DRF's own exceptions, where its default code is not specific enough.
CODES = {
    exceptions.ParseError: "invalid_json",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details=None) -> dict:
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def first_code(codes) -> str:
    """The first machine-readable code of a (possibly nested) DRF validation error."""
    if isinstance(codes, dict):
        return first_code(next(iter(codes.values()), "invalid_request"))
    if isinstance(codes, list):
        return first_code(codes[0]) if codes else "invalid_request"
    return str(codes)


def first_message(detail) -> str:
    """A readable one-line message from a (possibly nested) DRF validation detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return first_message(detail[0])
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, UnreadablePostError):
        exc = RequestTimeout()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        log.error("database unavailable", exc_info=exc)
        exc = DatabaseUnavailable()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    count_rejection(exc)
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else None
        body = error_body(first_code(exc.get_codes()), first_message(exc.detail), details)
    else:
        body = plain_error_body(exc)
    response.data = body
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    return response


def plain_error_body(exc: exceptions.APIException) -> dict:
    """The body of an API error that is not a validation error."""
    code = CODES.get(type(exc)) or (exc.get_codes() if isinstance(exc.get_codes(), str) else "error")
    return error_body(code, str(exc.detail), getattr(exc, "details", None))


def count_rejection(exc) -> None:
    reason = rejection_reason(exc)
    if reason:
        metrics.REJECTED_REQUESTS.labels(reason=reason).inc()


def rejection_reason(exc) -> str | None:
    """A low-cardinality reason for the rejected-requests metric."""
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied)):
        return "unauthorized"
    if isinstance(exc, exceptions.Throttled):
        return "rate_limit"
    if isinstance(exc, QueueQuotaExceeded):
        return "queue_quota"
    if isinstance(exc, Overloaded):
        return "overloaded"
    if isinstance(exc, (QueueUnavailable, DatabaseUnavailable)):
        return "unavailable"
    if isinstance(exc, (exceptions.ValidationError, exceptions.ParseError, BadRequest, PayloadTooLarge, RequestTimeout,
                        exceptions.UnsupportedMediaType, IdempotencyConflict)):
        return "bad_input"
    return None


def json_error_view(status_code: int, code: str, message: str, default_view):
    """Django-level errors (no DRF view was reached): JSON under /api/, Django's pages elsewhere."""

    def view(request, exception=None):
        if not request.path.startswith("/api/"):
            if status_code == 500:
                return default_view(request)
            return default_view(request, exception)
        return JsonResponse(error_body(code, message), status=status_code)

    return view


handler400 = json_error_view(400, "bad_request", "The request could not be understood.", defaults.bad_request)
handler403 = json_error_view(403, "forbidden", "You may not do this.", defaults.permission_denied)
handler404 = json_error_view(404, "not_found", "Not found.", defaults.page_not_found)
handler500 = json_error_view(500, "internal_error", "Internal server error.", defaults.server_error)


def csrf_failure(request, reason: str = ""):
    """Django's CSRF refusal: JSON under /api/, Django's page elsewhere (settings.CSRF_FAILURE_VIEW)."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("csrf_failed", "CSRF verification failed: send the CSRF token, or an API key."), status=403)
    return csrf_views.csrf_failure(request, reason)
