"""Adversarial mix: benign executions sharing the workers with infinite loops and memory bombs.

    .venv/bin/python bench/adversarial.py [--count 80] [--rate 1.0] [--workers 3] [--database postgres]

Starts the production web server and WORKERS rq workers on a private database and Redis database,
then submits COUNT executions through /api/v1/execute at a steady RATE per second (open loop: the
next one goes out on time whether or not the earlier ones are done), in a shuffled but fixed order:
25 % `while True: pass`, 10 % a memory bomb that touches 1 MiB after another, the rest a trivial
print. At 1 per second the three workers are busy a little over half of the time. Reports the
benign executions' lifecycle (created_at -> finished_at, queue wait included), how long after
its start each loop was killed (the sandbox's own measure, as bench/sandbox_timing.py reports it),
and every kind's final statuses. Writes bench/results/adversarial.md, .json and .png. A benchmark,
not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Stack, load_note, machine, summary, write_report  # noqa: E402

KINDS = {
    "loop": "while True:\n    pass\n",
    "memory_bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(b'\\x01') * (1024 * 1024))\n",
    "benign": "print(sum(range(1000)))\n",
}
SHARES = {"loop": 0.25, "memory_bomb": 0.10}


def mix(count: int) -> list[str]:
    kinds = [kind for kind, share in SHARES.items() for _ in range(round(count * share))]
    kinds += ["benign"] * (count - len(kinds))
    # A fixed seed: every run faces the same order, so runs can be compared.
    random.Random(7).shuffle(kinds)
    return kinds


def submit_all(stack: Stack, kinds: list[str], rate: float) -> dict[str, str]:
    """Submit on a fixed schedule; returns the kind of each task id."""
    kind_of = {}
    start = time.monotonic()
    for i, kind in enumerate(kinds):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        kind_of[stack.submit(KINDS[kind]).replace("-", "")] = kind
    return kind_of


def analyse(rows: list[dict], kind_of: dict[str, str]) -> dict:
    by_kind: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for row in rows:
        by_kind[kind_of[row["id"]]].append(row)
    benign = by_kind["benign"]
    loops = by_kind["loop"]
    return {
        "statuses": {kind: dict(Counter(r["status"] for r in rs)) for kind, rs in by_kind.items()},
        "benign_lifecycle_s": summary([r["finished"] - r["created"] for r in benign]),
        "benign_queue_wait_s": summary([r["started"] - r["created"] for r in benign]),
        "loop_killed_after_s": summary([r["duration_s"] for r in loops if r["status"] == "timed_out"]),
        "loop_lifecycle_s": summary([r["finished"] - r["created"] for r in loops]),
        "memory_bomb_lifecycle_s": summary([r["finished"] - r["created"] for r in by_kind["memory_bomb"]]),
        "values": {
            "benign": [r["finished"] - r["created"] for r in benign],
            "loop_killed_after": [r["duration_s"] for r in loops if r["status"] == "timed_out"],
        },
    }


def markdown(result: dict, args: argparse.Namespace, context: dict) -> str:
    lines = [
        "# Adversarial mix",
        "",
        f"{args.count} executions at {args.rate:g}/s: 25 % infinite loops, 10 % memory bombs, the rest benign; "
        f"{args.workers} workers, {args.database}; production server; seconds.",
        "",
        "| measure | n | mean | p50 | p95 | min | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in (
        ("benign_lifecycle_s", "benign: created -> finished"),
        ("benign_queue_wait_s", "benign: waiting in the queue"),
        ("loop_killed_after_s", "loop: killed after (in the sandbox)"),
        ("loop_lifecycle_s", "loop: created -> finished"),
        ("memory_bomb_lifecycle_s", "memory bomb: created -> finished"),
    ):
        s = result[key]
        if s["n"]:
            lines.append(
                f"| {label} | {s['n']} | {s['mean']:.3f} | {s['p50']:.3f} | {s['p95']:.3f} | {s['min']:.3f} | "
                f"{s['max']:.3f} |"
            )
    lines += ["", "Statuses: " + "; ".join(f"{k}: {v}" for k, v in result["statuses"].items()), ""]
    lines += [load_note(context), ""]
    return "\n".join(lines)


def plot(result: dict):
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.hist(result["values"]["benign"], bins=30)
    left.set_title(f"benign: created -> finished (mean {result['benign_lifecycle_s']['mean']:.2f} s)")
    left.set_xlabel("s")
    left.set_ylabel("executions")
    right.hist(result["values"]["loop_killed_after"], bins=20, color="tab:red")
    right.axvspan(5.0, 5.3, alpha=0.15, color="tab:green", label="target 5.0-5.3 s")
    right.set_title("infinite loops: killed after")
    right.set_xlabel("s")
    right.legend()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=80)
    parser.add_argument("--rate", type=float, default=1.0, help="submissions per second")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--name", default="adversarial", help="report name: bench/results/NAME.md, .json, .png")
    args = parser.parse_args()
    context = machine()
    with Stack("adversarial", args.database, args.port) as stack:
        stack.start_web()
        stack.start_workers(args.workers)
        print(f"-- {args.count} executions at {args.rate:g}/s", file=sys.stderr)
        kind_of = submit_all(stack, mix(args.count), args.rate)
        stack.wait_until_finished(timeout=args.count * 6 + 60)
        result = analyse(stack.executions(), kind_of)
    figure = plot(result)
    del result["values"]
    data = {**context, "count": args.count, "rate": args.rate, "workers": args.workers, **result}
    write_report(args.name, markdown(result, args, context), data, figure)


if __name__ == "__main__":
    main()
