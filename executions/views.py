"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from executions import store


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
    """Every dependency reachable: 200, else 503 naming each one that failed and why."""
    results = {}
    for name in settings.READYZ_CHECKS:
        check = CHECKS[name]
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
