"""Judging: a C++ submission with N tests, from submission to verdict, at light load.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/judging.py [--runs 7] [--tests 1,5,10,20]

Starts the production web server and one rq worker on a private database and Redis database, then
for each test count POSTs a C++ program (a sum of two numbers) with that many tests to
/api/v1/executions, one at a time, and reads it back every 10 ms until it is terminal. Reports the
p50 and p95 of submit -> verdict per test count, the compile stage's p50, and the cost of each test
beyond the first (least squares over the p50s). Target: 20 tests judged in <= 2.5 s on 2 cores.
Writes bench/results/judging.md, .json and .png. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Stack, load_note, machine, summary, write_report  # noqa: E402

POLL_SECONDS = 0.01
SUM = """#include <iostream>
int main() { long a, b; std::cin >> a >> b; std::cout << a + b << "\\n"; }
"""


def one(stack: Stack, tests: int) -> tuple[float, dict]:
    body = {
        "language": "cpp",
        "code": SUM,
        "timeout_seconds": 1,
        "tests": [{"stdin": f"{i} {i * 7}\n", "expected_output": str(i * 8)} for i in range(tests)],
    }
    started = time.monotonic()
    response = stack.session.post(stack.url("/api/v1/executions"), json=body, timeout=30)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    while time.monotonic() < started + 300:
        found = stack.session.get(stack.url(f"/api/v1/executions/{task_id}"), timeout=30).json()
        if found["status"] not in ("queued", "running"):
            return time.monotonic() - started, found
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{tests} tests: not terminal after 300 s")


def slope(points: list[tuple[int, float]]) -> float:
    """Least squares: seconds per extra test."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tests", default="1,5,10,20")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--port", type=int, default=8100)
    options = parser.parse_args()
    counts = [int(count) for count in options.tests.split(",")]
    data = {**machine(), "runs": options.runs, "counts": {}}
    with Stack("judging", options.database, port=options.port) as stack:
        stack.start_web()
        stack.start_workers(1)
        stack.session.headers["Authorization"] = f"Bearer {stack.key}"
        # One unmeasured run first: the image's page cache.
        one(stack, 2)
        for count in counts:
            walls, compiles, verdicts, runs = [], [], set(), []
            for _ in range(options.runs):
                wall, body = one(stack, count)
                walls.append(wall)
                verdicts.add(body["verdict"] or body["status"])
                compiles.append(body["compile_duration_ms"] or 0)
                runs.append(body["duration_ms"] or 0)
            data["counts"][count] = {
                "verdicts": sorted(verdicts),
                "submit_to_verdict_s": summary(walls),
                "compile_ms": summary(compiles),
                "judging_ms": summary(runs),
            }
            print(count, data["counts"][count]["submit_to_verdict_s"], flush=True)
    per_test = slope([(count, figures["submit_to_verdict_s"]["p50"]) for count, figures in data["counts"].items()])
    data["seconds_per_extra_test"] = per_test
    rows = ["| tests | verdicts | submit -> verdict p50 / p95 (s) | compile p50 (ms) | judging p50 (ms) |", "| --- | --- | --- | --- | --- |"]
    for count, figures in data["counts"].items():
        wall = figures["submit_to_verdict_s"]
        rows.append(
            f"| {count} | {', '.join(figures['verdicts'])} | {wall['p50']:.3f} / {wall['p95']:.3f} "
            f"| {figures['compile_ms']['p50']:.0f} | {figures['judging_ms']['p50']:.0f} |"
        )
    markdown = (
        "# Judging a C++ submission at light load\n\n"
        f"{options.runs} runs per test count, one at a time, one worker, {options.database}.\n"
        f"{load_note(data)}\n\n" + "\n".join(rows) + f"\n\nEach test beyond the first: {per_test * 1000:.0f} ms.\n"
    )
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(counts, [data["counts"][count]["submit_to_verdict_s"]["p50"] for count in counts], marker="o")
    axis.set_xlabel("tests")
    axis.set_ylabel("submit -> verdict p50 (s)")
    write_report("judging", markdown, data, figure)


if __name__ == "__main__":
    main()
