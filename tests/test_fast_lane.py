"""The fast lane (executions/api/fastlane.py): raw submissions and cached reads on the event loop.

In-process against the real database and Redis: what it answers, what it leaves to Django, that
every 202 has its committed row and its queued job, and that each submission of a group is admitted
or refused on its own. Then served: the same requests to a server with the fast lane and to one
without get the same answers.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
import redis.asyncio
from django.db import connection, connections
from django.utils import timezone

from executions import scheduler, store
from executions.api import fastlane
from executions.api.auth import KEYS, KeyCache
from executions.models import ApiKey, Execution
from tests.conftest import queued_job_count, start_web_server, stop_web_server


class Headers:
    def __init__(self, headers: dict[str, str] | list[tuple[str, str]]):
        self.pairs = [(name.lower(), value) for name, value in (headers.items() if isinstance(headers, dict) else headers)]

    def items(self):
        return self.pairs


class Scope:
    def __init__(self, method: str, path: str, query: str = "", headers=None):
        self.method, self.path, self.query_string = method, path, query
        self.headers = Headers(headers or {})


class Protocol:
    def __init__(self):
        self.answer = None

    def response_bytes(self, status: int, headers: list, body: bytes) -> None:
        self.answer = (status, dict(headers), body)


def answer(lane, method: str, path: str, body: bytes = b"", query: str = "", **headers: str):
    """The fast lane's answer, or None where it leaves the request to Django."""
    protocol = Protocol()
    handled = asyncio.run(lane.answer(Scope(method, path, query, headers), body, protocol))
    return protocol.answer if handled else None


def answers(lane, count: int, key: str, body: bytes = b"print(1)") -> list:
    """`count` submissions at once, as concurrent requests on one event loop."""

    async def all_of_them():
        protocols = [Protocol() for _ in range(count)]
        scope = Scope("POST", "/api/v1/execute", "", {"authorization": f"Bearer {key}"})
        handled = await asyncio.gather(*(lane.answer(scope, body, protocol) for protocol in protocols))
        return [protocol.answer if ok else None for ok, protocol in zip(handled, protocols)]

    return asyncio.run(all_of_them())


@pytest.fixture
def lane(transactional_db, settings):
    settings.API_KEY_CACHE_SECONDS = 60
    KEYS.clear()
    yield fastlane.FastLane()
    KEYS.clear()


def authenticated(persona) -> str:
    """As Django's authentication leaves it: the key found, its use recorded."""
    response = persona.client.get("/api/v1/executions")
    assert response.status_code == 200
    return persona.key


def test_a_key_django_has_not_authenticated_is_left_to_django(lane, alice):
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {alice.key}") is None
    assert Execution.objects.count() == 0


def test_a_raw_submission_is_committed_and_queued_before_its_202(lane, alice):
    key = authenticated(alice)
    status, headers, body = answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")
    assert status == 202
    task_id = json.loads(body)["task_id"]
    assert json.loads(body) == {"task_id": task_id, "status": "queued"}
    assert headers["location"] == f"/api/v1/executions/{task_id}"
    execution = Execution.objects.get(id=task_id)
    assert (execution.tenant_id, execution.language, execution.code) == (alice.tenant.id, "python", "print(1)")
    assert scheduler.job_id(task_id, execution.attempts) in scheduler.express_queue().job_ids + scheduler.queue().job_ids


def test_the_key_may_come_in_x_api_key_and_the_language_in_the_query(lane, alice):
    key = authenticated(alice)
    status, _, body = answer(lane, "POST", "/api/v1/execute/", b"echo hi", query="language=bash", **{"x-api-key": key})
    assert status == 202
    assert Execution.objects.get(id=json.loads(body)["task_id"]).language == "bash"
    # An alias, in any case, as the API's other paths and the CLI take it.
    status, _, body = answer(lane, "POST", "/api/v1/execute", b"echo hi", query="language=SH", **{"x-api-key": key})
    assert (status, Execution.objects.get(id=json.loads(body)["task_id"]).language) == (202, "bash")


def test_concurrent_submissions_are_written_in_groups_and_each_gets_its_row_and_job(lane, alice, monkeypatch):
    key = authenticated(alice)
    sizes = []
    flush = lane.submits.flush
    monkeypatch.setattr(lane.submits, "flush", lambda group: sizes.append(len(group)) or flush(group))
    results = answers(lane, 60, key)
    assert [status for status, _, _ in results] == [202] * 60
    ids = {json.loads(body)["task_id"] for _, _, body in results}
    assert len(ids) == 60
    assert set(map(str, Execution.objects.values_list("id", flat=True))) == ids
    assert queued_job_count() == 60
    # While the first group was written, the others waited for the next.
    assert len(sizes) < 60 and sum(sizes) == 60


def test_each_submission_of_a_group_is_admitted_or_refused_on_its_own(lane, alice):
    alice.tenant.max_queued = 4
    alice.tenant.save()
    key = authenticated(alice)
    results = answers(lane, 10, key)
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202] * 4 + [429] * 6
    refused = [(headers, json.loads(body)) for status, headers, body in results if status == 429]
    assert all(body["error"]["code"] == "queue_quota_exceeded" and headers["retry-after"] == "5" for headers, body in refused)
    # Nothing is left of the refused ones.
    assert Execution.objects.count() == 4
    assert queued_job_count() == 4


def test_the_rate_is_counted_once_per_submission(lane, alice):
    alice.tenant.rate_per_minute = 3
    alice.tenant.save()
    key = authenticated(alice)  # one request of the three
    statuses = sorted(status for status, _, _ in answers(lane, 5, key))
    assert statuses == [202, 202, 429, 429, 429]
    assert Execution.objects.count() == 2


@pytest.mark.parametrize(
    "query, headers, body",
    [
        ("timeout_seconds=2", {}, b"print(1)"),
        ("wait=31", {}, b"print(1)"),
        ("wait=5&wait=6", {}, b"print(1)"),
        ("wait=1e1", {}, b"print(1)"),
        ("language=cobol", {}, b"print(1)"),
        ("", {"idempotency-key": "k1"}, b"print(1)"),
        ("", {}, b"   "),
        ("", {}, b"\xff\xfe"),
        ("", {}, b"print('\x00')"),
    ],
    ids=["options", "wait-out-of-range", "two-waits", "wait-exponent", "unknown-language", "idempotency-key", "empty", "not-utf8", "nul"],
)
def test_what_is_not_a_plain_valid_submission_is_left_to_django(lane, alice, query, headers, body):
    key = authenticated(alice)
    assert answer(lane, "POST", "/api/v1/execute", body, query=query, authorization=f"Bearer {key}", **headers) is None
    assert Execution.objects.count() == 0


def test_a_disabled_tenant_or_a_wrong_key_is_left_to_django(lane, alice):
    key = authenticated(alice)
    alice.tenant.is_active = False
    alice.tenant.save()  # empties this process's key cache, as it does Django's
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}") is None
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}x") is None
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Basic {key}") is None
    assert Execution.objects.count() == 0


@pytest.fixture
def clock(monkeypatch):
    """The key cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(KeyCache, "clock", staticmethod(lambda: now[0]))
    return now


def test_a_key_that_expired_from_the_cache_is_looked_up_once_for_all_the_requests_waiting(lane, alice, clock, monkeypatch):
    key = authenticated(alice)
    clock[0] += 61
    lookups = []
    find = ApiKey.find
    monkeypatch.setattr(ApiKey, "find", classmethod(lambda cls, plain: lookups.append(plain) or find(plain)))
    results = answers(lane, 20, key)
    assert [status for status, _, _ in results] == [202] * 20
    assert lookups == [key]
    # Cached again: the next ones need no lookup.
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")[0] == 202
    assert lookups == [key]


def test_a_key_revoked_elsewhere_is_left_to_django_once_it_expires(lane, alice, clock):
    key = authenticated(alice)
    # As another process revokes it: this one's cache is not emptied.
    ApiKey.objects.filter(tenant=alice.tenant).update(revoked_at=timezone.now())
    clock[0] += 61
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}") is None
    assert alice.client.post("/api/v1/execute", "print(1)", content_type="text/plain").status_code == 401
    assert Execution.objects.count() == 0


def test_a_keys_use_is_recorded_as_django_records_it(lane, alice):
    key = authenticated(alice)
    long_ago = timezone.now() - timedelta(hours=1)
    ApiKey.objects.filter(tenant=alice.tenant).update(last_used_at=long_ago)
    KEYS.touched(key, long_ago)
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")[0] == 202
    assert ApiKey.objects.get(tenant=alice.tenant).last_used_at > long_ago


def test_an_unreachable_queue_creates_nothing(lane, alice, monkeypatch):
    key = authenticated(alice)

    def unreachable(requests):
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(scheduler, "admit_each", unreachable)
    status, _, body = answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")
    assert (status, json.loads(body)["error"]["code"]) == (503, "queue_unavailable")
    assert Execution.objects.count() == 0


def test_a_group_the_database_refuses_is_left_to_django(lane, alice, monkeypatch):
    key = authenticated(alice)
    from django.db import OperationalError

    def refused(executions, rows=None):
        raise OperationalError("database is locked")

    monkeypatch.setattr(Execution, "insert_all", refused)
    assert answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}") is None
    assert Execution.objects.count() == 0 and queued_job_count() == 0


def test_a_group_that_fails_after_its_rows_were_written_removes_them_and_is_not_sent_to_django(lane, alice, monkeypatch):
    key = authenticated(alice)

    def broken(requests):
        raise ValueError("a bug")

    monkeypatch.setattr(scheduler, "admit_each", broken)
    status, _, body = answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")
    assert (status, json.loads(body)["error"]["code"]) == (503, "queue_unavailable")
    assert Execution.objects.count() == 0 and queued_job_count() == 0


def test_a_writer_connection_that_died_while_idle_costs_its_next_group_a_trip_through_django(lane, alice):
    # The group writer skips Django's health check (fastlane.trust_connections): a connection that
    # died since its last group fails that group's insert before any row, the requests go to
    # Django, and the group after gets a new connection.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's connections do not die while idle")
    key = authenticated(alice)

    def submit():
        return answer(lane, "POST", "/api/v1/execute", b"print(1)", authorization=f"Bearer {key}")

    assert submit()[0] == 202
    pid = lane.submits.executor.submit(lambda: connections["default"].connection.info.backend_pid).result()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert submit() is None
    assert submit()[0] == 202
    assert Execution.objects.count() == 2 and queued_job_count() == 2


def finished(persona) -> str:
    task_id = str(uuid.uuid4())
    store.cache_result(task_id, persona.tenant.id, {"task_id": task_id, "status": "completed", "stdout": "1\n"}, "completed")
    return task_id


def test_a_finished_execution_is_read_from_the_cache(lane, alice):
    key = authenticated(alice)
    task_id = finished(alice)
    status, headers, body = answer(lane, "GET", f"/api/v1/executions/{task_id}", authorization=f"Bearer {key}")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == {"task_id": task_id, "status": "completed", "stdout": "1\n"}


def test_a_queued_execution_is_read_from_the_database_as_django_renders_it(lane, alice):
    key = authenticated(alice)
    task_id = alice.submit("print(1)")
    status, _, body = answer(lane, "GET", f"/api/v1/executions/{task_id}", authorization=f"Bearer {key}")
    assert status == 200
    assert body == alice.client.get(f"/api/v1/executions/{task_id}").content


def test_another_tenants_execution_is_not_found_cached_or_not(lane, alice, bob):
    key = authenticated(alice)
    for task_id in (finished(bob), bob.submit("print(1)"), str(uuid.uuid4())):
        status, _, body = answer(lane, "GET", f"/api/v1/executions/{task_id}", authorization=f"Bearer {key}")
        assert (status, json.loads(body)["error"]["code"]) == (404, "not_found")


def test_ids_django_does_not_route_are_left_to_it(lane, alice):
    key = authenticated(alice)
    task_id = finished(alice)
    for path in (f"/api/v1/executions/{task_id.upper()}", f"/api/v1/executions/{task_id.replace('-', '')}"):
        assert answer(lane, "GET", path, authorization=f"Bearer {key}") is None, path


def test_a_read_redis_cannot_answer_is_left_to_django(lane, alice, monkeypatch):
    key = authenticated(alice)
    task_id = finished(alice)
    # Nothing listens on port 1.
    monkeypatch.setattr(store, "async_connection", lambda: redis.asyncio.Redis(port=1, socket_connect_timeout=1))
    assert answer(lane, "GET", f"/api/v1/executions/{task_id}", authorization=f"Bearer {key}") is None


def test_concurrent_reads_take_one_round_trip(lane, alice, monkeypatch):
    key = authenticated(alice)
    task_id = finished(alice)
    sizes = []
    flush = lane.reads.flush
    monkeypatch.setattr(lane.reads, "flush", lambda group: sizes.append(len(group)) or flush(group))

    async def reads():
        protocols = [Protocol() for _ in range(10)]
        scope = Scope("GET", f"/api/v1/executions/{task_id}", "", {"authorization": f"Bearer {key}"})
        await asyncio.gather(*(lane.answer(scope, b"", protocol) for protocol in protocols))
        return [protocol.answer[0] for protocol in protocols]

    assert asyncio.run(reads()) == [200] * 10
    assert sizes == [10]


def test_every_read_answered_here_counts_against_the_rate_once(lane, alice):
    alice.tenant.rate_per_minute = 4
    alice.tenant.save()
    key = authenticated(alice)  # the first of four
    task_id = finished(alice)
    paths = [f"/api/v1/executions/{task_id}", f"/api/v1/executions/{uuid.uuid4()}"] * 2
    statuses = [answer(lane, "GET", path, authorization=f"Bearer {key}")[0] for path in paths]
    assert statuses == [200, 404, 200, 429]



def test_reads_count_in_the_window_with_its_expiry_even_after_redis_forgot_the_script(lane, alice, redis_conn):
    key = authenticated(alice)
    task_id = finished(alice)
    path = f"/api/v1/executions/{task_id}"
    assert answer(lane, "GET", path, authorization=f"Bearer {key}")[0] == 200
    redis_conn.script_flush()
    assert answer(lane, "GET", path, authorization=f"Bearer {key}")[0] == 200
    (window,) = redis_conn.keys(scheduler.RATE_KEY.format(alice.tenant.id, "*"))
    assert int(redis_conn.get(window)) == 3  # the first, Django's, and these two
    assert 0 < redis_conn.ttl(window) <= 120

# Served: the same requests to the server with the fast lane and to one without.

@pytest.fixture
def two_servers(transactional_db):
    fast, fast_port = start_web_server(WEB_WORKERS="1", API_KEY_CACHE_SECONDS="60")
    plain, plain_port = start_web_server(WEB_WORKERS="1", API_KEY_CACHE_SECONDS="60", FAST_LANE="0")
    yield fast_port, plain_port
    stop_web_server(fast)
    stop_web_server(plain)


def request(port: int, method: str, path: str, key: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body, {"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    # What differs between any two answers, whoever gives them.
    headers = {name.lower(): value for name, value in response.getheaders()
               if name.lower() not in ("date", "server", "location", "content-length")}
    return response.status, headers, response.read()


def test_both_servers_answer_alike(two_servers, alice):
    alice.tenant.max_queued = 1
    alice.tenant.save()
    answers = []
    for port in two_servers:
        # The first request of a key goes through Django in both; the ones after it do not in the first.
        request(port, "GET", "/api/v1/executions", alice.key)
        status, headers, body = request(port, "POST", "/api/v1/execute", alice.key, b"print(1)")
        task_id = json.loads(body)["task_id"]
        answers.append((status, headers, json.loads(body).keys()))
        refused = request(port, "POST", "/api/v1/execute", alice.key, b"print(2)")
        answers.append((refused[0], refused[1], json.loads(refused[2])))
        store.cache_result(task_id, alice.tenant.id, {"task_id": "same", "status": "completed"}, "completed")
        answers.append(request(port, "GET", f"/api/v1/executions/{task_id}", alice.key))
        answers.append(request(port, "GET", f"/api/v1/executions/{uuid.uuid4()}", alice.key)[:2])
        Execution.objects.all().delete()
        store.connection().flushdb()
    fast, plain = answers[:4], answers[4:]
    for mine, djangos in zip(fast, plain):
        assert mine == djangos
    assert [answer[0] for answer in fast] == [202, 429, 200, 404]


def comparable(answer: tuple[int, dict, bytes]) -> tuple:
    """An answer without what differs from one execution to the next."""
    status, headers, body = answer
    data = json.loads(body)
    return status, headers, {name: value for name, value in data.items() if name not in ("task_id", "created_at", "started_at", "finished_at", "duration_ms")}


@pytest.mark.usefixtures("worker_process")
def test_both_servers_wait_alike(two_servers, alice):
    answers = []
    for port in two_servers:
        request(port, "GET", "/api/v1/executions", alice.key)
        answers.append(comparable(request(port, "POST", "/api/v1/execute?language=bash&wait=25", alice.key, b"echo hi")))
    assert answers[0] == answers[1]
    status, _, body = answers[0]
    assert (status, body["status"], body["stdout"]) == (200, "completed", "hi\n")


def test_both_servers_answer_202_when_the_wait_ends_first(two_servers, alice):
    answers = []
    for port in two_servers:
        request(port, "GET", "/api/v1/executions", alice.key)
        started = time.monotonic()
        answers.append(request(port, "POST", "/api/v1/execute?wait=0.5", alice.key, b"print(1)"))
        assert time.monotonic() - started >= 0.5
    assert [status for status, _, _ in answers] == [202, 202]
    assert answers[0][1] == answers[1][1]
    assert [json.loads(body)["status"] for _, _, body in answers] == ["queued", "queued"]


def test_a_waiting_submission_holds_no_thread(transactional_db, alice):
    # One request thread: a wait that held it (Django's path) would make the list below wait too.
    server, port = start_web_server(WEB_WORKERS="1", WEB_THREADS="1", API_KEY_CACHE_SECONDS="60")
    try:
        request(port, "GET", "/api/v1/executions", alice.key)
        waiting = threading.Thread(target=request, args=(port, "POST", "/api/v1/execute?wait=4", alice.key, b"print(1)"))
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert request(port, "GET", "/api/v1/executions", alice.key)[0] == 200
        assert time.monotonic() - started < 2
        assert waiting.is_alive()
        waiting.join(10)
    finally:
        stop_web_server(server)
