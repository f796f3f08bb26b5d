"""How many event streams (GET /api/v1/executions/<id>/events) one web process holds, and what they cost.

    REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/event_streams.py [--streams 500]

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    asyncio.run(main(parser.parse_args().streams))
