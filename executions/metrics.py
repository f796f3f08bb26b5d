"""The engine's Prometheus metrics, in one place.

Callers just call them: every object here works whether or not anything scrapes it. With
PROMETHEUS_MULTIPROC_DIR set (make run, docker-compose), values written by the rq workers appear on
the web's /metrics too.
"""

from __future__ import annotations

import functools
import hmac
import os
import time

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from executions.models import Execution
from executions.sandbox import languages

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 5.5, 6, 8, 10, 15, 30)

EXECUTION_LATENCY = Histogram(
    "engine_execution_latency_seconds",
    "Time from a worker taking an execution to its terminal status (sandbox lifecycle included).",
    ["language"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "engine_queue_wait_seconds",
    "Time an execution waited in the queue before a worker took it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
EXECUTIONS = Counter("engine_executions", "Executions that reached a terminal status.", ["language", "status"])
SANDBOX_TIMEOUTS = Counter("engine_sandbox_timeouts", "Sandboxes killed at their wall-clock deadline.")
SANDBOX_OOM_KILLS = Counter("engine_sandbox_oom_kills", "Sandboxes whose memory limit killed a process.")
OUTPUT_TRUNCATIONS = Counter("engine_output_truncations", "Executions stopped at the output cap.")
SANDBOX_ERRORS = Counter("engine_sandbox_errors", "Executions the platform could not run (status error).")
REFUSED_JOBS = Counter("engine_refused_jobs", "Jobs in the queue that a worker refused: not the platform's own.")
REJECTED_REQUESTS = Counter("engine_rejected_requests", "Submissions refused, by reason.", ["reason"])
CANCELLATIONS = Counter(
    "engine_cancellations", "Executions cancelled, by the status they had then.", ["previous_status"]
)
WEBHOOK_ATTEMPTS = Counter(
    "engine_webhook_attempts",
    "Webhook delivery attempts, by what followed: delivered, pending (to be retried) or failed (given up).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_LATENCY = Histogram(
    "engine_webhook_attempt_seconds",
    "Time a webhook delivery attempt took, answered or not.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
)
ACTIVE_WORKERS = Gauge(
    "engine_active_workers_count", "Workers running a sandbox now.", multiprocess_mode="livesum"
)


# Every language and status starts at zero, so that rate() sees a series' first increment.
for _language in languages.NAMES:
    EXECUTION_LATENCY.labels(language=_language)
    for _status in Execution.TERMINAL_STATUSES:
        EXECUTIONS.labels(language=_language, status=_status)
for _reason in ("unauthorized", "rate_limit", "queue_quota", "overloaded", "unavailable", "bad_input"):
    REJECTED_REQUESTS.labels(reason=_reason)
for _outcome in ("delivered", "pending", "failed"):
    WEBHOOK_ATTEMPTS.labels(outcome=_outcome)
for _status in Execution.CANCELLABLE_STATUSES:
    CANCELLATIONS.labels(previous_status=_status)


class QueueDepthCollector:
    """engine_queue_depth, read from Redis when scraped, so it is never stale; and its ceiling.

    The ceiling (QUEUE_MAX_DEPTH) is a metric so that an alert can compare the depth with it.
    """

    CEILING_HELP = "Executions that may wait in the queue before submissions are refused (QUEUE_MAX_DEPTH)."

    def describe(self):
        # Registration asks for the names only: no Redis round trip at import time.
        yield GaugeMetricFamily("engine_queue_depth", "Executions waiting in the queue.")
        yield GaugeMetricFamily("engine_queue_max_depth", self.CEILING_HELP)

    def collect(self):
        from executions import scheduler

        family = GaugeMetricFamily("engine_queue_depth", "Executions waiting in the queue.")
        try:
            family.add_metric([], scheduler.depth())
        except redis.RedisError:
            family.add_metric([], float("nan"))
        yield family
        yield GaugeMetricFamily("engine_queue_max_depth", self.CEILING_HELP, value=settings.QUEUE_MAX_DEPTH)


class ApiRequestMetrics:
    """Middleware: two of django-prometheus's request metrics, for the API-key path (settings.API_KEY_MIDDLEWARE).

    Its Before and After middleware write about sixteen samples a request, each a lock, a getpid()
    and a write to a memory-mapped file in multiprocess mode: as much CPU as the rest of a cached
    GET. These two say what the API's requests need (how many, with which status, how long, for
    which view), under django-prometheus's own names, so that the browser path's series and these
    are the same series.
    """

    METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"))

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else None) or "<unnamed view>"
        record_api_request(response.status_code, view, request.method, time.perf_counter() - started)
        return response


def record_api_request(status: int, view: str, method: str, seconds: float) -> None:
    """ApiRequestMetrics' two samples, for the fast lane too (executions/api/fastlane.py)."""
    # As django-prometheus does: a label's values must stay few.
    method = method if method in ApiRequestMetrics.METHODS else "<invalid method>"
    responses, latency = api_request_series(status, view, method)
    responses.inc()
    latency.observe(seconds)


@functools.cache
def api_request_series(status: int, view: str, method: str):
    """The two series a request of this kind counts in, looked up once (labels() checks and locks
    on every call: ~5 us of a fast-lane request's ~170). Few kinds: statuses x views x methods."""
    requests = django_request_metrics()
    return (
        requests.responses_by_status_view_method.labels(status=str(status), view=view, method=method),
        requests.requests_latency_by_view_method.labels(view=view, method=method),
    )


@functools.cache
def django_request_metrics():
    from django_prometheus.middleware import Metrics

    return Metrics.get_instance()


def record_finished(language: str, status: str, seconds: float) -> None:
    EXECUTIONS.labels(language=language, status=status).inc()
    EXECUTION_LATENCY.labels(language=language).observe(seconds)
    counter = {
        "timed_out": SANDBOX_TIMEOUTS,
        "oom_killed": SANDBOX_OOM_KILLS,
        "output_limit_exceeded": OUTPUT_TRUNCATIONS,
        "error": SANDBOX_ERRORS,
    }.get(status)
    if counter is not None:
        counter.inc()


def refused_job() -> None:
    REFUSED_JOBS.inc()


def record_cancelled(language: str, previous_status: str) -> None:
    # Counted where the cancel happens (web or admin): a cancelled run's worker drops its result.
    EXECUTIONS.labels(language=language, status="cancelled").inc()
    CANCELLATIONS.labels(previous_status=previous_status).inc()


def record_delivery(outcome: str, seconds: float) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
    WEBHOOK_ATTEMPT_LATENCY.observe(seconds)


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        merged.register(QueueDepthCollector())
        return merged
    return REGISTRY


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    REGISTRY.register(QueueDepthCollector())


def presents_token(request: HttpRequest) -> bool:
    """Whether the request carries `Authorization: Bearer <METRICS_TOKEN>` (never, if none is set)."""
    token = settings.METRICS_TOKEN
    presented = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(presented.encode(), f"Bearer {token}".encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_TOKEN:
        if not presents_token(request):
            response = JsonResponse(
                {"error": {"code": "unauthorized", "message": "Metrics need the bearer token."}}, status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
