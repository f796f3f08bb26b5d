"""Django under granian's RSGI interface: the body is read first, on the event loop, with a deadline.

granian's WSGI interface reads request bodies in blocking calls with no timeout (granian #728,
wontfix), so a client that sends its headers and then trickles or stalls its body would hold a
request thread for as long as it liked. Here the event loop reads the whole body, within
REQUEST_BODY_TIMEOUT_SECONDS and DATA_UPLOAD_MAX_MEMORY_SIZE, while holding no thread; only then
does Django's WSGI application (sandbox_project.wsgi) run, in a pool of WEB_THREADS threads. A
slow body costs a coroutine and its bytes so far, never a thread.

The WSGI environ is built here from the request alone: granian's WSGI interface would also copy the
server's whole environment (SECRET_KEY, any HTTP_PROXY) into every request's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from granian.rsgi import ProtocolClosed, ProtocolError

from sandbox_project.wsgi import application as django_application

# After the WSGI application, which sets Django up.
from executions import events  # noqa: E402
from executions.api import waiting  # noqa: E402

log = logging.getLogger(__name__)


class Refused(Exception):
    """The request ends here, before Django, with this status and error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ClientGone(Exception):
    """The client went away before it sent its whole body: there is no one to answer."""


class Response:
    """start_response, and what it was given."""

    def __init__(self):
        self.status = 500
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers, exc_info=None):
        self.status = int(status.split(" ", 1)[0])
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        raise NotImplementedError("write() is not supported; return the body instead")


def host_and_port(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


def environ_for(scope, body: bytes) -> dict:
    server, server_port = host_and_port(scope.server)
    client, client_port = host_and_port(scope.client)
    environ = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        # PEP 3333: the decoded path's bytes, as latin-1 (granian gives it decoded as UTF-8).
        "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": client,
        "REMOTE_PORT": client_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # This server streams what ExecutionEventsView hands back (stream_events()).
        events.STREAMS_ENVIRON_KEY: True,
    }
    for name, value in scope.headers.items():
        # "X-Api-Key" and "X_Api_Key" would both become HTTP_X_API_KEY: a header that a proxy in
        # front passed on as something else. Dropped, as nginx and gunicorn do.
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def call_django(app, environ: dict) -> tuple[int, list, bytes]:
    response = Response()
    result = app(environ, response)
    try:
        # Every response here is bounded (JSON, pages, static files): one piece, one Content-Length.
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return response.status, response.headers, body


def end_streams_on_shutdown() -> None:
    """On SIGTERM or SIGINT, end this process's event streams, then shut down as granian does.

    granian finishes open requests before a worker exits, and an event stream is open until its
    execution ends: a stopping server would wait for its kill timeout. Ended at once, their clients
    reconnect (to another process) with Last-Event-ID and miss nothing. granian 2.8 sets a worker's
    handlers in granian._signals.set_loop_signals, which each worker looks up after loading this
    module, and which returns the signal its handlers set: wrapped here, our handler replaces
    granian's and sets that signal after ending the streams. uvloop keeps its handlers out of
    Python's reach, so wrapping the setter is the one way that works with either loop. Without
    it (another granian), nothing changes. tests/test_server_shutdown.py checks the whole.
    """
    from granian import _signals

    granians = getattr(_signals, "set_loop_signals", None)
    if granians is None or getattr(granians, "ends_streams", False):
        return

    def set_loop_signals(loop):
        shutdown = granians(loop)
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, shutting_down, shutdown)
        return shutdown

    set_loop_signals.ends_streams = True
    _signals.set_loop_signals = set_loop_signals


def shutting_down(shutdown) -> None:
    events.dispatcher.close()
    shutdown.set()


def error(protocol, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [("content-type", "application/json"), ("connection", "close")]
    protocol.response_bytes(status, headers, body)


class Deadlines:
    """The body deadlines of the requests reading their bodies, kept in slots of TICK seconds that
    one timer empties as they pass: a request whose slot passes is cancelled (expired() then says
    it was its deadline). A request's deadline comes `seconds` to `seconds` + TICK after it starts.

    asyncio.timeout() made a timer for each request, and cancelled it: about 3-5 us of a
    submission's CPU. Entering and leaving a slot is a set's add and discard.
    """

    TICK = 0.25

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.slots: dict[int, set[asyncio.Task]] = {}
        self.expired_tasks: set[asyncio.Task] = set()
        self.ticking = False

    def enter(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> int:
        slot = int((loop.time() + self.seconds) / self.TICK) + 1
        tasks = self.slots.get(slot)
        if tasks is None:
            tasks = self.slots[slot] = set()
        tasks.add(task)
        if not self.ticking:
            self.ticking = True
            loop.call_at(slot * self.TICK, self.tick, loop)
        return slot

    def leave(self, task: asyncio.Task, slot: int) -> None:
        tasks = self.slots.get(slot)
        if tasks is not None:
            tasks.discard(task)
        # Cancelled at its deadline as its read ended, and the cancellation lost on the way: forgotten.
        self.expired_tasks.discard(task)

    def expired(self, task: asyncio.Task) -> bool:
        """Whether the task was cancelled here, at its deadline (once: it is forgotten)."""
        if task in self.expired_tasks:
            self.expired_tasks.discard(task)
            # The cancellation was ours, not the caller's: the task goes on to answer 408.
            task.uncancel()
            return True
        return False

    def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = int(loop.time() / self.TICK)
        for slot in [slot for slot in self.slots if slot <= now]:
            for task in self.slots.pop(slot):
                if not task.done():
                    self.expired_tasks.add(task)
                    task.cancel()
        if self.slots:
            loop.call_at(min(self.slots) * self.TICK, self.tick, loop)
        else:
            self.ticking = False


class DjangoOverRSGI:
    def __init__(self, app, threads: int, body_seconds: float, max_body: int):
        self.app = app
        self.threads = threads
        self.body_seconds = body_seconds
        self.deadlines = Deadlines(body_seconds)
        self.max_body = max_body
        self.executor: ThreadPoolExecutor | None = None
        # The busiest requests, answered on the event loop (executions/api/fastlane.py).
        self.fast_lane = None

    def __rsgi_init__(self, loop) -> None:
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="web")
        if settings.FAST_LANE:
            from executions.api.fastlane import FastLane

            self.fast_lane = FastLane()

    def __rsgi_del__(self, loop) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.fast_lane is not None:
            self.fast_lane.close()

    async def __rsgi__(self, scope, protocol) -> None:
        if scope.proto != "http":
            return
        # A deadline, not asyncio.wait_for(): that would make a task of every request's read.
        if self.body_seconds:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task(loop)
            slot = self.deadlines.enter(loop, task)
        try:
            body = await self.read_body(scope, protocol)
        except asyncio.CancelledError:
            if self.body_seconds and self.deadlines.expired(task):
                return error(protocol, 408, "request_timeout", "The request body did not arrive in time; nothing was created.")
            raise
        except Refused as refused:
            return error(protocol, refused.status, refused.code, refused.message)
        except ClientGone:
            return
        finally:
            if self.body_seconds:
                self.deadlines.leave(task, slot)
        if self.fast_lane is not None and await self.fast_lane.answer(scope, body, protocol):
            return
        if self.executor is None:
            self.__rsgi_init__(None)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.executor, call_django, self.app, environ_for(scope, body))
        handoff = [value for name, value in headers if name.lower() == events.HANDOFF_HEADER.lower()]
        if handoff:
            headers = [(name, value) for name, value in headers if name.lower() != events.HANDOFF_HEADER.lower()]
            return await self.stream_events(protocol, headers, json.loads(handoff[0]))
        protocol.response_bytes(status, headers, content)

    async def stream_events(self, protocol, headers: list, handoff: dict) -> None:
        """A view's event stream (executions/events.py), on this loop: a waiting client holds no thread."""
        headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        headers += [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
        transport = protocol.response_stream(200, headers)
        disconnected = asyncio.ensure_future(protocol.client_disconnect())
        loop = asyncio.get_running_loop()

        async def final() -> dict:
            found = await loop.run_in_executor(
                self.executor, waiting.finished, handoff["execution_id"], handoff["tenant_id"]
            )
            return found or {"task_id": handoff["execution_id"], "status": handoff["current"]}

        try:
            await events.stream(transport.send_str, disconnected, handoff, final)
        except (ProtocolClosed, ProtocolError, OSError):
            pass
        except Exception:
            log.exception("execution %s: event stream failed", handoff["execution_id"])
        finally:
            disconnected.cancel()

    async def read_body(self, scope, protocol) -> bytes:
        try:
            return await self.read_whole_body(scope, protocol)
        except (ProtocolClosed, ProtocolError):
            raise ClientGone() from None

    async def read_whole_body(self, scope, protocol) -> bytes:
        declared = scope.headers.get("content-length")
        if declared is None and "transfer-encoding" not in scope.headers:
            return b""
        if declared is not None:
            if not declared.isdigit():
                raise Refused(400, "bad_request", "Content-Length must be a whole number.")
            length = int(declared)
            if length > self.max_body:
                raise Refused(413, "payload_too_large", f"The request body is over {self.max_body} bytes.")
            if length == 0:
                return b""
            body = await protocol()
            if len(body) < length:
                # granian ends a body cut short by a disconnection without an error: never run
                # what arrived ("print(") as if it were the whole script.
                raise ClientGone()
            return body
        chunks, size = [], 0
        async for chunk in protocol:
            size += len(chunk)
            if size > self.max_body:
                raise Refused(413, "payload_too_large", f"The request body is over {self.max_body} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)


end_streams_on_shutdown()
application = DjangoOverRSGI(
    django_application,
    threads=settings.WEB_THREADS,
    body_seconds=settings.REQUEST_BODY_TIMEOUT_SECONDS,
    # Django refuses a bigger body anyway (RequestDataTooBig); this stops reading it at that size.
    max_body=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
)
