"""Capacity and fairness under hostile load, with the workers as make run supervises them.

    .venv/bin/python bench/capacity.py [--slots N] [--reserve N] [--database sqlite|postgres]
                                       [--probes 20] [--gap 0.5] [--runtime runsc]

Starts the production web server and `manage.py sandbox_workers` (SANDBOX_SLOTS workers sized to
the host, SANDBOX_RESERVE_SLOTS in reserve, or --slots/--reserve) on a private database and Redis.
Two tenants with the default quotas. Each probe is a one-line script
POSTed with ?wait=30 and polled until terminal: its time is submit -> terminal seen by the client.

1. "other": A queues 50 infinite loops and 20 memory bombs at once; B sends --probes one-liners,
   one every --gap seconds.
2. "own": A queues 5 infinite loops, then sends --probes one-liners of its own the same way.
Also: how long A's loops ran in their sandboxes before they were killed. Writes bench/results/capacity.md and
.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from bench.common import RESULTS, TERMINAL, Stack, load_note, machine, summary  # noqa: E402

LOOP = "while True:\n    pass\n"
BOMB = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
ONE_LINER = "print(1)"


def submit(stack: Stack, key: str, code: str, wait: bool = False) -> dict:
    path = "/api/v1/execute?wait=30" if wait else "/api/v1/execute"
    response = requests.post(stack.url(path), data=code.encode(), headers={"Authorization": f"Bearer {key}"}, timeout=60)
    response.raise_for_status()
    return response.json()


def probe(stack: Stack, key: str, results: list[float]) -> None:
    started = time.monotonic()
    body = submit(stack, key, ONE_LINER, wait=True)
    while body["status"] not in TERMINAL:
        time.sleep(0.02)
        body = requests.get(
            stack.url(f"/api/v1/executions/{body['task_id']}"), headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()
    results.append(time.monotonic() - started)


def probes(stack: Stack, key: str, count: int, gap: float) -> list[float]:
    results: list[float] = []
    threads = []
    for _ in range(count):
        thread = threading.Thread(target=probe, args=(stack, key, results))
        thread.start()
        threads.append(thread)
        time.sleep(gap)
    for thread in threads:
        thread.join(120)
    return results


def loop_kills(stack: Stack) -> list[float]:
    """How long each loop ran in its sandbox (duration_ms: from its start, the deadline's clock)."""
    return [row["duration_s"] for row in stack.executions() if row["code"] == LOOP and row["duration_s"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int)
    parser.add_argument("--reserve", type=int)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.5)
    parser.add_argument("--port", type=int, default=8120)
    parser.add_argument("--runtime", default="", help="SANDBOX_RUNTIME for the workers, e.g. runsc")
    args = parser.parse_args()
    context = machine()
    with Stack("capacity", args.database, args.port) as stack:
        if args.runtime:
            stack.env["SANDBOX_RUNTIME"] = args.runtime
        a, b = stack.create_tenant("tenant-a"), stack.create_tenant("tenant-b")
        stack.start_web()
        workers = stack.start_supervisor(args.slots, args.reserve)
        probes(stack, b, 3, 0.2)  # warm-up
        for _ in range(50):
            submit(stack, a, LOOP)
        for _ in range(20):
            submit(stack, a, BOMB)
        other = probes(stack, b, args.probes, args.gap)
        # A's backlog goes, through the platform's own cancel, so that phase 2 starts clean.
        stack.manage("shell", "-c", (
            "from executions import submissions; from executions.models import Execution; "
            "[submissions.cancel(e) for e in Execution.objects.filter(status='queued').select_related('tenant')]"
        ))
        stack.wait_until_finished(120)
        for _ in range(5):
            submit(stack, a, LOOP)
        time.sleep(0.5)
        own = probes(stack, a, args.probes, args.gap)
        stack.wait_until_finished(120)
        kills = loop_kills(stack)
    data = {**context, "args": vars(args), "workers": workers, "other": summary(other), "own": summary(own),
            "loop_killed_after_s": summary(kills)}
    rows = [("B's one-liners while A has 50 loops and 20 memory bombs queued", other, "mean <= 0.5 s, p95 <= 1.0 s"),
            ("A's own one-liners behind its own 5 loops", own, "mean <= 1.0 s")]
    markdown = "\n".join([
        f"# Capacity ({args.database}, {workers} workers{', ' + args.runtime if args.runtime else ''})\n",
        load_note(data) + "\n",
        "| submit -> terminal, seen by the client | n | mean | p50 | p95 | max | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(f"| {name} | {len(v)} | {summary(v)['mean']:.3f} s | {summary(v)['p50']:.3f} s | {summary(v)['p95']:.3f} s | "
          f"{summary(v)['max']:.3f} s | {target} |" for name, v, target in rows),
        f"\nLoops killed {min(kills):.3f}-{max(kills):.3f} s after their sandbox started ({len(kills)} loops)." if kills else "",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "capacity.md").write_text(markdown)
    (RESULTS / "capacity.json").write_text(json.dumps(data, indent=2))
    print(markdown)


if __name__ == "__main__":
    main()
