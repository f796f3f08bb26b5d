"""The rq worker that runs sandboxes: `python manage.py rqworker sandbox` uses it (settings.RQ)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections
from prometheus_client import start_http_server
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from executions import metrics, reconciler
from executions.sandbox import janitor
from executions.sandbox.runner import docker_api

log = logging.getLogger(__name__)


class SandboxWorker(SimpleWorker):
    """Runs jobs in its own process: isolation comes from the container, so forking buys nothing.

    Its maintenance pass, on start and every WORKER_MAINTENANCE_INTERVAL seconds, also removes
    stale sandbox containers and reconciles executions that lost their job or worker.
    """

    def __init__(self, *args, **kwargs):
        # Jobs are JSON on both sides, whatever serializer the command line named.
        kwargs["serializer"] = JSONSerializer
        kwargs["maintenance_interval"] = settings.WORKER_MAINTENANCE_INTERVAL
        # A short TTL makes the idle dequeue wake up often enough for the maintenance pass.
        kwargs["worker_ttl"] = min(kwargs.get("worker_ttl") or 60, settings.WORKER_MAINTENANCE_INTERVAL + 15)
        super().__init__(*args, **kwargs)
        if settings.WORKER_METRICS_PORT:
            start_http_server(settings.WORKER_METRICS_PORT, registry=metrics.registry())

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        close_old_connections()
        try:
            janitor.sweep(docker_api())
        except Exception:
            log.exception("janitor pass failed")
        try:
            reconciler.reconcile()
        except Exception:
            log.exception("reconciler pass failed")
