"""The web server: granian serving Django through sandbox_project.rsgi, configured from the environment.

    python -m sandbox_project.serve

BIND (127.0.0.1:8000), WEB_WORKERS (2 processes), WEB_THREADS (32 request threads each, in
sandbox_project.rsgi), REQUEST_BODY_TIMEOUT_SECONDS (10: for a request's headers, and then again
for its body), ACCESS_LOG (off).
"""

from __future__ import annotations

import copy

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LOGGING_CONFIG

from sandbox_project.settings import envbool, envfloat, envint, envstr

# A request's line and headers together may take this many bytes; longer ones get 431. granian's
# own default (408 KiB) would let every request make the server parse and copy that much.
MAX_HEAD_BYTES = 16 * 1024


def server() -> Granian:
    host, _, port = envstr("BIND", "127.0.0.1:8000").rpartition(":")
    head_seconds = envfloat("REQUEST_BODY_TIMEOUT_SECONDS", 10)
    return Granian(
        "sandbox_project.rsgi:application",
        address=host.strip("[]"),
        port=int(port),
        interface=Interfaces.RSGI,
        # libuv's loop: 13 % less of the web's CPU a submission than asyncio's (requirements.in).
        loop=Loops.uvloop,
        # HTTP/1.1 only: one slow or hostile client is one connection, not many streams in one.
        http=HTTPModes.http1,
        websockets=False,
        workers=envint("WEB_WORKERS", 2),
        http1_settings=HTTP1Settings(
            header_read_timeout=min(60_000, max(1, int(head_seconds * 1000))),
            max_buffer_size=MAX_HEAD_BYTES,
        ),
        log_access=envbool("ACCESS_LOG", False),
        log_dictconfig=log_config(),
        respawn_failed_workers=True,
        # On SIGTERM a worker finishes its requests; a ?wait=30 may take that long.
        workers_kill_timeout=35,
    )


def log_config() -> dict:
    """granian's own logging, with API keys kept out of the access log's paths (Piston's clients
    carry theirs in the path)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "sandbox_project.logs.RedactFilter"}}
    config["handlers"]["access"]["filters"] = ["redact"]
    return config


if __name__ == "__main__":
    server().serve()
