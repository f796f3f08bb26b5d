"""The fast lane's CPU a submission, in-process: sandbox_project.rsgi driven without granian.

    .venv/bin/python bench/profile_fastlane.py [-n 20000] [-c 32] [--database sqlite|postgres]
        [--path /api/v1/execute] [--cprofile]

`bench/ingest.py` measures what a client sees, which on two shared cores also depends on hey and
on everything else the machine runs. This measures only what our code costs: the RSGI application
(body read, fast lane, group commit, admission scripts) on a uvloop loop in this process, with C
concurrent requests, as granian would call it, against the same private database and Redis
database as the other benchmarks. It reports CPU time a request of this process (every thread:
the loop, the group writers), of redis-server and of PostgreSQL's processes, and the same for
the bare Django view (/bench/bare) through the same application, and checks that every 202 has
its row and its job. Numbers are comparable between runs on one machine, whatever its load: CPU
time, not wall time. `--cprofile` profiles the loop's thread and the group writers into
bench/results/profile_fastlane.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, Stack  # noqa: E402
from bench.ingest import check_durable  # noqa: E402

BODY = b"print(1)"


class Headers(dict):
    """granian's RSGI headers: a mapping with get() and items()."""


class Scope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    server = "127.0.0.1:8100"
    client = "127.0.0.1:40000"

    def __init__(self, method: str, path: str, key: str):
        self.method = method
        self.path = path
        self.query_string = ""
        self.headers = Headers(
            {
                "host": "127.0.0.1:8100",
                "authorization": f"Bearer {key}",
                "content-type": "text/plain",
                "content-length": str(len(BODY)),
            }
        )


class Protocol:
    """The body, and what the application answered."""

    def __init__(self, statuses: Counter):
        self.statuses = statuses

    async def __call__(self) -> bytes:
        return BODY

    def response_bytes(self, status: int, headers, body: bytes) -> None:
        self.statuses[status] += 1


def cpu_of(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


async def drive(app, path: str, key: str, requests: int, concurrency: int, statuses: Counter) -> None:
    left = requests

    async def client() -> None:
        nonlocal left
        protocol = Protocol(statuses)
        while left > 0:
            left -= 1
            await app.__rsgi__(Scope("POST", path, key), protocol)

    await asyncio.gather(*(client() for _ in range(concurrency)))


def measure(app, path, key, requests, concurrency, redis_pid, database, profiler=None) -> dict:
    import uvloop

    statuses: Counter = Counter()
    pg = postgres_pids() if database == "postgres" else []
    before = (time.process_time(), cpu_of([redis_pid]), cpu_of(pg), time.perf_counter())
    loop = uvloop.new_event_loop()
    try:
        if profiler:
            profiler.enable()
        loop.run_until_complete(drive(app, path, key, requests, concurrency, statuses))
        if profiler:
            profiler.disable()
    finally:
        loop.close()
    after = (time.process_time(), cpu_of([redis_pid]), cpu_of(sorted(set(pg) | set(postgres_pids())) if pg else []), time.perf_counter())
    return {
        "statuses": dict(statuses),
        "process_us": (after[0] - before[0]) / requests * 1e6,
        "redis_us": (after[1] - before[1]) / requests * 1e6,
        "postgres_us": (after[2] - before[2]) / requests * 1e6,
        "wall_s": after[3] - before[3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--path", default="/api/v1/execute")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    with Stack("fastlane", args.database) as stack:
        os.environ.update(stack.env)
        import logging

        from sandbox_project.rsgi import application

        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))
        redis_pid = stack.redis.info("server")["process_id"]
        application.__rsgi_init__(None)
        # Warm up: the key's first use goes through Django, which the fast lane then trusts.
        measure(application, args.path, stack.key, 500, args.concurrency, redis_pid, args.database)
        measure(application, "/bench/bare", stack.key, 500, args.concurrency, redis_pid, args.database)
        # CPU time of the thread, not wall time: a writer's waits on PostgreSQL and Redis are not its cost.
        profiler = cProfile.Profile(time.thread_time) if args.cprofile else None
        writer = cProfile.Profile(time.thread_time) if args.cprofile else None
        if writer:
            from executions import submissions

            submit_group = submissions.submit_group

            def profiled(group):
                writer.enable()
                try:
                    return submit_group(group)
                finally:
                    writer.disable()

            # One writer thread at a time (FAST_LANE_FLUSHES=1) for a profile of them.
            submissions.submit_group = profiled
        bare = measure(application, "/bench/bare", stack.key, args.requests // 4, args.concurrency, redis_pid, args.database)
        lane = measure(application, args.path, stack.key, args.requests, args.concurrency, redis_pid, args.database, profiler)
        application.__rsgi_del__(None)
        # The warm-up's 500 too.
        durable = check_durable(stack, lane["statuses"].get(202, 0) + 500)
    print(f"# {args.path} in-process, {args.database}, {args.requests} requests, {args.concurrency} at once")
    for name, result in (("fast lane", lane), ("bare Django view", bare)):
        total = result["process_us"] + result["redis_us"] + result["postgres_us"]
        print(
            f"{name}: {result['process_us']:.0f} us this process + {result['redis_us']:.0f} redis"
            f" + {result['postgres_us']:.0f} postgres = {total:.0f} us CPU a request;"
            f" {result['wall_s']:.1f} s wall; statuses {result['statuses']}"
        )
    print(f"202s with a row and a job: {durable}")
    if profiler:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = io.StringIO()
        out.write("## the loop's thread\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(45)
        out.write("## the group writers (submissions.submit_group)\n")
        pstats.Stats(writer, stream=out).sort_stats("tottime").print_stats(45)
        out.write("## the group writers, by cumulative time\n")
        pstats.Stats(writer, stream=out).sort_stats("cumulative").print_stats(60)
        (RESULTS / "profile_fastlane.txt").write_text(out.getvalue())
        print("cProfile of the loop's thread (by own time): bench/results/profile_fastlane.txt")


if __name__ == "__main__":
    main()
