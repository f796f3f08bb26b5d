"""Where a submission's time goes: POST /api/v1/execute driven in-process, without a server.

    .venv/bin/python bench/profile_ingest.py [-n 2000] [--database sqlite|postgres] [--cprofile]

Calls Django's WSGI handler directly, one request after another, on a private database and Redis
database (as the other benchmarks do). First it measures, against the code as it is, each change
the README's Benchmarks section proposes, applied in this process only and interleaved in blocks
so that a busy machine's noise hits all alike:

    cached-queue     one rq Queue (and Redis connection pool) per process, not one per request
    no-atomic        the INSERT without transaction.atomic() (BEGIN and COMMIT) around it
    no-health-check  CONN_HEALTH_CHECKS off (no SELECT 1 round trip on a request's first query)
    no-log           no INFO log line per submission
    no-metrics       no django-prometheus middleware

Then it times the parts of a request with wrappers that cost a few microseconds each: the bare
view through the same middleware, authentication, each kind of SQL statement, Redis connects and
round trips, the enqueue, the state log line, rendering. `--cprofile` also writes the heaviest
functions by cumulative time to bench/results/profile_ingest.txt. A server's rate is bounded by
its cores divided by the CPU time a request takes here plus the server's own cost per request.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
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

    from executions import jobs
    from executions.api import auth

    auth.ApiKeyAuthentication.authenticate = timed("authentication", auth.ApiKeyAuthentication.authenticate)
    jobs.enqueue = timed("enqueue (rq, Redis)", jobs.enqueue)
    jobs.log_state = timed("state log line", jobs.log_state)
    jobs.submit = timed("jobs.submit (row + enqueue + log)", jobs.submit)
    renderers.JSONRenderer.render = timed("JSON rendering", renderers.JSONRenderer.render)
    connection = redis.connection.AbstractConnection
    connection.connect = timed("redis connect (+ handshake)", connection.connect)
    connection.send_packed_command = timed("redis send", connection.send_packed_command)
    connection.read_response = timed("redis read (round-trip wait)", connection.read_response)


class Variants:
    """Each proposed change as a switch, so that it can be measured against the code as it is."""

    names = ("cached-queue", "no-atomic", "no-health-check", "no-log", "no-metrics")

    def __init__(self, stack_key: str):
        import django_rq
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.db import transaction

        from executions import jobs

        self.key = stack_key
        self.jobs = jobs
        self.queue = jobs.queue
        self.cached = django_rq.get_queue(settings.SANDBOX_QUEUE, commit_mode="auto")
        self.transaction = transaction
        self.app = WSGIHandler()
        middleware = settings.MIDDLEWARE
        # The handler reads MIDDLEWARE once, when it is built.
        settings.MIDDLEWARE = [m for m in middleware if "prometheus" not in m]
        self.app_without_metrics = WSGIHandler()
        settings.MIDDLEWARE = middleware
        self.current = self.app

    def set(self, names: tuple[str, ...]) -> None:
        import contextlib
        import logging
        import types

        from django.db import connection

        self.jobs.queue = (lambda: self.cached) if "cached-queue" in names else self.queue
        # A lone INSERT commits atomically by itself: the transaction only adds BEGIN and COMMIT.
        self.jobs.transaction = (
            types.SimpleNamespace(atomic=contextlib.nullcontext) if "no-atomic" in names else self.transaction
        )
        # Django copies the setting when it connects; the attribute is what requests read.
        connection.settings_dict["CONN_HEALTH_CHECKS"] = "no-health-check" not in names
        connection.health_check_enabled = "no-health-check" not in names
        logging.getLogger("executions.jobs").setLevel(logging.WARNING if "no-log" in names else logging.NOTSET)
        self.current = self.app_without_metrics if "no-metrics" in names else self.app


def backend_cpu() -> tuple[int, float]:
    """The PostgreSQL backend serving our connection, and the CPU seconds it has used ((0, 0) on SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0, 0.0
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(variants: Variants, candidates: list[tuple[str, ...]], requests: int, rounds: int) -> list[dict]:
    """Interleave blocks of each candidate (the code as it is first), so that noise hits all alike.

    Wall time is the median of the blocks; CPU time (ours, and the database backend's) is summed.
    """
    walls: dict[tuple, list[float]] = defaultdict(list)
    cpu: dict[tuple, float] = defaultdict(float)
    database_cpu: dict[tuple, float] = defaultdict(float)
    database_requests: dict[tuple, int] = defaultdict(int)
    block = max(1, requests // rounds)
    for _ in range(rounds):
        for names in [(), *candidates]:
            variants.set(names)
            pid, before = backend_cpu()
            wall, process_cpu = drive(variants.current, variants.key, "/api/v1/execute", block)
            # Django reconnects when CONN_MAX_AGE runs out: a new backend's counter starts afresh.
            after_pid, after = backend_cpu()
            if after_pid == pid:
                database_cpu[names] += after - before
                database_requests[names] += block
            walls[names].append(wall)
            cpu[names] += process_cpu * block
    variants.set(())
    total = block * rounds
    return [
        {
            "change": " + ".join(names) or "none (the code as it is)",
            "wall_ms": statistics.median(walls[names]) * 1e3,
            "cpu_ms": cpu[names] / total * 1e3,
            "database_cpu_ms": database_cpu[names] / max(1, database_requests[names]) * 1e3,
        }
        for names in [(), *candidates]
    ]


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

        from django.db import connection

        # A real server logs to a pipe or a file; a terminal here would only slow the loop down.
        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))
        variants = Variants(stack.key)
        drive(variants.app, stack.key, "/api/v1/execute", 200)
        drive(variants.app, stack.key, "/bench/bare", 200)
        # The static files' directory does not exist in a bench run; WhiteNoise only warns about it.
        bare_wall, bare_cpu = drive(variants.app, stack.key, "/bench/bare", n)
        candidates = [(name,) for name in Variants.names] + [Variants.names]
        rows = compare(variants, candidates, n, rounds=10)
        instrument()
        TIMES.clear(), COUNTS.clear()
        profiler = cProfile.Profile() if args.cprofile else None
        with connection.execute_wrapper(sql_timer):
            if profiler:
                profiler.enable()
            api_wall, api_cpu = drive(variants.app, stack.key, "/api/v1/execute", n)
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
    print("\nEach proposed change against the code as it is (interleaved blocks, medians):\n")
    print("| change | wall ms | Django CPU ms | database CPU ms | CPU gain (both) |")
    print("| --- | --- | --- | --- | --- |")
    base = rows[0]["cpu_ms"] + rows[0]["database_cpu_ms"]
    for row in rows:
        gain = 1 - (row["cpu_ms"] + row["database_cpu_ms"]) / base
        print(f"| {row['change']} | {row['wall_ms']:.2f} | {row['cpu_ms']:.2f} | {row['database_cpu_ms']:.2f} | "
              f"{gain:.0%} |")
    if profiler:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(60)
        stats.print_callees("authenticate|submit|enqueue")
        (RESULTS / "profile_ingest.txt").write_text(out.getvalue())
        print("\ncProfile (by cumulative time): bench/results/profile_ingest.txt")


if __name__ == "__main__":
    main()
