"""What the benchmarks share: a private platform to run against, figures, and the report files.

A Stack is the platform as the README deploys it (granian with sandbox_project/serve.py, rq
workers with the project's worker class), on its own database (a temporary SQLite file, or the
PostgreSQL database BENCH_POSTGRES_URL, dropped and created anew) and its own Redis database
(BENCH_REDIS_URL, emptied before and after). It creates one tenant and key, and stops and removes
everything on the way out. The benchmark process itself never imports Django: it talks HTTP to the
server and reads the database and Redis directly, as an outside observer.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://rce:rce@127.0.0.1:5432/rce_bench")
TERMINAL = ("completed", "failed", "timed_out", "oom_killed", "output_limit_exceeded", "error")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def machine() -> dict:
    """Where and when the figures were taken: on a shared machine, the load explains a lot."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Stack:
    """One private platform: database, Redis database, web server, workers, tenant and key."""

    def __init__(self, name: str, database: str = "postgres", port: int = 8100):
        self.name = name
        self.database = database
        self.port = port
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rce-bench-{name}-"))
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.key = ""
        self.redis = redis.Redis.from_url(REDIS_URL)
        database_url = POSTGRES_URL if database == "postgres" else f"sqlite:///{self.tmp / 'db.sqlite3'}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "VAR_DIR": str(self.tmp),
            "DEBUG": "0",
            # As docker-compose.yml runs the web and the workers.
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
            # The ingestion run queues 20,000 jobs with no worker: above the default back-pressure
            # ceiling (10,000), which would answer 503 to the rest.
            "QUEUE_MAX_DEPTH": os.environ.get("QUEUE_MAX_DEPTH", "1000000"),
        }
        (self.tmp / "prometheus").mkdir()
        self.session = requests.Session()

    def __enter__(self) -> Stack:
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- set-up and tear-down -----------------------------------------------------------------
    def prepare(self) -> None:
        self.redis.flushdb()
        if self.database == "postgres":
            self.recreate_postgres(drop_only=False)
        self.manage("migrate", "--noinput", "-v0")
        self.key = self.create_tenant("bench")
        # One tenant measures the platform, not its quotas: no rate limit, no queue quota, and as
        # many running at once as there are workers.
        self.manage(
            "shell", "-c",
            "from executions.models import Tenant; "
            "Tenant.objects.filter(name='bench').update(rate_per_minute=10**9, max_queued=10**9, max_running=1000)",
        )

    def recreate_postgres(self, drop_only: bool) -> None:
        parts = urlsplit(POSTGRES_URL)
        name = parts.path.lstrip("/")
        with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if not drop_only:
                conn.execute(f'CREATE DATABASE "{name}"')

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def create_tenant(self, name: str) -> str:
        """A new tenant on the default quotas; its API key (create_tenant prints it last)."""
        return self.manage("create_tenant", name).strip().splitlines()[-1]

    def spawn(self, args: list[str], log_name: str, **env: str) -> subprocess.Popen:
        log = open(self.tmp / log_name, "ab")
        # Its own session, so that a Ctrl-C on the benchmark reaches it only through close().
        return subprocess.Popen(
            args, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_web(self, command: str = "") -> None:
        """The web server exactly as the README recommends, bound to our port, or another `command`.

        `command` is split on spaces; {port} in it becomes our port, and a first word without a slash
        is looked up beside this Python, in the virtualenv.
        """
        args = command.format(port=self.port).split() if command else [sys.executable, "-m", "sandbox_project.serve"]
        if "/" not in args[0] and (BIN / args[0]).exists():
            args[0] = str(BIN / args[0])
        self.web = self.spawn(args, "web.log", BIND=f"127.0.0.1:{self.port}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"the web server exited:\n{self.log_tail('web.log')}")
            try:
                if self.session.get(self.url("/healthz"), timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer within 30 s:\n{self.log_tail('web.log')}")

    def start_workers(self, count: int) -> None:
        for i in range(count):
            self.workers.append(
                self.spawn([sys.executable, "manage.py", "rqworker", "sandbox"], f"worker-{i}.log")
            )
        # rq registers a worker in Redis when it is ready to take jobs.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(w.poll() is not None for w in self.workers):
                raise RuntimeError(f"a worker exited:\n{self.log_tail('worker-0.log')}")
            if self.redis.scard("rq:workers:sandbox") >= count:
                return self.wait_for_probes()
            time.sleep(0.2)
        raise RuntimeError("the workers did not register within 60 s")

    def wait_for_probes(self) -> None:
        """Until the workers have asked every sandbox image for its versions (executions.sandbox.runtimes),
        which they do once, on their first passes after the start: figures are of the steady state."""
        images = int(self.manage("shell", "-c", "from executions.sandbox.images import families; print(len(families()))").split()[-1])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if len(list(self.redis.scan_iter("rce:runtimes:*"))) >= images and not list(self.redis.scan_iter("rce:runtimes-probe:*")):
                return
            time.sleep(0.5)
        print("-- the workers had not asked every image for its versions within 180 s; going on", file=sys.stderr)

    def start_supervisor(self, slots: int | None = None, reserve: int | None = None) -> int:
        """`manage.py sandbox_workers`, as make run starts it; the number of workers once all are up."""
        args = [sys.executable, "manage.py", "sandbox_workers"]
        args += ["--slots", str(slots)] if slots else []
        args += ["--reserve", str(reserve)] if reserve is not None else []
        self.workers.append(self.spawn(args, "supervisor.log"))
        expected = int(self.manage("shell", "-c", (
            "from django.conf import settings; "
            f"print({slots or 'settings.SANDBOX_SLOTS'} + {'settings.SANDBOX_RESERVE_SLOTS' if reserve is None else reserve})"
        )).split()[-1])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.workers[-1].poll() is not None:
                raise RuntimeError(f"the supervisor exited:\n{self.log_tail('supervisor.log')}")
            if len(list(self.redis.scan_iter("rce:worker-alive:*"))) >= expected:
                self.wait_for_probes()
                return expected
            time.sleep(0.2)
        raise RuntimeError(f"the workers did not start within 120 s:\n{self.log_tail('supervisor.log')}")

    def stop(self, processes: list[subprocess.Popen]) -> None:
        # SIGTERM lets a worker finish its execution; the web server stops gracefully on it too.
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def close(self) -> None:
        self.stop([p for p in [self.web, *self.workers] if p is not None])
        self.session.close()
        self.redis.flushdb()
        if self.database == "postgres":
            self.recreate_postgres(drop_only=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- observing it -------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def submit(self, code: str) -> str:
        response = self.session.post(
            self.url("/api/v1/execute"), data=code.encode(), headers={"Authorization": f"Bearer {self.key}"}
        )
        response.raise_for_status()
        return response.json()["task_id"]

    def web_rss(self) -> dict:
        """Resident memory in MiB of the web server's master process and of each of its workers."""
        workers = children(self.web.pid) if self.web else []
        return {"master": rss_mib(self.web.pid), "workers": [rss_mib(p) for p in workers]}

    def web_cpu(self) -> float:
        """CPU seconds used so far by the web server's master and workers."""
        return sum(cpu_seconds(p) for p in [self.web.pid, *children(self.web.pid)])

    def worker_rss(self) -> list[float]:
        """Each worker's RSS; under sandbox_workers, each of its workers' (the supervisor's children)."""
        return [rss_mib(pid) for w in self.workers for pid in (children(w.pid) or [w.pid])]

    def query(self, sql: str) -> list[tuple]:
        if self.database == "postgres":
            with psycopg.connect(POSTGRES_URL) as conn:
                return conn.execute(sql).fetchall()
        with sqlite3.connect(self.tmp / "db.sqlite3") as conn:
            return conn.execute(sql).fetchall()

    def executions(self) -> list[dict]:
        """Every execution's id, status, code, timestamps (seconds since the epoch) and time in the sandbox."""
        rows = self.query(
            "SELECT id, status, code, created_at, started_at, finished_at, duration_ms FROM executions_execution"
        )
        return [
            {
                "id": str(row[0]).replace("-", ""),
                "status": row[1],
                "code": row[2],
                "created": epoch(row[3]),
                "started": epoch(row[4]),
                "finished": epoch(row[5]),
                "duration_s": row[6] / 1000 if row[6] is not None else None,
            }
            for row in rows
        ]

    def count_unfinished(self) -> int:
        terminal = ", ".join(f"'{s}'" for s in TERMINAL)
        return self.query(f"SELECT count(*) FROM executions_execution WHERE status NOT IN ({terminal})")[0][0]

    def wait_until_finished(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count_unfinished() and time.monotonic() < deadline:
            time.sleep(0.25)


def epoch(value) -> float | None:
    """A timestamp from either database as seconds since the epoch (SQLite gives text, PostgreSQL datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def write_report(name: str, markdown: str, data: dict, figure) -> None:
    """bench/results/<name>.md, .json and .png; the Markdown is printed as well."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {**data, "load_average_at_end": os.getloadavg()}
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    figure.savefig(RESULTS / f"{name}.png", dpi=110, bbox_inches="tight")
    print(markdown)
    print(f"Written: bench/results/{name}.md, {name}.json, {name}.png")


def load_note(data: dict) -> str:
    start = ", ".join(f"{x:.2f}" for x in data["load_average_at_start"])
    end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{data['date']}, commit {data['commit']}, {data['cpus']} CPUs, Python {data['python']}; "
        f"load average {start} at the start, {end} at the end."
    )


def serve_at(port: int, env: dict[str, str], stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """`python -m sandbox_project.serve` on 127.0.0.1:PORT with `env`, once it answers /healthz."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox_project.serve"],
        cwd=ROOT, env={**env, "BIND": f"127.0.0.1:{port}"}, stdout=subprocess.DEVNULL, stderr=stderr,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the web server did not start")
