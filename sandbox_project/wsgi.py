"""The WSGI application the web server (granian, sandbox_project/serve.py) runs.

Three things sit between the server and Django:
- a request under /api/ that carries an API key goes to a Django handler with the lean middleware
  list settings.API_KEY_MIDDLEWARE: no sessions, CSRF, messages or frame options, which only the
  browser uses;
- a body shorter than its Content-Length is an error, not a shorter body;
- a response with its whole body in memory goes back to the server as one piece.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")


class BodyIncomplete(OSError):
    """The client went away before sending its whole body (Django turns an OSError into UnreadablePostError)."""


class WholeBodyInput:
    """wsgi.input that refuses a body shorter than its Content-Length.

    granian ends a body cut short by a disconnection without an error, and Django would take what
    arrived ("print(") for the whole script. granian's reads block in Rust with no timeout, and a
    read moved to another thread stalls the process's other threads (tried, see the README's
    serving section), so there is no body deadline here: a proxy in front provides it.
    """

    def __init__(self, stream, length: int):
        self.stream = stream
        self.remaining = length

    def read(self, size: int | None = None) -> bytes:
        wanted = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if wanted <= 0:
            return b""
        data = self.stream.read(wanted)
        if len(data) < wanted:
            raise BodyIncomplete("the client sent less than its Content-Length")
        self.remaining -= len(data)
        return data

    def readline(self, size: int | None = None) -> bytes:
        if self.remaining <= 0:
            return b""
        line = self.stream.readline()
        if not line:
            raise BodyIncomplete("the client sent less than its Content-Length")
        self.remaining -= len(line)
        return line

    def __iter__(self):
        return iter(self.readline, b"")


def content_length(environ) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def lean_handler():
    """Django's WSGI handler with settings.API_KEY_MIDDLEWARE instead of settings.MIDDLEWARE."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    class LeanWSGIHandler(WSGIHandler):
        def load_middleware(self, is_async=False):
            # Django builds the chain from settings.MIDDLEWARE only; this runs once, at start-up.
            full = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.API_KEY_MIDDLEWARE
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = full

    return LeanWSGIHandler()


def build():
    from django.conf import settings

    full = get_wsgi_application()
    lean = lean_handler()

    def application(environ, start_response):
        length = content_length(environ)
        if length:
            environ["wsgi.input"] = WholeBodyInput(environ["wsgi.input"], length)
        # An empty X-API-Key is not a key: the session may still authenticate such a request.
        if environ["PATH_INFO"].startswith("/api/") and (
            environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_API_KEY", "").strip()
        ):
            response = lean(environ, start_response)
        else:
            response = full(environ, start_response)
        if not isinstance(response, HttpResponse):
            return response
        # granian sends a list in one piece with its Content-Length; anything else it streams
        # chunk by chunk through a channel, which costs more than a small JSON body does.
        try:
            return [response.content]
        finally:
            response.close()

    return application


application = build()
