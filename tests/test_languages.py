"""GET /api/v1/languages: the languages, their versions as read from the sandbox image, the limits."""

from __future__ import annotations

import json

import pytest
import redis

from executions import store
from executions.sandbox import runtimes
from executions.sandbox.images import sandbox_image
from tests.conftest import run_worker
from tests.helpers import assert_error


def test_it_lists_the_languages_and_the_default_limits(alice, settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 4.5
    settings.SANDBOX_MEMORY_MB = 48
    response = alice.client.get("/api/v1/languages")
    assert response.status_code == 200
    body = response.json()
    assert [language["name"] for language in body["languages"]] == ["python", "bash"]
    assert body["limits"] == {
        "timeout_seconds": 4.5,
        "memory_mb": 48,
        "cpus": settings.SANDBOX_CPUS,
        "output_limit_bytes": settings.SANDBOX_OUTPUT_LIMIT_BYTES,
        "max_code_bytes": settings.SANDBOX_MAX_CODE_BYTES,
        "max_stdin_bytes": settings.SANDBOX_MAX_STDIN_BYTES,
    }


def test_the_versions_are_unknown_until_a_worker_has_read_them(alice):
    body = alice.client.get("/api/v1/languages").json()
    assert [language["version"] for language in body["languages"]] == [None, None]


def test_a_worker_reads_the_versions_from_the_image_once(transactional_db, alice, redis_conn, monkeypatch):
    # A worker's first maintenance pass runs the probe in a real sandbox.
    run_worker()
    body = alice.client.get("/api/v1/languages").json()
    versions = {language["name"]: language["version"] for language in body["languages"]}
    assert versions["python"].startswith("3.")
    assert versions["bash"].count(".") == 2
    # The image has not changed, so the next pass asks nothing of it.
    monkeypatch.setattr(runtimes, "probe", lambda: pytest.fail("probed the same image twice"))
    assert runtimes.record(redis_conn)["versions"] == versions


def test_a_different_image_is_asked_again(alice, redis_conn):
    key = store.RUNTIMES_KEY.format(sandbox_image())
    redis_conn.set(key, json.dumps({"image_id": "sha256:old", "versions": {"python": "2.7.18"}}))
    assert alice.client.get("/api/v1/languages").json()["languages"][0]["version"] == "2.7.18"
    entry = runtimes.record(redis_conn)
    assert entry["image_id"] == runtimes.image_id(sandbox_image())
    assert entry["versions"]["python"].startswith("3.")


@pytest.mark.no_database
def test_only_well_formed_versions_of_known_languages_are_kept():
    output = "python=3.11.2\nbash=5.2.15\nruby=3.1\nbash=<script>\npython=\n"
    assert runtimes.parse(output) == {"python": "3.11.2", "bash": "5.2.15"}
    assert runtimes.parse("python=3.11.2 && rm -rf /\n") == {}


def test_it_answers_without_redis(alice, monkeypatch):
    connection = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: connection)
    response = alice.client.get("/api/v1/languages")
    assert response.status_code == 200
    assert [language["version"] for language in response.json()["languages"]] == [None, None]


def test_it_needs_a_key(anonymous):
    assert_error(anonymous.get("/api/v1/languages"), 401, "missing_api_key")
