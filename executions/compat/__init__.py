"""Other platforms' APIs over this one's: Judge0 CE (judge0.py) and Piston v2 (piston.py).

Each dialect only translates: a request becomes a submissions.Submission admitted by
submissions.submit (quotas, tenancy, idempotency, fairness and metrics stay the platform's), and
an Execution is shown in the dialect's shape. Nothing here runs code or changes a status.
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import exceptions, status

from executions import submissions


def platform_refusal(
    exc: submissions.AdmissionError, error: Callable[[str, int], exceptions.APIException]
) -> exceptions.APIException | None:
    """An admission error that is not a request field's fault, as `error(message, status)`: a refusal
    by quota or rate (429, or 503 when the platform is overloaded, with Retry-After; the admission
    script counted it against the tenant's rate already), the queue unreachable (503), too large (413),
    another request's Idempotency-Key (409). None for a field's fault, which each dialect words itself."""
    if isinstance(exc, submissions.Refused):
        refused = error(exc.message, status.HTTP_503_SERVICE_UNAVAILABLE if isinstance(exc, submissions.Overloaded) else 429)
        refused.retry_after, refused.counted = exc.retry_after, True
        return refused
    for kind, code in (
        (submissions.QueueUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
        (submissions.TooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
        (submissions.IdempotencyConflict, status.HTTP_409_CONFLICT),
    ):
        if isinstance(exc, kind):
            return error(exc.message, code)
    return None
