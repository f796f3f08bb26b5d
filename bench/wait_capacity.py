"""How many `?wait=N` requests the web server holds while plain submissions still get quick answers.

    DATABASE_URL=postgres://… REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/wait_capacity.py

Starts the web server, sandbox_project/serve.py (WEB_WORKERS, WEB_THREADS and WAIT_SLOTS varied per
scenario) on a local port, and no sandbox worker at all: every wait then lasts its whole N seconds,
the worst case for the threads it holds. For each scenario, `hey` (Debian package `hey`) sends W
submissions with `?wait=30` at once, and 3 s later 4 other clients send plain submissions for 15 s,
all while the waits are held; it prints the plain submissions' latency and rate, and what the
waiting requests got (202 after 30 s if they had a slot, at once if not). It empties the Redis
database it is given. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.common import serve_at  # noqa: E402
from executions import store  # noqa: E402
from executions.models import Tenant  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "18011"))
URL = f"http://127.0.0.1:{PORT}/api/v1/executions"
SECONDS = 15
WAIT = 30
# (label, server processes, threads per process, wait slots per worker, waiting clients)
SCENARIOS = [
    ("2x8 threads, no slot limit", 2, 8, 1000, 0),
    ("2x8 threads, no slot limit", 2, 8, 1000, 16),
    ("2x8 threads, no slot limit", 2, 8, 1000, 24),
    ("2x32 threads, 24 slots each", 2, 32, 24, 0),
    ("2x32 threads, 24 slots each", 2, 32, 24, 48),
    ("2x32 threads, 24 slots each", 2, 32, 24, 120),
]


def api_key() -> str:
    call_command("migrate", verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(name="bench")
    return tenant.create_api_key("bench")[1]


def start_server(workers: int, threads: int, slots: int) -> subprocess.Popen:
    env = dict(os.environ, WEB_WORKERS=str(workers), WEB_THREADS=str(threads), WAIT_SLOTS=str(slots))
    return serve_at(PORT, env)


def hey(key: str, clients: int, amount: list[str], query: str = "") -> subprocess.Popen:
    command = ["hey", *amount, "-c", str(clients), "-t", "60", "-m", "POST",
               "-H", f"Authorization: Bearer {key}", "-T", "application/json", "-d", '{"code": "print(1)"}']
    return subprocess.Popen([*command, URL + query], stdout=subprocess.PIPE, text=True)


def summary(output: str) -> dict:
    def number(pattern: str) -> float | None:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else None

    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": (number(r"50%+ in ([\d.]+) secs") or 0) * 1000,
        "p99_ms": (number(r"99%+ in ([\d.]+) secs") or 0) * 1000,
        "codes": {code: int(count) for code, count in codes.items()},
        "errors": "Error distribution" in output,
    }


def count_connections(stop: threading.Event, peak: list[int]) -> None:
    """The most connections the bench's PostgreSQL database had at once (sampled), or nothing on SQLite."""
    if connection.vendor != "postgresql":
        return
    while not stop.wait(0.25):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            peak.append(cursor.fetchone()[0])
    connection.close()


def scenario(key: str, workers: int, threads: int, slots: int, waiters: int) -> dict:
    store.connection().flushdb()
    server = start_server(workers, threads, slots)
    try:
        # One request per waiting client, all at once: each holds its wait for the whole window.
        waiting = hey(key, waiters, ["-n", str(waiters)], f"?wait={WAIT}") if waiters else None
        time.sleep(3)
        stop, peak = threading.Event(), [0]
        counter = threading.Thread(target=count_connections, args=(stop, peak))
        counter.start()
        plain = hey(key, 4, ["-z", f"{SECONDS}s"])
        result = {"plain": summary(plain.communicate()[0])}
        stop.set()
        counter.join()
        result["db_connections_peak"] = max(peak)
        if waiting:
            result["waiting"] = summary(waiting.communicate()[0])
        return result
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    key = api_key()
    rows = []
    for label, workers, threads, slots, waiters in SCENARIOS:
        result = scenario(key, workers, threads, slots, waiters)
        rows.append({"config": label, "waiting_clients": waiters, **result})
        plain, waiting = result["plain"], result.get("waiting") or {}
        print(
            f"| {label} | {waiters} | {plain['p50_ms']:.0f} / {plain['p99_ms']:.0f} ms | {plain['rps']:.0f}/s "
            f"| {plain['codes']} | {waiting.get('codes', '-')} | "
            f"{waiting.get('p50_ms', 0):.0f} ms | {result['db_connections_peak']} |",
            flush=True,
        )
    out = ROOT / "bench/results/wait_capacity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    print("| config | waiting clients | plain p50 / p99 | plain rate | plain codes | waiting codes | waiting p50 "
          "| database connections (peak) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    main()
