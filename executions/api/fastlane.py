"""The fast lane: the two busiest requests, answered on the web server's event loop.

A raw submission (`POST /api/v1/execute`, with at most `?language=`) and a read of an execution
(`GET /api/v1/executions/<id>`) are most of what clients send. Through Django each cost
about 1 ms of CPU served, most of it Django's and DRF's request cycle around a few microseconds of
work. Here (called by sandbox_project.rsgi) they skip that cycle, not its rules:

- the API key must be one this process's Django authenticated before (KeyCache.known), with its
  tenant active. Within API_KEY_CACHE_SECONDS it comes from the cache; then it is looked up again,
  and its use recorded, as Django's authentication does it, off the loop and once for all the
  requests that arrive meanwhile (each of them went to Django: 1 in 25 requests under load);
- a submission goes through admission's own check() and then submissions.submit_group(): group
  commit. Submissions that arrive while FAST_LANE_FLUSHES groups are being written wait for the
  next one; each group is one INSERT transaction and one Redis round trip of admission scripts
  (one per submission, each as atomic as a lone one). Every 202 is sent after its own row was
  committed and its job queued;
- reads are grouped too, but on the event loop itself (asyncio Redis, no thread: a poll is mostly a
  group of one, and the hand-off to a thread and back cost more than its work): one Redis round
  trip counts each against its tenant's rate and reads what the cache holds (a finished
  execution's result, or an unfinished one's mirrored state: executions.store); the others come
  from the database, in a thread, one precompiled statement each.

Anything else (no key in the cache, an Idempotency-Key, query options, an invalid script, a
database error before a group was written, Redis unreachable for a read) goes to Django
unchanged, which answers, counts and logs it as it always has: the fast lane only ever answers what Django would
have answered the same way. tests/test_fast_lane.py holds the two to the same bytes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, connections, router
from django.urls import resolve
from django.utils import timezone
from rest_framework.exceptions import NotFound, Throttled

from executions import events, metrics, scheduler, store, submissions
from executions.api import errors, throttles, views, waiting
from executions.api.auth import KEYS, plain_key, record_use, use_recorded
from executions.api.serializers import MAX_WAIT_SECONDS
from executions.models import Execution
from executions.sandbox import languages

log = logging.getLogger(__name__)

SUBMIT_PATHS = frozenset(("/api/v1/execute", "/api/v1/execute/"))
# Django's <uuid:> converter: lowercase, with dashes; anything else is Django's 404.
READ_PATH = re.compile(r"/api/v1/executions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?")
# A group waits for the one before it, so under load it holds what arrived meanwhile; this bounds
# how long the last of a group waits for the first.
MAX_GROUP = 128
# The headers Django's path sends with these answers (SecurityMiddleware's and DRF's), which the
# fast lane must match.
SUBMIT_ALLOW = "POST, OPTIONS"
READ_ALLOW = "GET, HEAD, OPTIONS"
SECURITY_HEADERS = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
]


class Fallback(Exception):
    """Django answers this request."""


# What a read found instead of an execution.
NOT_FOUND, DATABASE_DOWN = object(), object()


class Group:
    """Items handed to `flush` (in a thread; at most `parallel` at once) together: what arrives while
    every flush is busy goes into the next. `flush` returns one result per item, which its caller
    gets (an exception, but for an AdmissionError, is raised in it); if `flush` raises, every item's
    caller gets that.

    A flush that could start at once starts at the end of the loop's turn, with every item added
    in that turn. Started by the first item, a group was one item in 43 % of the flushes at
    bench/ingest.py's load (SQLite, 2 web processes: groups of 6.4 on average); started at the
    end of the turn, in 15 % (groups of 7.3). A flush costs a fixed part (a transaction, a thread
    hand-off, a Redis round trip) whatever its size.
    """

    def __init__(self, flush: Callable[[list], list], name: str, parallel: int = 1):
        self.flush = flush
        self.parallel = parallel
        self.executor = ThreadPoolExecutor(parallel, thread_name_prefix=name)
        self.pending: list[tuple[object, asyncio.Future]] = []
        self.flushing = 0
        # A start scheduled for the end of this turn of the loop.
        self.starting = False

    async def add(self, item):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((item, future))
        if not self.starting and self.flushing < self.parallel:
            self.starting = True
            loop.call_soon(self.start, loop)
        return await future

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.starting = False
        if not self.pending or self.flushing >= self.parallel:
            return
        group, self.pending = self.pending[:MAX_GROUP], self.pending[MAX_GROUP:]
        self.flushing += 1
        done = loop.run_in_executor(self.executor, self.flush, [item for item, _ in group])
        done.add_done_callback(lambda outcome: self.finished(loop, group, outcome))

    def finished(self, loop, group, outcome: asyncio.Future) -> None:
        self.flushing -= 1
        error = outcome.exception()
        results = [error] * len(group) if error else outcome.result()
        for (_, future), result in zip(group, results):
            if future.done():
                continue
            if isinstance(result, BaseException) and not isinstance(result, submissions.AdmissionError):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self.pending:
            self.start(loop)


class LoopGroup:
    """Group's batching for work done on the event loop itself: `flush` is a coroutine function,
    awaited for what arrived meanwhile, one group after another; no thread, no hand-off."""

    def __init__(self, flush: Callable[[list], Awaitable[list]]):
        self.flush = flush
        self.pending: list[tuple[object, asyncio.Future]] = []
        self.running: asyncio.Task | None = None

    async def add(self, item):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((item, future))
        if self.running is None:
            # It starts once the requests of this turn of the loop have added theirs.
            self.running = loop.create_task(self.run())
        return await future

    async def run(self) -> None:
        try:
            while self.pending:
                group, self.pending = self.pending[:MAX_GROUP], self.pending[MAX_GROUP:]
                try:
                    results = await self.flush([item for item, _ in group])
                except Exception as exc:
                    results = [exc] * len(group)
                for (_, future), result in zip(group, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.running = None


def write_group(group: list[submissions.Checked]) -> list:
    # Django does this around each request; a flush is this thread's request.
    close_old_connections()
    trust_connections()
    try:
        return submissions.submit_group(group)
    except submissions.NothingCreated as exc:
        # Each request goes through Django, which answers it (a 503 if the database is down).
        log.warning("fast lane: a group of %d submission(s) goes to Django: %r", len(group), exc.__cause__)
        close_old_connections()
        return [Fallback()] * len(group)
    except Exception:
        # Its rows were removed again if they could be: not sent to Django, which would make them twice.
        log.exception("fast lane: a group of %d submission(s) failed", len(group))
        close_old_connections()
        return [submissions.QueueUnavailable()] * len(group)


def trust_connections() -> None:
    """Skip the health check (CONN_HEALTH_CHECKS: a SELECT 1, a round trip) that this thread's
    connections would otherwise run before their first statement after close_old_connections().

    For write_group() only: if its connection died while idle, the group's insert fails before any
    row is written, its requests go to Django (NothingCreated -> Fallback), which answers them on
    its own connections, and the next group's close_old_connections() finds the error and replaces
    the connection. Measured on bench/ingest.py's PostgreSQL run: about 60 us of the writer's CPU
    and 25 us of PostgreSQL's a group (groups of 7 to 8), and 3 to 8 % more submissions a second
    (alternating runs). A read has no such fallback (a failed one is a 503), so it keeps the check.
    """
    for connection in connections.all(initialized_only=True):
        connection.health_check_done = True


async def read_cached(group: list[tuple[int, str]], rows: ThreadPoolExecutor) -> list:
    """For each (tenant id, execution id): the request's count in its tenant's rate window and the
    execution's JSON from the cache, or else its row (queued_or_running, in a `rows` thread);
    NOT_FOUND if it is not the tenant's, DATABASE_DOWN if the database failed. One round trip, on
    the event loop."""
    reads = [(tenant_id, store.RESULT_KEY.format(execution_id)) for tenant_id, execution_id in group]
    try:
        replies = await throttles.count_and_get(store.async_connection(), reads, time.time())
    except (redis.RedisError, OSError):
        # Django reads without Redis.
        return [Fallback()] * len(group)
    counts = [count for count, _ in replies]
    found = [store.owned_json(raw, tenant_id) for (tenant_id, _), (_, raw) in zip(group, replies)]
    misses = [execution_id for (_, execution_id), data in zip(group, found) if data is None]
    if misses:
        found_rows = await asyncio.get_running_loop().run_in_executor(rows, queued_or_running, misses)
        for index, ((tenant_id, execution_id), data) in enumerate(zip(group, found)):
            if data is None:
                row = found_rows.get(execution_id, NOT_FOUND) if found_rows is not None else DATABASE_DOWN
                found[index] = NOT_FOUND if isinstance(row, Execution) and row.tenant_id != tenant_id else row
    return list(zip(counts, found))


def queued_or_running(ids: list[str]) -> dict[str, Execution] | None:
    """The executions the cache does not hold (mostly queued or running), by id; None if the database failed.

    One statement per id, compiled once per database: Django compiling the query took 0.36 of a
    poll's 1.2 ms of CPU, and a poll's group is mostly one read.
    """
    close_old_connections()
    using = router.db_for_read(Execution)
    pk = Execution._meta.pk
    try:
        rows = [
            row
            for execution_id in ids
            for row in Execution.objects.raw(read_statement(using), [pk.get_db_prep_value(execution_id, connections[using])])
        ]
    except (DatabaseError, ValidationError):
        log.warning("fast lane: %d read(s) failed", len(ids), exc_info=True)
        close_old_connections()
        return None
    return {str(row.id): row for row in rows}


@functools.cache
def read_statement(using: str) -> str:
    """Django's SELECT of one Execution by id, for this database."""
    query = Execution.objects.using(using).filter(id=uuid.UUID(int=0)).query
    sql, _ = query.get_compiler(using=using).as_sql()
    return sql


def refresh_key(plain: str) -> None:
    """KEYS.find() and record_use(), as Django's authentication does them; if the database fails, the
    key stays stale and Django answers the request."""
    close_old_connections()
    try:
        key = KEYS.find(plain)
        if key is not None and key.tenant.is_active:
            record_use(key, plain)
    except DatabaseError:
        log.warning("fast lane: an API key could not be looked up", exc_info=True)
        close_old_connections()


class FastLane:
    def __init__(self):
        self.submits = Group(write_group, "fast-submit", settings.FAST_LANE_FLUSHES)
        self.rows = ThreadPoolExecutor(1, thread_name_prefix="fast-read")
        self.reads = LoopGroup(functools.partial(read_cached, rows=self.rows))
        self.key_lookups = ThreadPoolExecutor(1, thread_name_prefix="fast-keys")
        # The lookup under way for a key (refresh_key), which every request that presents it awaits.
        self.refreshing: dict[str, asyncio.Future] = {}
        self.submit_view = resolve("/api/v1/execute").view_name
        self.read_view = resolve("/api/v1/executions/00000000-0000-0000-0000-000000000000").view_name

    def close(self) -> None:
        """Finish the groups being written: their requests' rows are committed, their jobs queued."""
        self.submits.executor.shutdown(wait=True)
        self.rows.shutdown(wait=True)
        self.key_lookups.shutdown(wait=True)

    async def answer(self, scope, body: bytes, protocol) -> bool:
        """Answer the request here, or return False for Django to."""
        if settings.SECURE_SSL_REDIRECT or settings.API_KEY_CACHE_SECONDS <= 0:
            # Django's SecurityMiddleware decides on redirects and HSTS per request.
            return False
        started = time.perf_counter()
        try:
            if scope.method == "POST" and scope.path in SUBMIT_PATHS:
                view = self.submit_view
                status, headers, content = await self.submit(scope, body)
            elif scope.method == "GET" and (match := READ_PATH.fullmatch(scope.path)):
                view = self.read_view
                status, headers, content = await self.read(scope, match[1])
            else:
                return False
        except Fallback:
            return False
        protocol.response_bytes(status, headers, content)
        metrics.record_api_request(status, view, scope.method, time.perf_counter() - started)
        return True

    async def submit(self, scope, body: bytes) -> tuple[int, list, bytes]:
        key, quotas = await self.authenticated(scope.headers, extra=("idempotency-key",))
        language, wait = raw_options(scope.query_string)
        try:
            code = body.decode("utf-8")
            checked = submissions.checked(key.tenant, submissions.Submission(language, code), quotas)
        except (UnicodeDecodeError, submissions.AdmissionError):
            raise Fallback() from None
        result = await self.submits.add(checked)
        if isinstance(result, submissions.AdmissionError):
            return refusal(views.api_error(result), SUBMIT_ALLOW)
        headers = [
            ("content-type", "application/json"),
            ("location", f"/api/v1/executions/{result.id}"),
            ("allow", SUBMIT_ALLOW),
            *SECURITY_HEADERS,
        ]
        if wait:
            try:
                finished = await self.wait_for(str(result.id), key.tenant.id, wait)
            except Exception:
                # The execution is accepted whatever happens to the wait: 202, the client polls.
                log.warning("execution %s: waiting failed, answering 202", result.id, exc_info=True)
                finished = None
            if finished is not None:
                return 200, headers, finished
        return 202, headers, b'{"task_id":"%s","status":"queued"}' % str(result.id).encode()

    async def wait_for(self, execution_id: str, tenant_id: int, seconds: float) -> bytes | None:
        """?wait=N on the loop (as api.waiting does in a thread): the finished execution's JSON if it
        ends within `seconds`, else None, also when the process's WAIT_SLOTS are all taken. It
        wakes on the execution's events (events.dispatcher); a waiting request holds no thread."""
        if not waiting.slots().acquire(blocking=False):
            return None
        event = events.dispatcher.watch(execution_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while (found := await self.finished(execution_id, tenant_id)) is None:
                remaining = deadline - loop.time()
                if remaining <= 0 or events.dispatcher.closing:
                    # The server stops: the client gets its 202 now, not after the wait.
                    return None
                event.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    # One last look, as after any wake.
                    pass
            return found
        finally:
            events.dispatcher.forget(execution_id, event)
            waiting.slots().release()

    async def finished(self, execution_id: str, tenant_id: int) -> bytes | None:
        """The execution's JSON if it has finished: its cached result, or else its row (in a thread)."""
        try:
            data = store.owned_json(await store.async_connection().get(store.RESULT_KEY.format(execution_id)), tenant_id)
        except (redis.RedisError, OSError):
            data = None
        if data is not None:
            # A result, or its queued or running state mirrored: no query for that.
            return None if json.loads(data)["status"] in store.UNFINISHED else data
        # The cache was just read: only the row is left to look at.
        found = await asyncio.get_running_loop().run_in_executor(self.rows, waiting.finished_row, execution_id, tenant_id)
        return None if found is None else json.dumps(found, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()

    async def read(self, scope, execution_id: str) -> tuple[int, list, bytes]:
        if scope.query_string:
            raise Fallback()
        key, quotas = await self.authenticated(scope.headers)
        count, found = await self.reads.add((key.tenant.id, execution_id))
        if count > quotas.rate_per_minute:
            return refusal(Throttled(scheduler.rate_window_left(time.time())), READ_ALLOW)
        if found is NOT_FOUND:
            return refusal(NotFound(), READ_ALLOW)
        if found is DATABASE_DOWN:
            return refusal(errors.DatabaseUnavailable(), READ_ALLOW)
        if isinstance(found, Execution):
            found = json.dumps(found.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
        return 200, [("content-type", "application/json"), ("allow", READ_ALLOW), *SECURITY_HEADERS], found


    async def authenticated(self, headers, extra: tuple[str, ...] = ()) -> tuple:
        """The request's API key and its tenant's limits() (KEYS.recent(): not copies, not to be
        changed), if this process's Django authenticated the key before and it is still valid."""
        plain = presented_key(headers, extra)
        found = KEYS.recent(plain)
        if found is None or not use_recorded(found[0], timezone.now()):
            if not KEYS.known(plain):
                # Django looks it up, and refuses a wrong key: no flood of wrong keys costs two lookups.
                raise Fallback()
            await asyncio.shield(self.refresh(plain))
            found = KEYS.recent(plain)
            # Django records a key's use: one whose lookup or write failed is Django's to answer.
            if found is None or not use_recorded(found[0], timezone.now()):
                raise Fallback()
        # Django refuses a disabled tenant's key.
        if not found[0].tenant.is_active:
            raise Fallback()
        return found

    def refresh(self, plain: str) -> asyncio.Future:
        future = self.refreshing.get(plain)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self.key_lookups, refresh_key, plain)
            self.refreshing[plain] = future
            future.add_done_callback(lambda _: self.refreshing.pop(plain, None))
        return future


def presented_key(headers, extra: tuple[str, ...] = ()) -> str:
    """The API key the request presents, in one header; Fallback for anything else (none, two, or one of `extra`)."""
    seen: dict[str, str] = {}
    for name, value in headers.items():
        if name in ("authorization", "x-api-key", *extra):
            if name in seen:
                raise Fallback()
            seen[name] = value
    if any(name in seen for name in extra):
        raise Fallback()
    try:
        plain = plain_key(seen.get("authorization", ""), seen.get("x-api-key", ""))
    except ValueError:
        raise Fallback() from None
    if not plain:
        raise Fallback()
    return plain


# What ?wait= the fast lane takes itself; anything else (out of range, another spelling) Django
# checks and answers.
WAIT = re.compile(r"[0-9]{1,2}(\.[0-9]{1,6})?")


def raw_options(query: str) -> tuple[str, float | None]:
    """The language's name (an alias as Django's path reads it: ExecuteRawView) and ?wait=, if given."""
    if not query:
        return "python", None
    options = parse_qsl(query, keep_blank_values=True)
    found = dict(options)
    if len(found) != len(options) or set(found) - {"language", "wait"}:
        raise Fallback()
    wait = None
    if "wait" in found:
        if not WAIT.fullmatch(found["wait"]) or not 0 < float(found["wait"]) <= MAX_WAIT_SECONDS:
            raise Fallback()
        wait = float(found["wait"])
    language = found.get("language", "python")
    return languages.name_of(language) or language, wait


def refusal(exc, allow: str) -> tuple[int, list, bytes]:
    """An API error as Django's path answers it (errors.exception_handler), counted in the same metric."""
    errors.count_rejection(exc)
    body = json.dumps(errors.plain_error_body(exc), separators=(",", ":"), ensure_ascii=False)
    headers = [("content-type", "application/json")]
    # DRF's handler writes a Throttled's wait with "%d"; errors.exception_handler the others' retry_after.
    retry_after = getattr(exc, "retry_after", None) or (isinstance(exc, Throttled) and exc.wait)
    if retry_after:
        headers.append(("retry-after", "%d" % retry_after))
    headers += [("allow", allow), *SECURITY_HEADERS]
    return exc.status_code, headers, body.encode()
