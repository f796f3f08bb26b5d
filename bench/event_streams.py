"""How many event streams (GET /api/v1/executions/<id>/events) one web process holds, and what they cost.

    REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/event_streams.py [--streams 500]
    BENCH_REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/event_streams.py --live [--runtime runsc]

With --live, on a private platform with real workers (bench.common.Stack, PostgreSQL): how long a
line printed by a script every 100 ms takes to reach an SSE client (the script prints its clock;
the client compares with its own), and the sandbox throughput of short runs with and without
--streams streams open: max(--batch, --streams) runs submitted at once, --streams of them watched
by a stream each from before any run starts (as their clients would), and runs per second over the
first --batch of them (from the first start to the --batch-th end, as the database recorded them),
the same workers; --rounds batches of each, alternated. Then, in-process: what publishing costs a run,
watched or not (CPU time in the publisher per run).

Starts the web server (sandbox_project/serve.py, one process, WEB_THREADS 8) and no sandbox worker;
submits one execution, opens the streams on it, and reports the web process's threads and memory
with them open, the latency of plain GETs meanwhile, and how long after the execution's end every
stream had its last event. The end is written in-process through the model's transitions, as a
worker would. It empties the Redis database it is given. A benchmark, not a test: it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")
# This script's own few queries run on its event loop, between the measurements.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.common import serve_at  # noqa: E402
from executions import runs, store  # noqa: E402
from executions.models import Execution, Tenant  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "18012"))


def start_server() -> subprocess.Popen:
    # Each stream opened is a request counted against the tenant's rate.
    env = dict(os.environ, WEB_WORKERS="1", WEB_THREADS="8", TENANT_RATE_PER_MINUTE="100000")
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE")
    return serve_at(PORT, env, stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"))


def web_process(server: subprocess.Popen) -> int:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return int(children[0])


def usage(pid: int) -> tuple[int, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


async def open_stream(key: str, task_id: str, ended: list[float]) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(
        f"GET /api/v1/executions/{task_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    await reader.readuntil(b"event: status")

    async def finish():
        await reader.readuntil(b"event: execution")
        ended.append(time.monotonic())
        writer.close()

    return asyncio.ensure_future(finish())


async def main(streams: int) -> None:
    call_command("migrate", verbosity=0)
    store.connection().flushdb()
    tenant, _ = Tenant.objects.get_or_create(name="bench-events")
    key = tenant.create_api_key("bench")[1]
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v1/executions", data=json.dumps({"code": "print(1)"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    server = start_server()
    try:
        pid = web_process(server)
        threads_before, rss_before = usage(pid)
        task_id = json.loads(urllib.request.urlopen(request).read())["task_id"]
        ended: list[float] = []
        started = time.monotonic()
        waiting = []
        for _ in range(0, streams, 50):
            waiting += await asyncio.gather(*(open_stream(key, task_id, ended) for _ in range(50)))
        opened = time.monotonic() - started
        threads, rss = usage(pid)
        latencies = []
        for _ in range(50):
            t = time.monotonic()
            get = urllib.request.Request(f"http://127.0.0.1:{PORT}/api/v1/languages", headers={"Authorization": f"Bearer {key}"})
            urllib.request.urlopen(get).read()
            latencies.append(time.monotonic() - t)
        Execution.objects.filter(id=task_id).update(status="running")
        finished_at = time.monotonic()
        runs.finish(task_id, {"status": "completed", "stdout": "1\n", "exit_code": 0})
        await asyncio.wait_for(asyncio.gather(*waiting), 60)
        print(f"streams open: {len(waiting)} in {opened:.1f} s")
        print(f"web process: threads {threads_before} -> {threads}, RSS {rss_before:.0f} -> {rss:.0f} MiB "
              f"({(rss - rss_before) * 1024 / streams:.0f} KiB a stream)")
        print(f"plain GET /api/v1/languages with them open: p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms")
        print(f"the end reached all {len(ended)} streams within {(max(ended) - finished_at) * 1000:.0f} ms")
    finally:
        server.terminate()
        server.wait(30)


# --- Live output --------------------------------------------------------------------------------

TICKS = "import time\nfor i in range({lines}):\n    print(repr(time.time()))\n    time.sleep(0.1)\n"
# A short run with a little output, as the throughput batch.
SHORT = "for i in range(5):\n    print(i, 'x' * 40)\n"


async def sse_events(port: int, key: str, task_id: str, on_event) -> None:
    """Read one event stream to its end, calling on_event(name, data, received_at) for each event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/executions/{task_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    name = ""
    try:
        while line := await reader.readline():
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                on_event(name, json.loads(line[6:]), time.time())
                if name == "execution":
                    return
    finally:
        writer.close()


async def live_latency(stack, runs: int, lines: int) -> list[float]:
    """Seconds from each print (the script's clock) to its receipt (ours), over `runs` executions."""
    latencies: list[float] = []

    def on_event(name, data, received_at):
        if name == "output":
            latencies.extend(received_at - float(line) for line in data["data"].split())

    for _ in range(runs):
        task_id = stack.submit(TICKS.format(lines=lines))
        await sse_events(stack.port, stack.key, task_id, on_event)
    return latencies


async def batch_throughput(stack, count: int, size: int, streams: int) -> tuple[float, int, float]:
    """Runs per second over the first `count` of `size` short runs submitted at once, with `streams`
    of them watched by a stream each, as their clients would (opened before any run starts, each
    ending with its run). Returns the rate, the output events the streams received,
    and how many streams were open on average while those first runs ran."""
    stack.manage("shell", "-c", "from executions.models import Execution; Execution.objects.all().delete()")
    # Submitted with no worker running, so that every stream is open before any run starts.
    task_ids = [stack.submit(SHORT) for _ in range(size)]
    received = [0]
    open_now = [0]

    def on_event(name, data, received_at):
        received[0] += name == "output"

    async def watch(task_id: str) -> None:
        open_now[0] += 1
        try:
            await sse_events(stack.port, stack.key, task_id, on_event)
        finally:
            open_now[0] -= 1

    readers = [asyncio.ensure_future(watch(task_id)) for task_id in task_ids[:streams]]
    await asyncio.sleep(min(30, 2 + streams / 100))
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            samples.append((time.time(), open_now[0]))
            await asyncio.sleep(0.25)

    sampler = asyncio.ensure_future(sample())
    stack.start_workers(WORKERS)
    await asyncio.get_running_loop().run_in_executor(None, stack.wait_until_finished, 600)
    sampler.cancel()
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    stack.stop(stack.workers)
    stack.workers.clear()
    rows = stack.executions()
    started = min(r["started"] for r in rows)
    finished = sorted(r["finished"] for r in rows)[count - 1]
    during = [opened for at, opened in samples if started <= at <= finished]
    return count / (finished - started), received[0], statistics.mean(during) if during else 0.0


WORKERS = 2


def publishing_cost(runs: int, runtime: str) -> dict:
    """CPU seconds per run spent in OutputPublisher.flush, unwatched and watched, in this process."""
    import functools
    import uuid

    from executions import events
    from executions.sandbox import runner
    from executions.sandbox.runner import Limits

    spent = [0.0]
    flush = events.OutputPublisher.flush

    def timed_flush(self, output, final=False):
        started = time.thread_time()
        try:
            flush(self, output, final)
        finally:
            spent[0] += time.thread_time() - started

    events.OutputPublisher.flush = timed_flush
    limits = Limits.from_settings(runtime)
    figures = {}
    try:
        for label, watched in (("unwatched", False), ("watched", True)):
            spent[0] = 0.0
            for _ in range(runs):
                execution_id = str(uuid.uuid4())
                if watched:
                    events.watch(execution_id)
                live = functools.partial(events.OutputPublisher, execution_id)
                runner.run("python", SHORT, limits=limits, live=live)
                store.connection().delete(events.EVENTS_KEY.format(execution_id), events.WATCHED_KEY.format(execution_id))
            figures[label] = spent[0] / runs
    finally:
        events.OutputPublisher.flush = flush
    return figures


async def live_main(args) -> None:
    from bench.common import Stack, load_note, machine, summary

    data = {"machine": machine()}
    env_runtime = {"SANDBOX_RUNTIME": args.runtime} if args.runtime else {}
    os.environ.update(env_runtime)
    with Stack("live-events", database="postgres", port=PORT) as stack:
        stack.env.update(env_runtime, TENANT_RATE_PER_MINUTE="1000000", WEB_WORKERS="1")
        stack.start_web()
        stack.start_workers(WORKERS)
        latencies = await live_latency(stack, args.latency_runs, 20)
        stack.stop(stack.workers)
        stack.workers.clear()
        data["latency_ms"] = {k: v * 1000 if k != "n" else v for k, v in summary(latencies).items()}
        # Alternated, as the spread between batches of the same kind is of the order of the effect.
        withouts, withs, outputs, opened = [], [], 0, []
        for _ in range(args.rounds):
            size = max(args.batch, args.streams)
            withouts.append((await batch_throughput(stack, args.batch, size, 0))[0])
            rate, events, open_mean = await batch_throughput(stack, args.batch, size, args.streams)
            withs.append(rate)
            outputs += events
            opened.append(open_mean)
        without, with_streams = statistics.median(withouts), statistics.median(withs)
        data["throughput"] = {"without": withouts, "with_streams": withs, "streams": args.streams,
                              "streams_open_mean": opened, "output_events_received": outputs,
                              "workers": WORKERS, "batch": args.batch}
    data["publishing_cpu_ms_per_run"] = {k: v * 1000 for k, v in publishing_cost(args.cost_runs, args.runtime).items()}
    lat = data["latency_ms"]
    print(f"runtime: {args.runtime or 'runc'}; {load_note(data['machine'])}")
    print(f"print -> SSE receipt, {lat['n']} lines: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, max {lat['max']:.1f} ms")
    t = data["throughput"]
    print(f"throughput over the first {t['batch']} of {max(t['batch'], t['streams'])} short runs, {t['workers']} workers, "
          f"{args.rounds} rounds: without streams "
          f"{', '.join(f'{r:.2f}' for r in withouts)}/s (median {without:.2f}); with {t['streams']} streams "
          f"(open on average {', '.join(f'{o:.0f}' for o in opened)}) {', '.join(f'{r:.2f}' for r in withs)}/s "
          f"(median {with_streams:.2f}, {(with_streams / without - 1) * 100:+.1f} %), {outputs} output events received")
    cost = data["publishing_cpu_ms_per_run"]
    print(f"publisher CPU per run: unwatched {cost['unwatched']:.3f} ms, watched {cost['watched']:.3f} ms")
    print(json.dumps(data))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--live", action="store_true", help="live output: latency, throughput with streams, cost")
    parser.add_argument("--runtime", default="", help="with --live: runc (default) or runsc")
    parser.add_argument("--batch", type=int, default=100, help="with --live: short runs per throughput batch")
    parser.add_argument("--rounds", type=int, default=3, help="with --live: batches without and with streams, alternated")
    parser.add_argument("--latency-runs", type=int, default=5, help="with --live: runs of 20 lines for the latency")
    parser.add_argument("--cost-runs", type=int, default=20, help="with --live: runs per publishing cost figure")
    arguments = parser.parse_args()
    asyncio.run(live_main(arguments) if arguments.live else main(arguments.streams))
