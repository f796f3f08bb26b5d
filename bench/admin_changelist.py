"""Admin changelist speed with many executions: seeds rows in a throw-away database, times the pages.

    .venv/bin/python bench/admin_changelist.py [--rows 100000] [--runs 10]
    DATABASE_URL=postgres://rce:rce@127.0.0.1:5432/rce .venv/bin/python bench/admin_changelist.py

Uses Django's test-database machinery, so it never touches the real database: on PostgreSQL it
creates and drops `test_<name>`, on SQLite a file under var/. Each page is fetched with the test
client as a logged-in superuser: once to warm up, then --runs times. It also times two variants,
to show what each choice buys: an exact COUNT(*) paginator, and no (-created_at, -id) index.
"all SQL ms" is what the driver reports for the captured run; SQLite does much of its work while
rows are fetched, after that clock stops, so on SQLite trust "CPU p50 ms" instead. Prints Markdown
and writes JSON to bench/results/admin_changelist.json. It never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from executions.admin import ExecutionAdmin  # noqa: E402
from executions.models import Execution, Tenant  # noqa: E402

TENANTS = 20
STATUSES = ["completed"] * 14 + ["failed"] * 3 + ["timed_out", "oom_killed", "error", "cancelled"]


def seed(rows: int) -> str:
    """Bulk-create `rows` executions over the last 180 days; return one id to search for."""
    rng = random.Random(1)
    tenants = [Tenant.objects.create(name=f"tenant-{i}") for i in range(TENANTS)]
    now = timezone.now()
    batch = []
    for i in range(rows):
        created = now - timedelta(seconds=rng.randrange(180 * 86400))
        batch.append(
            Execution(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                tenant=rng.choice(tenants),
                language="python" if rng.random() < 0.7 else "bash",
                code=f"print({i})\n" * 5,
                stdout=f"{i}\n" * 50,
                status=rng.choice(STATUSES),
                exit_code=0,
                duration_ms=rng.randrange(100, 5000),
                created_at=created,
                started_at=created,
                finished_at=created + timedelta(seconds=1),
            )
        )
        if len(batch) == 5000:
            Execution.objects.bulk_create(batch)
            batch.clear()
    Execution.objects.bulk_create(batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # What autovacuum would have done by now on a live table (visibility map, statistics).
            cursor.execute("VACUUM ANALYZE")
    return str(Execution.objects.order_by("created_at").values_list("id", flat=True)[rows // 2])


def pages(search_id: str, rows: int) -> dict[str, str]:
    tenant = Tenant.objects.get(name="tenant-3").pk
    month = timezone.localtime()
    base = "/admin/executions/execution/"
    return {
        "changelist": base,
        "deep page": f"{base}?p={max(1, min(50, rows // 200))}",
        "status=failed": f"{base}?status__exact=failed",
        "language=bash": f"{base}?language__exact=bash",
        "one tenant": f"{base}?tenant__id__exact={tenant}",
        "tenant + status": f"{base}?tenant__id__exact={tenant}&status__exact=timed_out",
        "this month": f"{base}?created_at__month={month.month}&created_at__year={month.year}",
        "search by id": f"{base}?q={search_id}",
        "detail page": f"{base}{search_id}/change/",
        "tenants list": "/admin/executions/tenant/",
    }


def time_page(client: Client, url: str, runs: int) -> dict:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    # Read now: the next request empties the query log.
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
    count = len(queries)
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    seconds, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "min_ms": min(seconds) * 1000,
        "p50_ms": statistics.median(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
        # This process's CPU time (SQLite's work included, PostgreSQL's not): less swayed by a busy machine.
        "cpu_p50_ms": statistics.median(cpu) * 1000,
        "queries": count,
        "sql_ms": sql_ms,
        "slowest_query_ms": float(slowest["time"]) * 1000,
        "slowest_query": slowest["sql"][:160],
    }


def run_all(client: Client, urls: dict[str, str], runs: int) -> dict:
    return {name: time_page(client, url, runs) for name, url in urls.items()}


def print_table(title: str, results: dict) -> None:
    print(f"\n### {title}\n")
    print("| page | min ms | p50 ms | max ms | CPU p50 ms | queries | all SQL ms | slowest query ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['min_ms']:.1f} | {r['p50_ms']:.1f} | {r['max_ms']:.1f} | {r['cpu_p50_ms']:.1f} "
            f"| {r['queries']} | {r['sql_ms']:.1f} | {r['slowest_query_ms']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    # DEBUG would log every query and slow every page down.
    setup_test_environment(debug=False)
    if connection.vendor == "sqlite":
        (ROOT / "var").mkdir(exist_ok=True)
        connection.settings_dict["TEST"]["NAME"] = str(ROOT / "var" / "bench_admin.sqlite3")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        search_id = seed(args.rows)
        print(f"{connection.vendor}: seeded {args.rows} executions in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench"))
        urls = pages(search_id, args.rows)
        results = {"as built": run_all(client, urls, args.runs)}
        print_table(f"{connection.vendor}, {args.rows} rows, as built", results["as built"])

        capped, ExecutionAdmin.paginator = ExecutionAdmin.paginator, Paginator
        exact = ["changelist", "status=failed", "language=bash", "one tenant"]
        results["exact COUNT(*)"] = run_all(client, {k: urls[k] for k in exact}, args.runs)
        print_table("variant: Django's exact-count paginator", results["exact COUNT(*)"])
        ExecutionAdmin.paginator = capped

        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX exec_created")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        unindexed = ["changelist", "deep page", "language=bash", "this month"]
        results["no exec_created index"] = run_all(client, {k: urls[k] for k in unindexed}, args.runs)
        print_table("variant: without the (-created_at, -id) index", results["no exec_created index"])
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    out = ROOT / "bench" / "results" / "admin_changelist.json"
    out.parent.mkdir(exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing[f"{connection.vendor}-{args.rows}"] = results
    out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
