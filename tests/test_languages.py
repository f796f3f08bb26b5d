"""GET /api/v1/languages: the catalog's languages, their versions as read from the sandbox images, the limits."""

from __future__ import annotations

import json

import pytest
import redis

from executions import store
from executions.sandbox import images, languages, runtimes
from executions.sandbox.images import sandbox_image
from tests.helpers import assert_error


def test_it_lists_every_language_of_the_catalog_with_its_limits(alice, settings):
    settings.SANDBOX_TIMEOUT_SECONDS = 4.5
    settings.SANDBOX_MEMORY_MB = 48
    response = alice.client.get("/api/v1/languages")
    assert response.status_code == 200
    body = response.json()
    assert [language["name"] for language in body["languages"]] == list(languages.NAMES)
    assert len(body["languages"]) >= 12
    described = {language["name"]: language for language in body["languages"]}
    # Python follows the platform's settings; Java's defaults are its own, with room for the JVM.
    assert described["python"]["limits"] == {"timeout_seconds": 4.5, "memory_mb": 48}
    assert described["python"]["compiled"] is False and described["python"]["compile_limits"] is None
    assert described["java"]["limits"] == {"timeout_seconds": 4.5, "memory_mb": 256}
    assert described["java"]["max_limits"]["memory_mb"] == 1024
    assert described["java"]["source"] == "Main.java"
    assert described["rust"]["compile_limits"] == {"timeout_seconds": 20.0, "memory_mb": 512}
    assert "js" in described["javascript"]["aliases"] and ".js" in described["javascript"]["extensions"]
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
    assert {language["version"] for language in body["languages"]} == {None}


def test_a_worker_reads_every_images_versions_once(transactional_db, alice, redis_conn, monkeypatch):
    # One image per maintenance pass, each probed in a real sandbox, until every one is known.
    for _ in images.families():
        assert runtimes.record(redis_conn) is not None
    assert runtimes.record(redis_conn) is None
    body = alice.client.get("/api/v1/languages").json()
    versions = {language["name"]: language["version"] for language in body["languages"]}
    assert None not in versions.values(), versions
    assert versions["python"].startswith("3.")
    assert versions["bash"].count(".") == 2
    assert versions["java"].startswith("17")
    assert versions["go"].startswith("1.")
    # The images have not changed, so the next pass asks nothing of them.
    monkeypatch.setattr(runtimes, "probe", lambda family: pytest.fail("probed the same image twice"))
    assert runtimes.record(redis_conn) is None


def test_a_different_image_is_asked_again(alice, redis_conn):
    key = store.RUNTIMES_KEY.format(sandbox_image())
    redis_conn.set(key, json.dumps({"image_id": "sha256:old", "versions": {"python": "2.7.18"}}))
    assert alice.client.get("/api/v1/languages").json()["languages"][0]["version"] == "2.7.18"
    entry = runtimes.record(redis_conn)
    assert entry["image_id"] == runtimes.image_id(sandbox_image())
    assert entry["versions"]["python"].startswith("3.")


def test_an_image_whose_probe_fails_is_asked_again_later_not_on_every_pass(redis_conn, monkeypatch):
    def fail(family):
        raise runtimes.runner.SandboxError("no")

    monkeypatch.setattr(runtimes, "probe", fail)
    first = runtimes.record(redis_conn)
    assert first["failed"] and first["versions"] == {}
    key = store.RUNTIMES_KEY.format(sandbox_image(images.families()[0]))
    assert 0 < redis_conn.ttl(key) <= runtimes.RETRY_SECONDS
    # The next pass goes on to the next image.
    second = runtimes.record(redis_conn)
    assert second["image_id"] == runtimes.image_id(sandbox_image(images.families()[1]))


def test_workers_starting_together_ask_each_image_once(redis_conn, monkeypatch):
    asked = []
    monkeypatch.setattr(runtimes, "probe", lambda family: asked.append(family) or {})
    first = images.families()[0]
    # Another worker is asking the first image right now.
    redis_conn.set(store.RUNTIMES_PROBE_KEY.format(sandbox_image(first)), 1, ex=60)
    runtimes.record(redis_conn)
    runtimes.record(redis_conn)
    assert asked == images.families()[1:3]


@pytest.mark.no_database
def test_only_well_formed_versions_of_the_images_languages_are_kept():
    output = "python=3.11.2\nbash=5.2.15\nruby=3.1\nbash=<script>\npython=\n"
    assert runtimes.parse(output, "python") == {"python": "3.11.2", "bash": "5.2.15"}
    assert runtimes.parse("python=3.11.2 && rm -rf /\n", "python") == {}


@pytest.mark.no_database
def test_every_image_probes_each_of_its_languages():
    for family in images.families():
        script = runtimes.script(family)
        assert [line.split("=")[0].removeprefix('echo "') for line in script.splitlines()] == [
            language.name for language in languages.of_image(family)
        ]


def test_it_answers_without_redis(alice, monkeypatch):
    connection = redis.Redis.from_url("redis://127.0.0.1:1/15", socket_connect_timeout=1)
    monkeypatch.setattr(store, "connection", lambda: connection)
    response = alice.client.get("/api/v1/languages")
    assert response.status_code == 200
    assert {language["version"] for language in response.json()["languages"]} == {None}


def test_it_needs_a_key(anonymous):
    assert_error(anonymous.get("/api/v1/languages"), 401, "missing_api_key")
