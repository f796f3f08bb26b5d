from __future__ import annotations

import redis

from executions import jobs, views


def test_healthz_answers_without_dependencies(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_every_dependency(db, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "docker": "ok"}}


def test_readyz_names_the_dependency_that_failed(db, client, monkeypatch):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setitem(views.CHECKS, "redis", lambda: dead.ping())
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("unreachable: ConnectionError")
    assert body["checks"]["database"] == body["checks"]["docker"] == "ok"
    assert jobs.queue().connection.ping()


def test_readyz_checks_only_what_it_is_told(db, client, settings, monkeypatch):
    settings.READYZ_CHECKS = ["database", "redis"]
    monkeypatch.setitem(views.CHECKS, "docker", lambda: 1 / 0)
    assert client.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}
