"""Where a submission's time goes: POST /api/v1/execute driven in-process, without a server.

    .venv/bin/python bench/profile_ingest.py [-n 2000] [--database sqlite|postgres] [--cprofile]

Calls Django's WSGI handler directly, one request after another, on a private database and Redis
database (as the other benchmarks do), and times the parts of a request with wrappers that cost a
few microseconds each: the bare view through the same middleware, authentication, each kind of
SQL statement, Redis connects and round trips, the admission script, rq's job fields, the state
log line, rendering. `--cprofile` also writes the heaviest functions by cumulative time to
bench/results/profile_ingest.txt. A server's rate is bounded by its cores divided by the CPU time
a request takes here plus the server's own cost per request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, Stack  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def timed(name: str, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - started
            COUNTS[name] += 1

    return wrapper


def sql_timer(execute, sql, params, many, context):
    kind = sql.split(None, 1)[0].upper()
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        TIMES[f"sql {kind}"] += time.perf_counter() - started
        COUNTS[f"sql {kind}"] += 1


def instrument() -> None:
    import redis.connection
    from rest_framework import renderers

    from executions import scheduler, submissions
    from executions.api import auth

    auth.ApiKeyAuthentication.authenticate = timed("authentication", auth.ApiKeyAuthentication.authenticate)
    submissions.enqueue = timed("admission script (rate, quotas, job, queue)", submissions.enqueue)
    scheduler.job_args = timed("rq job fields (create_job, to_dict)", scheduler.job_args)
    submissions.log_state = timed("state log line", submissions.log_state)
    submissions.submit = timed("submissions.submit (checks + row + admission + log)", submissions.submit)
    renderers.JSONRenderer.render = timed("JSON rendering", renderers.JSONRenderer.render)
    connection = redis.connection.AbstractConnection
    connection.connect = timed("redis connect (+ handshake)", connection.connect)
    connection.send_packed_command = timed("redis send", connection.send_packed_command)
    connection.read_response = timed("redis read (round-trip wait)", connection.read_response)


def request(key: str, path: str) -> dict:
    body = b"print(1)"
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8100",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def drive(app, key: str, path: str, count: int) -> tuple[float, float]:
    """Wall and CPU seconds per request over `count` requests."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        response = app(request(key, path), lambda status, headers: None)
        b"".join(response)
        response.close()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    n = args.requests
    with Stack("profile", args.database) as stack:
        os.environ.update(stack.env)
        import django

        django.setup()
        import logging

        from django.core.handlers.wsgi import WSGIHandler
        from django.db import connection

        # A real server logs to a pipe or a file; a terminal here would only slow the loop down.
        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))
        app = WSGIHandler()
        drive(app, stack.key, "/api/v1/execute", 200)
        drive(app, stack.key, "/bench/bare", 200)
        # The static files' directory does not exist in a bench run; WhiteNoise only warns about it.
        bare_wall, bare_cpu = drive(app, stack.key, "/bench/bare", n)
        instrument()
        TIMES.clear(), COUNTS.clear()
        profiler = cProfile.Profile() if args.cprofile else None
        with connection.execute_wrapper(sql_timer):
            if profiler:
                profiler.enable()
            api_wall, api_cpu = drive(app, stack.key, "/api/v1/execute", n)
            if profiler:
                profiler.disable()
        connection.close()
    print(f"# Ingestion profile: POST /api/v1/execute in-process, {args.database}, {n} requests a measurement\n")
    print(f"API request: {api_wall * 1e3:.2f} ms wall, {api_cpu * 1e3:.2f} ms CPU (instrumented run); "
          f"bare view through the same middleware: {bare_wall * 1e3:.2f} ms wall, {bare_cpu * 1e3:.2f} ms CPU.\n")
    print("| part (nested parts are included in their parent) | calls a request | ms a request | share |")
    print("| --- | --- | --- | --- |")
    for name in sorted(TIMES, key=TIMES.get, reverse=True):
        print(f"| {name} | {COUNTS[name] / n:.2f} | {TIMES[name] / n * 1e3:.3f} | {TIMES[name] / n / api_wall:.0%} |")
    if profiler:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(60)
        stats.print_callees("authenticate|submit|enqueue|admit")
        (RESULTS / "profile_ingest.txt").write_text(out.getvalue())
        print("\ncProfile (by cumulative time): bench/results/profile_ingest.txt")


if __name__ == "__main__":
    main()
