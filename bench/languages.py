"""Languages: each catalog language's hello world from submission to terminal status, at light load.

    .venv/bin/python bench/languages.py [--runs 10] [--workers 2] [--database sqlite] [--loops 3]

Starts the production web server and WORKERS rq workers on a private database and Redis database,
then for each language POSTs its hello world (tests/languages.py) to /api/v1/executions, one at a
time, and reads it back every 10 ms until it is terminal. Reports, per language, the p50 and p95
of submit -> terminal, and the p50 of the compile stage's and the run's own durations. With
--loops N, also N endless loops per language, one at a time: how long after its start each was
killed at its 5 s deadline (duration_ms).
Writes bench/results/languages.md, .json and .png. A benchmark, not a test: it never fails on a number.
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

from bench.common import TERMINAL, Stack, load_note, machine, summary, write_report  # noqa: E402
from executions.sandbox.languages import CATALOG  # noqa: E402
from tests.languages import PROGRAMS  # noqa: E402

POLL_SECONDS = 0.01
TERMINAL_STATUSES = (*TERMINAL, "compilation_error", "cancelled")


def one(stack: Stack, language: str, program: str = "hello") -> tuple[float, dict]:
    started = time.monotonic()
    response = stack.session.post(
        stack.url("/api/v1/executions"), json={"language": language, "code": PROGRAMS[language][program]}, timeout=30
    )
    response.raise_for_status()
    task_id = response.json()["task_id"]
    deadline = started + 120
    while time.monotonic() < deadline:
        body = stack.session.get(stack.url(f"/api/v1/executions/{task_id}"), timeout=30).json()
        if body["status"] in TERMINAL_STATUSES:
            return time.monotonic() - started, body
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{language}: not terminal after 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--loops", type=int, default=0, help="Endless loops per language (killed at 5 s).")
    options = parser.parse_args()
    data = {**machine(), "runs": options.runs, "workers": options.workers, "languages": {}}
    with Stack("languages", options.database) as stack:
        stack.start_web()
        stack.start_workers(options.workers)
        stack.session.headers["Authorization"] = f"Bearer {stack.key}"
        for language in CATALOG:
            # One unmeasured run first: the worker's first job of a language pays for the image's page cache.
            one(stack, language)
            walls, compiles, runs, statuses = [], [], [], set()
            for _ in range(options.runs):
                wall, body = one(stack, language)
                walls.append(wall)
                statuses.add(body["status"])
                runs.append(body["duration_ms"] or 0)
                if body["compile_duration_ms"] is not None:
                    compiles.append(body["compile_duration_ms"])
            killed = [one(stack, language, "loop")[1]["duration_ms"] for _ in range(options.loops)]
            data["languages"][language] = {
                "statuses": sorted(statuses),
                "submit_to_terminal_s": summary(walls),
                "compile_ms": summary(compiles),
                "run_ms": summary(runs),
                "loop_killed_after_ms": summary(killed),
            }
            print(language, data["languages"][language]["submit_to_terminal_s"], flush=True)
    rows = [
        "| language | statuses | submit -> terminal p50 / p95 (s) | compile p50 (ms) | run p50 (ms) | loop killed after (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for language, figures in data["languages"].items():
        wall, compile_ms, run_ms = figures["submit_to_terminal_s"], figures["compile_ms"], figures["run_ms"]
        compiled = f"{compile_ms['p50']:.0f}" if compile_ms.get("n") else "-"
        loops = figures["loop_killed_after_ms"]
        killed = f"{loops['min']:.0f}-{loops['max']:.0f}" if loops.get("n") else "-"
        rows.append(
            f"| {language} | {', '.join(figures['statuses'])} | {wall['p50']:.3f} / {wall['p95']:.3f} | {compiled} "
            f"| {run_ms['p50']:.0f} | {killed} |"
        )
    markdown = (
        "# Each language's hello world at light load\n\n"
        f"{options.runs} runs per language, one at a time, {options.workers} workers, {options.database}.\n"
        f"{load_note(data)}\n\n" + "\n".join(rows) + "\n"
    )
    figure, axis = plt.subplots(figsize=(9, 4))
    names = list(data["languages"])
    axis.bar(names, [data["languages"][name]["submit_to_terminal_s"]["p50"] for name in names])
    axis.set_ylabel("submit -> terminal p50 (s)")
    axis.tick_params(axis="x", rotation=45)
    write_report("languages", markdown, data, figure)


if __name__ == "__main__":
    main()
