"""Lifecycle: a trivial Python execution from submission to terminal status, through the whole platform.

    .venv/bin/python bench/lifecycle.py [--light 50] [--saturation 600] [--clients 32] [--seconds 90]
        [--workers N] [--database postgres]

Starts the production web server and the sandbox workers as `make run` does (`manage.py
sandbox_workers`; `--workers N`: N plain rq workers instead) on a private database and Redis database.
Light load: one `print(1)` at a time, alternately POSTed to /api/v1/execute?wait=30 (one request that
answers with the finished execution) and POSTed plainly, then read back every 10 ms until it is
terminal (p50 and p95 of each, and of the server's own created_at -> finished_at).
Saturation: SATURATION executions submitted at once, so the queue never runs dry; executions per
second from the rows' timestamps, over the whole run and over its middle 80 % (steady state).
Long-polling clients: CLIENTS threads, each POSTing to /api/v1/execute?wait=30 again as soon as its
last one answered, for SECONDS (over a minute, so that the rate window turns), as a tenant with the
platform's default quotas (the other phases' tenant has none): executions/s finished, and every
answer's status (a 429 is waited out by its Retry-After, as a client should).
Reports the web's and the workers' memory before and after the saturation phase, and samples it
every 10 s during it (`make bench-soak` runs 10,000 executions that way, as bench/results/soak.*).
Writes bench/results/lifecycle.md, .json and .png. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import requests  # noqa: E402

from bench.common import TERMINAL, Stack, load_note, machine, summary, write_report  # noqa: E402

CODE = "print(1)"
POLL_SECONDS = 0.01
RSS_EVERY_SECONDS = 10


def wait_terminal(stack: Stack, task_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = stack.session.get(
            stack.url(f"/api/v1/executions/{task_id}"), headers={"Authorization": f"Bearer {stack.key}"}
        ).json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"execution {task_id} not terminal after {timeout:.0f} s")


def submit_and_wait(stack: Stack) -> dict:
    """One request: the server answers when the execution has ended (its pub/sub wakes the wait)."""
    response = stack.session.post(
        stack.url("/api/v1/execute?wait=30"), data=CODE.encode(), headers={"Authorization": f"Bearer {stack.key}"}
    )
    response.raise_for_status()
    body = response.json()
    if body["status"] not in TERMINAL:
        raise RuntimeError(f"execution {body['task_id']} not terminal after ?wait=30")
    return body


def light(stack: Stack, runs: int) -> dict:
    waited, polled, statuses = [], [], Counter()
    for index in range(runs):
        started = time.perf_counter()
        body = submit_and_wait(stack) if index % 2 == 0 else wait_terminal(stack, stack.submit(CODE))
        (waited if index % 2 == 0 else polled).append(time.perf_counter() - started)
        statuses[body["status"]] += 1
    rows = stack.executions()
    server = [r["finished"] - r["created"] for r in rows]
    return {
        "client_s": summary(waited),
        "polled_s": summary(polled),
        "server_s": summary(server),
        "statuses": dict(statuses),
        "client_values": waited,
    }


def saturation(stack: Stack, count: int) -> dict:
    before = {r["id"] for r in stack.executions()}
    # Memory as it goes, from the first submission: a leak shows as a slope, not only at the end.
    rss = []

    def sample_when_due() -> None:
        if not rss or time.time() - started - rss[-1]["t"] >= RSS_EVERY_SECONDS:
            rss.append({"t": time.time() - started, "workers": stack.worker_rss(), "web": stack.web_rss()["workers"]})

    started = time.time()
    for _ in range(count):
        stack.submit(CODE)
        sample_when_due()
    submitted = time.time() - started
    deadline = time.monotonic() + count + 120
    while stack.count_unfinished() and time.monotonic() < deadline:
        sample_when_due()
        time.sleep(0.25)
    rows = [r for r in stack.executions() if r["id"] not in before]
    finished = sorted(r["finished"] for r in rows if r["finished"])
    first, last = min(r["created"] for r in rows), finished[-1]
    low, high = finished[len(finished) // 10], finished[len(finished) * 9 // 10]
    middle = len(finished) * 9 // 10 - len(finished) // 10
    return {
        "executions": len(rows),
        "submitted_in_s": submitted,
        "statuses": dict(Counter(r["status"] for r in rows)),
        "whole_run_s": last - first,
        "executions_per_s": len(finished) / (last - first),
        "steady_executions_per_s": middle / (high - low) if high > low else None,
        "lifecycle_s": summary([r["finished"] - r["created"] for r in rows if r["finished"]]),
        "finished_offsets_s": [t - first for t in finished],
        "rss_samples_mib": rss,
    }


def long_polling(stack: Stack, clients: int, seconds: float) -> dict:
    """CLIENTS closed-loop clients of one tenant on the default quotas, each POSTing ?wait=30."""
    key = stack.create_tenant("defaults")
    answers: list[tuple[float, int, str]] = []  # (seconds since the start, HTTP status, execution status)
    started = time.monotonic()
    deadline = started + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            try:
                response = session.post(
                    stack.url("/api/v1/execute?wait=30"), data=CODE.encode(), headers={"Authorization": f"Bearer {key}"}
                )
            except requests.RequestException:
                answers.append((time.monotonic() - started, 0, ""))  # 0: no answer
                time.sleep(0.1)
                continue
            status = response.json().get("status", "") if response.status_code < 300 else ""
            answers.append((time.monotonic() - started, response.status_code, status))
            if response.status_code == 429:
                time.sleep(min(float(response.headers.get("Retry-After", 1)), max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = sorted(t for t, code, status in answers if code < 300 and status in TERMINAL and t <= seconds)
    # The first 5 s fill the slots; the rate is counted from there to the end.
    steady = [t for t in finished if t >= 5]
    return {
        "clients": clients,
        "seconds": seconds,
        "finished": len(finished),
        "executions_per_s": len(steady) / (seconds - 5),
        "http_statuses": dict(Counter(code for _, code, _ in answers)),
        "statuses": dict(Counter(status for _, _, status in answers if status)),
    }


def markdown(result: dict, args: argparse.Namespace, context: dict) -> str:
    lt, sat = result["light"], result["saturation"]
    c, p, s = lt["client_s"], lt["polled_s"], lt["server_s"]
    rss = result["rss_mib"]
    workers = ", ".join(f"{b:.0f} -> {a:.0f}" for b, a in zip(rss["before"]["workers"], rss["after"]["workers"]))
    web = ", ".join(f"{b:.0f} -> {a:.0f}" for b, a in zip(rss["before"]["web"]["workers"], rss["after"]["web"]["workers"]))
    samples = sat["rss_samples_mib"]

    def peak(kind: str) -> str:
        return ", ".join(f"{max(series):.0f}" for series in zip(*(sample[kind] for sample in samples))) or "-"

    polling = result.get("long_polling")
    polled = (
        f"Long-polling: {polling['clients']} clients of a tenant on the default quotas, each POSTing "
        f"`?wait=30` again as soon as answered, for {polling['seconds']:.0f} s: "
        f"**{polling['executions_per_s']:.2f} executions/s** (from 5 s on; {polling['finished']} finished). "
        f"HTTP statuses: {polling['http_statuses']}; executions: {polling['statuses']}."
        if polling else "Long-polling: not run."
    )
    return "\n".join([
        "# Lifecycle",
        "",
        f"Trivial Python (`{CODE}`), {args.workers} workers, {args.database}; production server; seconds.",
        "",
        "| light load, one at a time | n | p50 | p95 | mean | max |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| client: POST ?wait=30 -> terminal seen (one request) | {c['n']} | {c['p50']:.3f} | {c['p95']:.3f} | "
        f"{c['mean']:.3f} | {c['max']:.3f} |",
        f"| client: POST -> terminal seen (then 10 ms polls) | {p['n']} | {p['p50']:.3f} | {p['p95']:.3f} | "
        f"{p['mean']:.3f} | {p['max']:.3f} |",
        f"| server: created_at -> finished_at | {s['n']} | {s['p50']:.3f} | {s['p95']:.3f} | "
        f"{s['mean']:.3f} | {s['max']:.3f} |",
        "",
        f"Saturation: {sat['executions']} submitted at once (in {sat['submitted_in_s']:.1f} s), "
        f"all terminal after {sat['whole_run_s']:.1f} s: **{sat['executions_per_s']:.2f} executions/s** "
        f"over the whole run, {sat['steady_executions_per_s'] or 0:.2f}/s over its middle 80 %. "
        f"Statuses: {sat['statuses']}.",
        "",
        polled,
        "",
        f"Memory (RSS, MiB) before -> after the saturation phase: workers {workers}; "
        f"web (server processes) {web}; highest sampled during it: workers {peak('workers')}, web {peak('web')}.",
        "",
        load_note(context),
        "",
    ])


def plot(result: dict):
    figure, (left, right, memory) = plt.subplots(1, 3, figsize=(18, 4))
    left.hist(result["light"]["client_values"], bins=30)
    left.set_title("light load: submit -> terminal (client)")
    left.set_xlabel("s")
    left.set_ylabel("executions")
    offsets = result["saturation"]["finished_offsets_s"]
    right.plot(offsets, range(1, len(offsets) + 1))
    right.set_title(f"saturation: {result['saturation']['executions_per_s']:.2f} executions/s")
    right.set_xlabel("s since the first submission")
    right.set_ylabel("executions finished")
    samples = result["saturation"]["rss_samples_mib"]
    times = [sample["t"] for sample in samples]
    for kind in ("workers", "web"):
        for i, series in enumerate(zip(*(sample[kind] for sample in samples))):
            memory.plot(times, series, label=f"{kind[:-1] if kind == 'workers' else 'web'} {i}")
    memory.set_title("RSS during the saturation phase")
    memory.set_xlabel("s since the first submission")
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize="small")
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", type=int, default=50, help="executions run one at a time")
    parser.add_argument("--saturation", type=int, default=600, help="executions submitted at once")
    parser.add_argument("--clients", type=int, default=32, help="long-polling clients (0: that phase is left out)")
    parser.add_argument("--seconds", type=float, default=90, help="how long the long-polling clients run")
    parser.add_argument("--workers", type=int, default=0,
                        help="plain rq workers; 0 (the default): manage.py sandbox_workers, as make run starts it")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--name", default="lifecycle", help="report name: bench/results/NAME.md, .json, .png")
    args = parser.parse_args()
    context = machine()
    with Stack("lifecycle", args.database, args.port) as stack:
        stack.start_web()
        if args.workers:
            stack.start_workers(args.workers)
        else:
            args.workers = stack.start_supervisor()
        print(f"-- light load: {args.light} executions, one at a time", file=sys.stderr)
        result = {"light": light(stack, args.light)}
        before = {"workers": stack.worker_rss(), "web": stack.web_rss()}
        print(f"-- saturation: {args.saturation} executions at once", file=sys.stderr)
        result["saturation"] = saturation(stack, args.saturation)
        result["rss_mib"] = {"before": before, "after": {"workers": stack.worker_rss(), "web": stack.web_rss()}}
        if args.clients:
            print(f"-- long-polling: {args.clients} clients for {args.seconds:.0f} s, default quotas", file=sys.stderr)
            result["long_polling"] = long_polling(stack, args.clients, args.seconds)
    figure = plot(result)
    del result["light"]["client_values"], result["saturation"]["finished_offsets_s"]
    data = {**context, "workers": args.workers, "database": args.database, **result}
    write_report(args.name, markdown(result, args, context), data, figure)


if __name__ == "__main__":
    main()
