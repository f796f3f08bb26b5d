"""Real webhook receivers for the tests: an HTTP server on a loopback address, in a thread."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from dataclasses import dataclass


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every request; answers each with the next of `answers` (the last one repeats).

    An answer is a status code, or ("sleep", seconds, status), or ("redirect", location), or
    ("hold", status): wait until release() before answering.
    """

    def __init__(self, answers=(200,), host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None):
        self.answers = list(answers)
        self.tls = tls
        # The names TLS clients asked for (SNI).
        self.server_names: list[str | None] = []
        self.streamed = 0
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    index = len(receiver.received) - 1
                    receiver.arrived.notify_all()
                answer = receiver.answers[min(index, len(receiver.answers) - 1)]
                self.answer(answer)

            def answer(self, answer):
                location = None
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = answer[2]
                elif isinstance(answer, tuple) and answer[0] == "hold":
                    receiver.released.wait(60)
                    answer = answer[1]
                elif isinstance(answer, tuple) and answer[0] == "redirect":
                    answer, location = 302, answer[1]
                elif isinstance(answer, tuple) and answer[0] == "stream":
                    return self.stream(answer[1])
                elif isinstance(answer, tuple) and answer[0] == "drip":
                    return self.drip(answer[1])
                try:
                    self.send_response(answer)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    # The platform gave up waiting and closed the connection.
                    pass

            def stream(self, status):
                """An answer without end, until the client hangs up; receiver.streamed counts its bytes."""
                self.send_response(status)
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while receiver.streamed < 1 << 30:
                        self.wfile.write(chunk)
                        receiver.streamed += len(chunk)
                except OSError:
                    pass

            def drip(self, interval):
                """Headers without end, one byte every `interval` seconds, until the client hangs up."""
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    for _ in range(int(120 / interval)):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(interval)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} requests arrived, not {count}, in {timeout}s")
            return list(self.received)
