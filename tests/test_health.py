from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis

from executions import store, views
from executions.sandbox.images import sandbox_image
from tests.conftest import ROOT


def test_healthz_answers_without_dependencies(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_every_dependency(client, worker_process):
    # The engine's health comes from the workers' heartbeats: the web holds no engine client.
    deadline = time.monotonic() + 30
    while (response := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "docker": "ok"}}
    # A worker stopped during its start-up version probe may leave the probe's container to the
    # next worker's janitor: let the probe finish first.
    while not store.runtime_versions(sandbox_image()) and time.monotonic() < deadline:
        time.sleep(0.2)


TOKEN = "readyz-test-token"


@pytest.fixture
def operator(settings):
    """A request with the metrics token, which sees why a check failed."""
    settings.METRICS_TOKEN = TOKEN
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def test_readyz_is_unavailable_while_no_worker_reports_its_engine(db, client, redis_conn, operator):
    body = client.get("/readyz", **operator).json()
    assert body["status"] == "unavailable"
    assert "no sandbox worker has reported" in body["checks"]["docker"]
    redis_conn.set(store.ENGINE_KEY.format("host.1"), "unreachable: ConnectionError: engine down")
    assert client.get("/readyz", **operator).json()["checks"]["docker"].endswith("engine down")
    # One worker that reaches its engine is enough.
    redis_conn.set(store.ENGINE_KEY.format("host.2"), "ok")
    assert client.get("/readyz").status_code == 200


@pytest.mark.no_database
def test_the_web_never_imports_the_container_engine_client():
    code = "import django, sys; django.setup(); import sandbox_project.urls; print('docker' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "sandbox_project.settings"})
    assert done.stdout.strip() == "False"


def test_readyz_names_the_dependency_that_failed(db, client, monkeypatch, redis_conn, operator):
    redis_conn.set(store.ENGINE_KEY.format("host.1"), "ok")
    dead = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setitem(views.CHECKS, "redis", lambda: dead.ping())
    response = client.get("/readyz", **operator)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("unreachable: ConnectionError")
    assert body["checks"]["database"] == body["checks"]["docker"] == "ok"
    assert store.connection().ping()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {TOKEN}x"])
def test_readyz_shows_no_internal_detail_without_the_metrics_token(
    db, client, monkeypatch, redis_conn, operator, authorization
):
    redis_conn.set(store.ENGINE_KEY.format("host.1"), "ok")
    dead = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setitem(views.CHECKS, "redis", lambda: dead.ping())
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/readyz", **headers)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable", "docker": "ok"},
    }


def test_readyz_shows_no_detail_when_no_metrics_token_is_set(db, client, monkeypatch, settings):
    settings.METRICS_TOKEN = ""
    monkeypatch.setitem(views.CHECKS, "docker", lambda: 1 / 0)
    response = client.get("/readyz", HTTP_AUTHORIZATION="Bearer ")
    assert response.json()["checks"]["docker"] == "unavailable"


def test_readyz_checks_only_what_it_is_told(db, client, settings, monkeypatch):
    settings.READYZ_CHECKS = ["database", "redis"]
    monkeypatch.setitem(views.CHECKS, "docker", lambda: 1 / 0)
    assert client.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}
