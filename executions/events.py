"""Live status events: GET /api/v1/executions/<id>/events, as server-sent events.

Each status change of an execution (executions/models.py sends the signals) is appended to a Redis
stream of its own, whose entry ids are the events' ids, and announced on one channel. Django's view
only checks the caller and the execution (executions/api/views.py), and hands the request back to
the web server's event loop (sandbox_project/rsgi.py), which streams: what the stream holds after
the client's Last-Event-ID, then each new entry as the channel announces it, then, at a terminal
status, the execution itself, and the end. A waiting stream is a coroutine and an asyncio.Event:
no thread, and no Redis connection of its own (one subscription per process wakes them all).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

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
# A stream keeps its last events this long after the last one, for clients that reconnect.
EVENTS_TTL_SECONDS = 3600
MAX_EVENTS = 64
# A comment this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15
# Redis connections per web process for the streams' reads, besides the one subscription.
READ_CONNECTIONS = 8
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def record(execution_id, status: str) -> None:
    """Append a status change to the execution's stream and announce it; a Redis fault costs only the event."""
    key = EVENTS_KEY.format(execution_id)
    try:
        pipe = store.connection().pipeline(transaction=False)
        pipe.xadd(key, {"status": status}, maxlen=MAX_EVENTS, approximate=False)
        pipe.expire(key, EVENTS_TTL_SECONDS)
        pipe.publish(EVENTS_CHANNEL, str(execution_id))
        pipe.execute()
    except redis.RedisError:
        log.warning("execution %s: could not record its %s event", execution_id, status, exc_info=True)


def on_status_changed(sender, execution_id, status: str, **kwargs) -> None:
    record(execution_id, status)


def on_execution_ended(sender, execution_id, status: str, **kwargs) -> None:
    record(execution_id, status)


def handoff(execution: Execution, last_event_id: str) -> str:
    """What the event loop needs to stream this execution's events to its owner (HANDOFF_HEADER).

    A client that reconnects resumes after its Last-Event-ID. A new one first gets the status the
    row has now, as of the stream's last entry read just before it: events after that entry
    follow, and one that the row already showed is not sent twice (a status never follows itself).
    """
    data = {"execution_id": str(execution.id), "tenant_id": execution.tenant_id}
    if STREAM_ID.match(last_event_id):
        execution.refresh_from_db(fields=["status"])
        return json.dumps({**data, "after": last_event_id, "status": None, "current": execution.status})
    try:
        last = store.connection().xrevrange(EVENTS_KEY.format(execution.id), count=1)
    except redis.RedisError:
        last = []
    after = last[0][0].decode() if last else "0-0"
    execution.refresh_from_db(fields=["status"])
    return json.dumps({**data, "after": after, "status": execution.status, "current": execution.status})


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

    def wake_all(self) -> None:
        for events in self.waiting.values():
            for event in events:
                event.set()

    def streams(self) -> int:
        return sum(len(events) for events in self.waiting.values())


dispatcher = Dispatcher()


async def stream(send, disconnected: asyncio.Future, handoff: dict, final) -> None:
    """Send the events of handoff's execution after handoff["after"] until a terminal status, then
    the execution (`final`, a coroutine function), or until the client goes."""
    execution_id, last_id, status = handoff["execution_id"], handoff["after"], handoff["status"]
    if status is not None:
        await send(frame("status", {"status": status}, last_id))
    key = EVENTS_KEY.format(execution_id)
    event = dispatcher.watch(execution_id)
    try:
        while True:
            # Cleared before the read: an announcement during it sets the event again.
            event.clear()
            for entry_id, fields in await dispatcher.redis().xrange(key, min=f"({last_id}", count=MAX_EVENTS):
                last_id, previous, status = entry_id.decode(), status, fields[b"status"].decode()
                if status != previous:
                    await send(frame("status", {"status": status}, last_id))
            # A client resuming after the stream expired (or after the last status) still gets the end.
            if status in Execution.TERMINAL_STATUSES or (status is None and handoff["current"] in Execution.TERMINAL_STATUSES):
                await send(frame("execution", await final()))
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
    finally:
        dispatcher.forget(execution_id, event)
