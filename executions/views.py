"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from executions import metrics, store

log = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    store.connection().ping()


class EngineUnavailable(Exception):
    pass


def check_docker() -> None:
    # The web holds no engine client: the workers, which do, report their engine with their heartbeat.
    health = store.engine_health()
    if health != "ok":
        raise EngineUnavailable(health)


CHECKS = {"database": check_database, "redis": check_redis, "docker": check_docker}


def readyz(request: HttpRequest) -> JsonResponse:
    """Every dependency reachable: 200, else 503 naming each one that failed. Why it failed
    (exception text, addresses) is logged, and shown only to a request with the metrics token."""
    results = {}
    details = {}
    for name in settings.READYZ_CHECKS:
        check = CHECKS[name]
        try:
            check()
            results[name] = details[name] = "ok"
        except Exception as exc:
            results[name] = "unavailable"
            details[name] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
            log.warning("readyz: %s %s", name, details[name])
    ready = all(value == "ok" for value in results.values())
    shown = details if metrics.presents_token(request) else results
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": shown}, status=200 if ready else 503)
