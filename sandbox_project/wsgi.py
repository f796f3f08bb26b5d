from __future__ import annotations

import os
import socket
import time

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")


class BodyTimeout(OSError):
    """The request body did not arrive in time (Django turns an OSError into UnreadablePostError)."""


class DeadlineInput:
    """wsgi.input with one deadline for the whole body, enforced on the client's socket."""

    def __init__(self, stream, sock: socket.socket, deadline: float):
        self.stream = stream
        self.sock = sock
        self.deadline = deadline

    def call(self, method, *args):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.give_up()
        self.sock.settimeout(remaining)
        try:
            return method(*args)
        except (TimeoutError, socket.timeout):
            self.give_up()
        finally:
            self.sock.settimeout(None)

    def give_up(self):
        # The rest of the body will never be read: closing our reading side lets the server answer
        # and then close the connection, instead of waiting to drain the body.
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        raise BodyTimeout("the request body did not arrive in time")

    def read(self, *args):
        return self.call(self.stream.read, *args)

    def readline(self, *args):
        return self.call(self.stream.readline, *args)

    def readlines(self, *args):
        return self.call(self.stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


def with_body_deadline(app, seconds: float):
    """gunicorn's threads read bodies from blocking sockets: without a deadline, a client that sends
    its headers and then trickles its body holds a server thread for as long as it likes."""

    def wrapped(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None and seconds > 0:
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], sock, time.monotonic() + seconds)
        return app(environ, start_response)

    return wrapped


def build():
    from django.conf import settings

    django_app = get_wsgi_application()
    return with_body_deadline(django_app, settings.REQUEST_BODY_TIMEOUT_SECONDS)


application = build()
