"""Sandbox timing: start-up cost of a trivial run and precision of the timeout kill, per runtime.

    .venv/bin/python bench/sandbox_timing.py [--runs 20] [--loops 10] [--runtime runc --runtime runsc] [--load N]

Runs straight through executions.sandbox.runner (no queue, no database): the container's whole
lifecycle (create, copy, start, wait, remove) as a worker sees it; then the same in a sandbox made
ahead (executions.sandbox.premade), as a worker with SANDBOX_MAKE_AHEAD does: what a run waits for
(check, deliver, run, exit) apart from what the worker does between jobs (remove, make the next).
With --load N, N other sandboxes loop meanwhile (each its 0.5 CPU, as busy workers' would): the
kill's precision on an overloaded host. Prints Markdown and writes JSON to
bench/results/sandbox_timing.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from bench.common import summary  # noqa: E402
from executions.sandbox import premade, runner  # noqa: E402


def measure(runtime: str, runs: int, loops: int) -> dict:
    limits = runner.Limits.from_settings(runtime="" if runtime == "runc" else runtime)
    trivial = []
    for _ in range(runs):
        started = time.perf_counter()
        result = runner.run("python", "print(1)", limits=limits)
        trivial.append(time.perf_counter() - started)
        assert result.status == "completed", result
    kills, kill_walls = [], []
    for _ in range(loops):
        started = time.perf_counter()
        result = runner.run("python", "while True: pass", limits=limits)
        kill_walls.append(time.perf_counter() - started)
        kills.append(result.duration_ms / 1000)
        assert result.status == "timed_out", result
    return {
        "runtime": runtime,
        "trivial_lifecycle_s": summary(trivial),
        "loop_killed_after_s": summary(kills),
        "loop_lifecycle_s": summary(kill_walls),
        **measure_made_ahead(runtime, limits, runs, loops),
    }


def measure_made_ahead(runtime: str, limits: runner.Limits, runs: int, loops: int) -> dict:
    settings.SANDBOX_RUNTIME = limits.runtime
    between, trivial, kills = [], [], []
    for code, count, expected in (("print(1)", runs, "completed"), ("while True: pass", loops, "timed_out")):
        for _ in range(count):
            started = time.perf_counter()
            premade.tidy()
            premade.prepare("sandbox-timing")
            between.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = premade.run("python", code, limits=limits)
            (trivial if expected == "completed" else kills).append(
                time.perf_counter() - started if expected == "completed" else result.duration_ms / 1000
            )
            assert result.status == expected, result
    premade.discard()
    return {
        "made_ahead_run_s": summary(trivial),
        "made_ahead_loop_killed_after_s": summary(kills),
        "made_ahead_between_jobs_s": summary(between),
    }


@contextlib.contextmanager
def load(runtime: str, count: int):
    """`count` sandboxes of this runtime running infinite loops until the block ends."""
    limits = dataclasses.replace(runner.Limits.from_settings(runtime="" if runtime == "runc" else runtime), timeout_seconds=60)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            runner.run("python", "while True: pass", limits=limits, cancelled=done.is_set)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    # Until they all loop.
    time.sleep(2 + count * 0.5)
    try:
        yield
    finally:
        done.set()
        for thread in threads:
            thread.join(30)


def runtime_available(name: str) -> bool:
    return name == "runc" or name in runner.docker_api().info().get("Runtimes", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="trivial runs per runtime")
    parser.add_argument("--loops", type=int, default=10, help="infinite loops per runtime")
    parser.add_argument("--runtime", action="append", help="runc and/or runsc (default: both, if present)")
    parser.add_argument("--load", type=int, default=0, help="other sandboxes looping meanwhile")
    args = parser.parse_args()
    runtimes = [r for r in (args.runtime or ["runc", "runsc"]) if runtime_available(r)]
    results = []
    for runtime in runtimes:
        with load(runtime, args.load) if args.load else contextlib.nullcontext():
            results.append({**measure(runtime, args.runs, args.loops), "load": args.load})
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox_timing.json").write_text(json.dumps(results, indent=2))
    loaded = f"; {args.load} other sandboxes looping meanwhile" if args.load else ""
    print(f"Timeout {runner.Limits.from_settings().timeout_seconds:.1f} s; seconds{loaded}.\n")
    print("| runtime | measure | n | min | p50 | p95 | max | mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        for key in (
            "trivial_lifecycle_s", "loop_killed_after_s", "loop_lifecycle_s",
            "made_ahead_run_s", "made_ahead_loop_killed_after_s", "made_ahead_between_jobs_s",
        ):
            s = result[key]
            print(
                f"| {result['runtime']} | {key} | {s['n']} | {s['min']:.3f} | {s['p50']:.3f} | "
                f"{s['p95']:.3f} | {s['max']:.3f} | {s['mean']:.3f} |"
            )


if __name__ == "__main__":
    main()
