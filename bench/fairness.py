"""Fair scheduling: tenant B's queue wait while tenant A has a large backlog, against an idle system.

    REDIS_URL=redis://127.0.0.1:6379/10 DATABASE_URL=postgres://… \
        .venv/bin/python bench/fairness.py [--workers 2] [--flood 500] [--probes 20] [--gap 0.6]

Starts real `manage.py rqworker sandbox` processes. Phase "idle": B submits --probes executions,
one every --gap seconds, with nothing else queued. Phase "flood": A queues --flood executions at
once (its max_running set to the number of workers, so A alone could use every worker), then B
submits the same probes. The queue wait of each probe is its row's started_at - created_at.
`--flood-max-running N` shows what an unlimited tenant does to B (try a small --flood with it).

Migrates the database it is given and empties its Redis database (never 0): point both at a
scratch database. Prints Markdown and writes JSON to bench/results/fairness.json. A benchmark,
not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rq import Worker  # noqa: E402

from bench.common import percentile, summary  # noqa: E402
from executions import scheduler, store, submissions  # noqa: E402
from executions.models import Execution, Tenant  # noqa: E402

PROBE = "print('b')"
FLOOD = "print('a')"


def tenant(name: str, max_running: int | None = None) -> Tenant:
    row, _ = Tenant.objects.get_or_create(name=name)
    row.max_running = max_running
    row.save()
    Execution.objects.filter(tenant=row).delete()
    return row


def wait_done(ids: list, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while Execution.objects.filter(id__in=ids, finished_at=None).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the probes did not finish in time")
        time.sleep(0.1)


def probe(b: Tenant, count: int, gap: float) -> list[float]:
    ids = []
    for _ in range(count):
        execution, _ = submissions.submit(b, submissions.Submission("python", PROBE))
        ids.append(execution.id)
        time.sleep(gap)
    wait_done(ids)
    rows = Execution.objects.filter(id__in=ids)
    return [(row.started_at - row.created_at).total_seconds() for row in rows]


def start_workers(count: int) -> list[subprocess.Popen]:
    command = [sys.executable, str(ROOT / "manage.py"), "rqworker", "sandbox"]
    log = open(ROOT / "bench" / "results" / "fairness-workers.log", "w")
    return [subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log) for _ in range(count)]


def wait_for_workers(count: int, timeout: float = 120) -> None:
    """Until every worker listens on the queue: on a loaded machine, start-up takes seconds."""
    deadline = time.monotonic() + timeout
    while Worker.count(queue=scheduler.queue()) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start in time")
        time.sleep(0.2)


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.6)
    parser.add_argument("--flood-max-running", type=int, default=0, help="default: --workers")
    args = parser.parse_args()
    database = settings.REDIS_URL.split("?")[0].rstrip("/").rpartition("/")[2]
    if database in ("", "0"):
        raise SystemExit("set REDIS_URL to a scratch database (not 0): this empties it")
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    store.connection().flushdb()
    a = tenant("bench-a", args.flood_max_running or args.workers)
    b = tenant("bench-b")
    workers = start_workers(args.workers)
    try:
        wait_for_workers(args.workers)
        probe(b, 2, args.gap)  # a warm-up, outside both phases
        idle = probe(b, args.probes, args.gap)
        started = time.monotonic()
        for _ in range(args.flood):
            submissions.submit(a, submissions.Submission("python", FLOOD))
        queued = time.monotonic() - started
        flooded = probe(b, args.probes, args.gap)
        backlog_left = Execution.objects.filter(tenant=a, status="queued").count()
        # A's remaining rows go, so that their jobs are skipped quickly and the workers stop soon.
        Execution.objects.filter(tenant=a, status="queued").delete()
        a_runs = Execution.objects.filter(tenant=a).exclude(finished_at=None)
        durations = [(r.finished_at - r.started_at).total_seconds() for r in a_runs]
    finally:
        stop_workers(workers)
        store.connection().flushdb()
    report = {
        "workers": args.workers,
        "flood": args.flood,
        "flood_max_running": a.max_running,
        "flood_queued_in_s": queued,
        "flood_left_queued_when_b_was_done": backlog_left,
        "a_run_seconds": summary(durations) if durations else None,
        "b_wait_idle_s": summary(idle),
        "b_wait_flood_s": summary(flooded),
    }
    report["p95_ratio"] = report["b_wait_flood_s"]["p95"] / report["b_wait_idle_s"]["p95"]
    (ROOT / "bench" / "results" / "fairness.json").write_text(json.dumps(report, indent=2))
    print(f"{args.workers} workers; A queued {args.flood} at once (max_running {a.max_running}); "
          f"{backlog_left} of A's were still queued when B's last probe ended.")
    if durations:
        print(f"A's runs: p50 {percentile(durations, 50):.3f} s, p95 {percentile(durations, 95):.3f} s.\n")
    print("| B's queue wait | n | p50 | p95 | max |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in (("idle system", idle), ("under A's flood", flooded)):
        s = summary(values)
        print(f"| {name} | {s['n']} | {s['p50']:.3f} s | {s['p95']:.3f} s | {s['max']:.3f} s |")
    print(f"\np95 under the flood / p95 idle: {report['p95_ratio']:.2f}")


if __name__ == "__main__":
    main()
