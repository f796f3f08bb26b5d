"""Live events: GET /api/v1/executions/<id>/events, as server-sent events.

Each status change of an execution (executions/models.py sends the signals) is appended to a Redis
stream of its own, whose entry ids are the events' ids, and announced on one channel. While someone
watches (WATCHED_KEY), the worker appends the program's output there too, as it comes
(OutputPublisher). Django's view
only checks the caller and the execution (executions/api/views.py), and hands the request back to
the web server's event loop (sandbox_project/rsgi.py), which streams: what the stream holds after
the client's Last-Event-ID, then each new entry as the channel announces it, then, at a terminal
status, the execution itself, and the end. A waiting stream is a coroutine and an asyncio.Event:
no thread, and no Redis connection of its own (one subscription per process wakes them all).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
import time

import redis
import redis.asyncio
from django.conf import settings

from executions import store
from executions.models import Execution

log = logging.getLogger(__name__)

EVENTS_KEY = "rce:events:{}"
# Where each new event's execution id is announced, for every web process at once.
EVENTS_CHANNEL = "rce:events"
# The handoff from Django's view to the event loop: never sent to the client.
HANDOFF_HEADER = "X-Rce-Event-Stream"
# Set in the WSGI environ of the requests of the server that streams events (sandbox_project/rsgi.py):
# the view hands off to no other.
STREAMS_ENVIRON_KEY = "rce.event_streams"
# Set while a client watches the execution, for the worker: output is published only then.
WATCHED_KEY = "rce:watched:{}"
# A client's stream sets it again this often while open; it lapses this long after the last one goes.
WATCHED_TTL_SECONDS = 45
# A stream keeps its last events this long after the last one, for clients that reconnect.
EVENTS_TTL_SECONDS = 3600
# A bound far above what a run writes (its statuses, and output chunks bounded by the caps and the
# flush interval), so that trimming never drops events of a run a client may still be reading.
MAX_EVENTS = 10_000
# What one read takes from a stream.
READ_BATCH = 256
# Output is published at most this often per run, whatever the program writes: a flood costs a few
# Redis writes. A chunk after a quiet spell goes almost at once (LINGER_SECONDS).
FLUSH_SECONDS = 0.05
# Output waits this long for what follows it: print() writes a line and its newline apart.
LINGER_SECONDS = 0.005
# How often a run whose output nobody watches asks again whether someone does.
WATCH_CHECK_SECONDS = 0.25
# A comment this often keeps proxies from closing a quiet stream; the stream also says again then
# that it watches (WATCHED_KEY).
KEEPALIVE_SECONDS = 15
# Redis connections per web process for the streams' reads, besides the one subscription.
READ_CONNECTIONS = 8
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def record(execution_id, status: str) -> None:
    """Append a status change to the execution's stream and announce it; a Redis fault costs only the event."""
    key = EVENTS_KEY.format(execution_id)
    try:
        pipe = store.connection().pipeline(transaction=False)
        pipe.xadd(key, {"status": status}, maxlen=MAX_EVENTS)
        pipe.expire(key, EVENTS_TTL_SECONDS)
        pipe.publish(EVENTS_CHANNEL, str(execution_id))
        pipe.execute()
    except redis.RedisError:
        log.warning("execution %s: could not record its %s event", execution_id, status, exc_info=True)


class OutputPublisher:
    """Appends one sandbox stage's output to its execution's stream while someone watches.

    The runner calls flush() as output arrives and again at `due`; nothing is published more often
    than every FLUSH_SECONDS. What goes out is what the stage's OutputCollector kept, so the caps
    hold, and a chunk ends on a character boundary, so the chunks of a stream put together are
    exactly the text stored at the end. A run that nobody watches asks whether someone does at
    most every WATCH_CHECK_SECONDS, and only once it has output; once watched, it publishes all
    its output so far, then as it comes. A Redis fault costs only the live output.
    """

    def __init__(self, execution_id, stage: str = "run"):
        self.execution_id = str(execution_id)
        # A compile stage's stdout is the archive of what it made: only its diagnostics go out.
        self.streams = {"stderr": "compile"} if stage == "compile" else {"stdout": "stdout", "stderr": "stderr"}
        self.sent = dict.fromkeys(self.streams, 0)
        self.truncation_said: set[str] = set()
        self.flushed_at = self.checked_at = float("-inf")
        self.pending_since: float | None = None
        self.watched = False
        self.broken = False
        # When flush() should run again with nothing new (monotonic), or never.
        self.due = float("inf")

    def flush(self, output, final: bool = False) -> None:
        now = time.monotonic()
        self.due = float("inf")
        if self.broken or not self.unpublished(output):
            self.pending_since = None
            return
        if self.pending_since is None:
            self.pending_since = now
        due = max(self.pending_since + LINGER_SECONDS, self.flushed_at + FLUSH_SECONDS)
        if not final and now < due:
            self.due = due
            return
        try:
            if not self.is_watched(now):
                self.due = self.checked_at + WATCH_CHECK_SECONDS
                return
            self.publish(output, final)
        except redis.RedisError:
            log.warning("execution %s: could not publish its output; live output stops", self.execution_id, exc_info=True)
            self.broken = True
            return
        self.flushed_at = now
        self.pending_since = None

    def unpublished(self, output) -> bool:
        return any(
            len(getattr(output, attr)) > self.sent[attr]
            or (getattr(output, f"{attr}_truncated") and attr not in self.truncation_said)
            for attr in self.streams
        )

    def is_watched(self, now: float) -> bool:
        if not self.watched and now >= self.checked_at + WATCH_CHECK_SECONDS:
            self.checked_at = now
            self.watched = bool(store.connection().exists(WATCHED_KEY.format(self.execution_id)))
        return self.watched

    def publish(self, output, final: bool) -> None:
        key = EVENTS_KEY.format(self.execution_id)
        pipe = store.connection().pipeline(transaction=False)
        added = 0
        for attr, name in self.streams.items():
            truncated = getattr(output, f"{attr}_truncated")
            chunk = self.chunk(getattr(output, attr), attr, final or truncated)
            if chunk is None and not (truncated and attr not in self.truncation_said):
                continue
            offset, end, text = chunk or (self.sent[attr], self.sent[attr], "")
            fields = {"stream": name, "offset": offset, "length": end - offset, "data": text}
            if truncated:
                fields["truncated"] = 1
                self.truncation_said.add(attr)
            pipe.xadd(key, fields, maxlen=MAX_EVENTS)
            self.sent[attr] = end
            added += 1
        if not added:
            # Only part of a character so far: it goes with the rest of it.
            return
        pipe.expire(key, EVENTS_TTL_SECONDS)
        pipe.publish(EVENTS_CHANNEL, self.execution_id)
        pipe.execute()

    def chunk(self, buffer: bytearray, attr: str, final: bool) -> tuple[int, int, str] | None:
        """The unpublished bytes of one stream as (offset, end, text), up to the last whole character
        unless `final`; None if there are none."""
        offset = self.sent[attr]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # As the stored output (runs.as_text): NUL is not text PostgreSQL can store.
        text = decoder.decode(bytes(buffer[offset:]), final).replace("\x00", "\ufffd")
        end = len(buffer) - len(decoder.getstate()[0])
        return (offset, end, text) if end > offset else None


def watch(execution_id) -> None:
    """Tell the worker that a client watches this execution (see OutputPublisher)."""
    store.connection().set(WATCHED_KEY.format(execution_id), 1, ex=WATCHED_TTL_SECONDS)


def on_status_changed(sender, execution_id, status: str, **kwargs) -> None:
    record(execution_id, status)


def on_execution_settled(sender, execution_id, status: str, **kwargs) -> None:
    record(execution_id, status)


def handoff(execution: Execution, last_event_id: str) -> str:
    """What the event loop needs to stream this execution's events to its owner (HANDOFF_HEADER).

    A client that reconnects resumes after its Last-Event-ID. A new one first gets the output
    published so far and the status the stream has announced now, as of the stream's last entry
    read just before it: events after that entry follow, and one that the row already showed is not
    sent twice (a status never follows itself). The worker publishes output from now on (watch()).
    """
    data = {"execution_id": str(execution.id), "tenant_id": execution.tenant_id}
    if execution.status not in Execution.TERMINAL_STATUSES:
        try:
            watch(execution.id)
        except redis.RedisError:
            log.warning("execution %s: could not ask for its live output", execution.id, exc_info=True)
    if STREAM_ID.match(last_event_id):
        status = announced_status(execution)
        return json.dumps({**data, "after": last_event_id, "status": None, "current": status})
    try:
        last = store.connection().xrevrange(EVENTS_KEY.format(execution.id), count=1)
    except redis.RedisError:
        last = []
    after = last[0][0].decode() if last else "0-0"
    status = announced_status(execution)
    return json.dumps({**data, "after": after, "status": status, "current": status})


def announced_status(execution: Execution) -> str:
    """The row's status now, as the stream announces it: a run cancelled while running is still
    running until its worker has written its output (Execution.output_pending), so that the stream
    ends with that output."""
    execution.refresh_from_db(fields=["status", "output_pending"])
    return Execution.Status.RUNNING if execution.output_pending else execution.status


def frame(event: str, data: dict, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return "\n".join(lines) + "\n\n"


class Dispatcher:
    """One subscription per process to EVENTS_CHANNEL, waking the streams that wait on an execution."""

    def __init__(self):
        self.waiting: dict[str, set[asyncio.Event]] = {}
        self.task: asyncio.Task | None = None
        self.client: redis.asyncio.Redis | None = None
        # The server stops: streams end once they have sent what they have (their clients reconnect).
        self.closing = False

    def redis(self) -> redis.asyncio.Redis:
        if self.client is None:
            # Without the web's short socket timeout: the subscription is quiet for long stretches. A
            # few connections, waited for: one event wakes every stream of its execution at once.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.REDIS_URL.split("?")[0],
                max_connections=READ_CONNECTIONS,
                timeout=None,
                socket_connect_timeout=2,
                health_check_interval=30,
            )
            self.client = redis.asyncio.Redis(connection_pool=pool)
        return self.client

    def watch(self, execution_id: str) -> asyncio.Event:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.listen())
        event = asyncio.Event()
        self.waiting.setdefault(execution_id, set()).add(event)
        return event

    def forget(self, execution_id: str, event: asyncio.Event) -> None:
        events = self.waiting.get(execution_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self.waiting[execution_id]

    async def listen(self) -> None:
        while True:
            try:
                pubsub = self.redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(EVENTS_CHANNEL)
                # Anything announced while no subscription was live is read from the streams now.
                self.wake_all()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        for event in self.waiting.get(message["data"].decode(), ()):
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event subscription lost; subscribing again in 1 s", exc_info=True)
                await asyncio.sleep(1)

    def close(self) -> None:
        self.closing = True
        self.wake_all()

    def wake_all(self) -> None:
        for events in self.waiting.values():
            for event in events:
                event.set()

    def streams(self) -> int:
        return sum(len(events) for events in self.waiting.values())


dispatcher = Dispatcher()


def output_data(fields: dict) -> dict:
    data = {
        "stream": fields[b"stream"].decode(),
        "offset": int(fields[b"offset"]),
        "length": int(fields[b"length"]),
        "data": fields[b"data"].decode(),
    }
    if b"truncated" in fields:
        data["truncated"] = True
    return data


async def stream(send, disconnected: asyncio.Future, handoff: dict, final) -> None:
    """Send the events of handoff's execution after handoff["after"] until a terminal status, then
    the execution (`final`, a coroutine function), or until the client goes."""
    execution_id, last_id, status = handoff["execution_id"], handoff["after"], handoff["status"]
    key = EVENTS_KEY.format(execution_id)
    if status is not None:
        # A new client: the output so far, then the status now.
        await send_output_until(send, key, last_id)
        await send(frame("status", {"status": status}, last_id))
    event = dispatcher.watch(execution_id)
    try:
        while True:
            # Cleared before the read: an announcement during it sets the event again.
            event.clear()
            while True:
                entries = await dispatcher.redis().xrange(key, min=f"({last_id}", count=READ_BATCH)
                for entry_id, fields in entries:
                    last_id = entry_id.decode()
                    if b"stream" in fields:
                        await send(frame("output", output_data(fields), last_id))
                        continue
                    previous, status = status, fields[b"status"].decode()
                    if status != previous:
                        await send(frame("status", {"status": status}, last_id))
                if len(entries) < READ_BATCH:
                    break
            # A client resuming after the stream expired (or after the last status) still gets the end.
            if status in Execution.TERMINAL_STATUSES or (status is None and handoff["current"] in Execution.TERMINAL_STATUSES):
                await send(frame("execution", await final()))
                return
            if dispatcher.closing:
                return
            waited = asyncio.ensure_future(event.wait())
            done, _ = await asyncio.wait(
                {waited, disconnected}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            waited.cancel()
            if disconnected in done:
                return
            if not done:
                await send(": keep-alive\n\n")
                await watch_again(execution_id)
    finally:
        dispatcher.forget(execution_id, event)


async def watch_again(execution_id: str) -> None:
    try:
        await dispatcher.redis().set(WATCHED_KEY.format(execution_id), 1, ex=WATCHED_TTL_SECONDS)
    except redis.RedisError:
        log.warning("execution %s: could not ask again for its live output", execution_id, exc_info=True)


async def send_output_until(send, key: str, last_id: str) -> None:
    """The output events of the stream up to last_id, inclusive."""
    after = "-"
    while last_id != "0-0":
        entries = await dispatcher.redis().xrange(key, min=after, max=last_id, count=READ_BATCH)
        for entry_id, fields in entries:
            if b"stream" in fields:
                await send(frame("output", output_data(fields), entry_id.decode()))
        if len(entries) < READ_BATCH:
            return
        after = f"({entries[-1][0].decode()}"
