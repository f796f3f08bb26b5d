"""Reads: GET of a finished execution, and what polling clients cost the sandboxes.

    .venv/bin/python bench/reads.py [-n 20000] [-c 32] [--clients 32] [--seconds 30] [--workers N]
                                    [--database sqlite|postgres] [--server COMMAND]

Starts the production web server and the sandbox workers as `make run` does (`manage.py
sandbox_workers`; `--workers N`: N plain rq workers instead) on a private database and Redis database.
1. `hey -n N -c C` GETs one finished execution: requests per second, latency, the web's CPU a request.
2. Sandbox throughput with CLIENTS clients in a closed loop for SECONDS each: every client submits
   `print(1)` and waits for its result, first with `?wait=30` (long-poll), then by GETting it every
   100 ms. Executions per second from the rows' timestamps, and the ratio of the two. The clients
   use http.client with keep-alive (Client), which costs the machine little besides the platform.
Writes bench/results/reads.md, .json and .png. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import TERMINAL, Stack, load_note, machine, summary, write_report  # noqa: E402

POLL_SECONDS = 0.1


def hey_get(url: str, requests_count: int, concurrency: int, key: str, stack: Stack) -> dict:
    web_cpu = stack.web_cpu()
    args = ["hey", "-n", str(requests_count), "-c", str(concurrency), "-o", "csv", "-H", f"Authorization: Bearer {key}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    web_cpu = stack.web_cpu() - web_cpu
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    latencies = [float(r["response-time"]) * 1000 for r in rows]
    wall = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
    statuses = Counter(r["status-code"] for r in rows)
    return {
        "requests": len(rows),
        "requests_per_s": len(rows) / wall,
        "latency_ms": summary(latencies),
        "statuses": dict(statuses),
        "non_2xx": sum(n for s, n in statuses.items() if not s.startswith("2")),
        "web_cpu_ms_per_request": web_cpu / max(1, len(rows)) * 1000,
    }


class Client:
    """One keep-alive connection through http.client: about a tenth of the CPU a requests.Session
    takes a request, so that the polling clients, which share the machine's two cores with the
    sandboxes, cost about what a client elsewhere would (nothing here) and the figure is the platform's."""

    def __init__(self, stack: Stack):
        self.port, self.headers = stack.port, {"Authorization": f"Bearer {stack.key}"}
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def call(self, method: str, path: str, body: bytes | None = None) -> dict:
        try:
            self.connection.request(method, path, body, self.headers)
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection.request(method, path, body, self.headers)
            response = self.connection.getresponse()
        return json.loads(response.read())


def client_loop(stack: Stack, mode: str, stop: threading.Event, done: list[str]) -> None:
    client = Client(stack)
    while not stop.is_set():
        if mode == "long-poll":
            body = client.call("POST", "/api/v1/execute?wait=30", b"print(1)")
            task_id = body["task_id"]
            while body["status"] not in TERMINAL:
                # A busy server may answer 202 without waiting: then the client polls.
                time.sleep(POLL_SECONDS)
                body = client.call("GET", f"/api/v1/executions/{task_id}")
        else:
            task_id = client.call("POST", "/api/v1/execute", b"print(1)")["task_id"]
            while client.call("GET", f"/api/v1/executions/{task_id}")["status"] not in TERMINAL:
                time.sleep(POLL_SECONDS)
        done.append(task_id)
    client.connection.close()


def throughput(stack: Stack, mode: str, clients: int, seconds: float) -> dict:
    stop, done = threading.Event(), []
    web_cpu = stack.web_cpu()
    own = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=client_loop, args=(stack, mode, stop, done)) for _ in range(clients)]
    started = time.time()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    web_cpu = stack.web_cpu() - web_cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    clients_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    finished = sorted(
        row["finished"] for row in stack.executions()
        if row["finished"] and started <= row["finished"] <= started + seconds
    )
    return {
        "mode": mode,
        "executions_in_window": len(finished),
        "executions_per_s": len(finished) / seconds,
        "web_cpu_share_of_one_core": web_cpu / (time.time() - started),
        # The clients run on the same cores: what they take is not the platform's, but the sandboxes lose it.
        "clients_cpu_share_of_one_core": clients_cpu / (time.time() - started),
        "finished_at": [t - started for t in finished],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=0,
                        help="plain rq workers; 0 (the default): manage.py sandbox_workers, as make run starts it")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--server", default="", help="another server command, {port} for the port")
    args = parser.parse_args()
    context = machine()
    with Stack("reads", args.database, args.port) as stack:
        stack.start_web(args.server)
        if args.workers:
            stack.start_workers(args.workers)
        else:
            args.workers = stack.start_supervisor()
        task_id = stack.submit("print(1)")
        stack.wait_until_finished(60)
        url = stack.url(f"/api/v1/executions/{task_id}")
        hey_get(url, 2000, args.concurrency, stack.key, stack)
        get = hey_get(url, args.requests, args.concurrency, stack.key, stack)
        phases = [throughput(stack, mode, args.clients, args.seconds) for mode in ("long-poll", "poll")]
    ratio = phases[1]["executions_per_s"] / phases[0]["executions_per_s"]
    data = {**context, "args": vars(args), "get": get, "phases": phases, "poll_over_long_poll": ratio}
    latency = get["latency_ms"]
    markdown = "\n".join([
        f"# Reads ({args.database}, {args.workers} workers)\n",
        load_note(data) + "\n",
        f"GET of a finished execution, `hey -n {args.requests} -c {args.concurrency}`: "
        f"**{get['requests_per_s']:.0f} req/s**, mean {latency['mean']:.1f} ms, p50 {latency['p50']:.1f} ms, "
        f"p99 {latency['p99']:.1f} ms, {get['non_2xx']} non-2xx, web CPU {get['web_cpu_ms_per_request']:.3f} ms a request.\n",
        f"Sandbox throughput with {args.clients} clients in a closed loop for {args.seconds:.0f} s each:\n",
        "| clients wait by | executions/s | web CPU (share of one core) | the clients' CPU (same cores) |",
        "| --- | --- | --- | --- |",
        *(
            f"| {p['mode']} | {p['executions_per_s']:.2f} | {p['web_cpu_share_of_one_core']:.0%} | "
            f"{p['clients_cpu_share_of_one_core']:.0%} |"
            for p in phases
        ),
        f"\nPolling every {POLL_SECONDS * 1000:.0f} ms keeps **{ratio:.0%}** of the long-poll throughput.",
    ])
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for phase in phases:
        axis.plot(phase["finished_at"], range(1, len(phase["finished_at"]) + 1), label=phase["mode"])
    axis.set_xlabel("seconds")
    axis.set_ylabel("executions finished")
    axis.legend()
    for phase in phases:
        phase.pop("finished_at")
    write_report("reads", markdown, data, figure)


if __name__ == "__main__":
    main()
