"""Ingestion: how fast the API accepts submissions, against a bare Django view served the same way.

    .venv/bin/python bench/ingest.py [-n 20000] [-c 32] [--database sqlite --database postgres]
        [--server production --server 'gunicorn --workers 2 ...']

For each database and each server (default: the production one, `python -m sandbox_project.serve`
with DEBUG off and metrics in a multiprocess directory as docker-compose.yml sets them; several
--server are measured back to back in the same run) it starts the web server and no workers, so
every job stays queued; then `hey -n N -c C` POSTs `print(1)` to
/api/v1/execute with a valid key, and the same to /bench/bare, a view with no authentication,
database or queue (it exists only in bench.settings). Afterwards it checks that every 202 has its
row in the database and its job in the queue, and reports the web processes' memory before and
after. Writes bench/results/ingest.md, .json and .png. A benchmark, not a test: it never fails on a
number.
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import Stack, load_note, machine, summary, write_report  # noqa: E402

BODY = "print(1)"
WARM_UP_REQUESTS = 1000
# The server as deployed: python -m sandbox_project.serve.
PRODUCTION = "production"


def label(server: str) -> str:
    """A server command, short enough for a table: its first word and its WSGI target."""
    words = server.split()
    return server if len(words) < 2 else f"{words[0].rsplit('/', 1)[-1]} … {words[-1]}"


def hey(url: str, requests: int, concurrency: int, key: str = "", stack: Stack | None = None) -> dict:
    """Run hey and summarise its per-request CSV (it prints no summary in that mode).

    With `stack`, also the CPU time the web server and hey each spent per request: on two cores
    they share, that is what bounds the rate.
    """
    args = ["hey", "-n", str(requests), "-c", str(concurrency), "-m", "POST", "-d", BODY, "-o", "csv"]
    if key:
        args += ["-H", f"Authorization: Bearer {key}"]
    web_cpu = stack.web_cpu() if stack else 0.0
    hey_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    hey_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    web_cpu = stack.web_cpu() - web_cpu if stack else 0.0
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    # hey splits the requests evenly between its connections and drops the remainder.
    sent = requests // concurrency * concurrency
    latencies = [float(r["response-time"]) * 1000 for r in rows]
    statuses = Counter(r["status-code"] for r in rows)
    wall = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
    return {
        "requests": len(rows),
        # hey leaves out requests that got no response at all (refused, reset, timed out).
        "no_response": sent - len(rows),
        "seconds": wall,
        "requests_per_s": len(rows) / wall,
        "latency_ms": summary(latencies),
        "statuses": dict(statuses),
        "non_2xx": sum(n for s, n in statuses.items() if not s.startswith("2")) + sent - len(rows),
        "web_cpu_ms_per_request": web_cpu / len(rows) * 1000,
        "hey_cpu_ms_per_request": (
            hey_after.ru_utime + hey_after.ru_stime - hey_cpu.ru_utime - hey_cpu.ru_stime
        ) / len(rows) * 1000,
        "latencies_ms": latencies,
    }


def waiting_job_ids(stack: Stack) -> list[bytes]:
    """Jobs in the shared queue, and those waiting behind their tenant's max_running (its backlog)."""
    ids = stack.redis.lrange("rq:queue:sandbox", 0, -1)
    for key in stack.redis.keys("rce:tenant:*:backlog"):
        ids += stack.redis.lrange(key, 0, -1)
    return ids


def check_durable(stack: Stack, accepted: int) -> dict:
    """Every 202 must have left a committed row and a queued job, and nothing else may exist."""
    rows = {str(r[0]).replace("-", "") for r in stack.query("SELECT id FROM executions_execution")}
    jobs = {
        # Job ids are execution-<uuid>-<attempt>.
        j.decode().removeprefix("execution-").rsplit("-", 1)[0].replace("-", "")
        for j in waiting_job_ids(stack)
    }
    return {
        "accepted_202": accepted,
        "rows": len(rows),
        "queued_jobs": len(jobs),
        "rows_without_job": len(rows - jobs),
        "jobs_without_row": len(jobs - rows),
        "ok": accepted == len(rows) == len(jobs) and rows == jobs,
    }


def run(database: str, requests: int, concurrency: int, port: int, server: str) -> dict:
    print(f"-- {database}, {server}: starting the web server", file=sys.stderr)
    with Stack("ingest", database, port) as stack:
        stack.start_web("" if server == PRODUCTION else server)
        execute_url, bare_url = stack.url("/api/v1/execute"), stack.url("/bench/bare")
        # Warm up every web process, its database connection and its Redis client.
        warm = hey(execute_url, WARM_UP_REQUESTS, concurrency, stack.key)
        hey(bare_url, WARM_UP_REQUESTS, concurrency)
        rss_before = stack.web_rss()
        print(f"-- {database}: bare view, {requests} requests", file=sys.stderr)
        bare = hey(bare_url, requests, concurrency, stack=stack)
        print(f"-- {database}: /api/v1/execute, {requests} requests", file=sys.stderr)
        execute = hey(execute_url, requests, concurrency, stack.key, stack)
        rss_after = stack.web_rss()
        accepted = warm["statuses"].get("202", 0) + execute["statuses"].get("202", 0)
        return {
            "database": database,
            "server": server,
            "execute": execute,
            "bare": bare,
            "ratio": execute["requests_per_s"] / bare["requests_per_s"],
            "warm_up_statuses": warm["statuses"],
            "durable": check_durable(stack, accepted),
            "web_rss_mib": {"before": rss_before, "after": rss_after},
        }


def markdown(results: list[dict], args: argparse.Namespace, context: dict) -> str:
    lines = [
        "# Ingestion",
        "",
        f"`hey -n {args.requests} -c {args.concurrency}` POSTing `{BODY}`; no workers (jobs stay queued). "
        f"Latencies in ms. Servers: {'; '.join(f'`{s}`' for s in context['servers'])}.",
        "",
        "| database | server | endpoint | requests/s | mean | p50 | p99 | max | non-2xx | web CPU ms/req | hey CPU ms/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for name, path in (("execute", "/api/v1/execute"), ("bare", "bare view")):
            h = r[name]
            lat = h["latency_ms"]
            lines.append(
                f"| {r['database']} | {label(r['server'])} | {path} | {h['requests_per_s']:.0f} | {lat['mean']:.1f} | "
                f"{lat['p50']:.1f} | "
                f"{lat['p99']:.1f} | {lat['max']:.1f} | {h['non_2xx']} | {h['web_cpu_ms_per_request']:.2f} | "
                f"{h['hey_cpu_ms_per_request']:.2f} |"
            )
    lines += ["", "| database | server | execute / bare | 202s with a row and a job | web RSS before -> after (MiB) |",
              "| --- | --- | --- | --- | --- |"]
    for r in results:
        d = r["durable"]
        before, after = r["web_rss_mib"]["before"], r["web_rss_mib"]["after"]
        rss = (
            f"master {before['master']:.0f} -> {after['master']:.0f}; workers "
            + ", ".join(f"{b:.0f} -> {a:.0f}" for b, a in zip(before["workers"], after["workers"]))
        )
        durable = f"{d['rows']} rows, {d['queued_jobs']} jobs for {d['accepted_202']} 202s: " + (
            "all match" if d["ok"] else "MISMATCH"
        )
        lines.append(f"| {r['database']} | {label(r['server'])} | {r['ratio']:.2f}x | {durable} | {rss} |")
    lines += ["", load_note(context), ""]
    return "\n".join(lines)


def plot(results: list[dict]):
    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    everything = [x for r in results for name in ("execute", "bare") for x in r[name]["latencies_ms"]]
    bins = np.logspace(np.log10(max(min(everything), 0.1)), np.log10(max(everything)), 80)
    for axis, r in zip(axes[0], results):
        for name, endpoint in (("bare", "bare view"), ("execute", "/api/v1/execute")):
            h = r[name]
            _, _, bars = axis.hist(
                h["latencies_ms"], bins=bins, alpha=0.6, label=f"{endpoint}: {h['requests_per_s']:.0f} req/s"
            )
            axis.axvline(h["latency_ms"]["p99"], linestyle="--", linewidth=1, color=bars[0].get_facecolor())
        axis.set_xscale("log")
        axis.set_title(f"{r['database']}, {label(r['server'])}: latency (dashed: p99)", fontsize=9)
        axis.set_xlabel("ms")
        axis.set_ylabel("requests")
        axis.legend()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--database", action="append", choices=["sqlite", "postgres"],
                        help="default: both")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--server", action="append",
                        help=f"a server command, {{port}} for the port, or {PRODUCTION!r} (the default); repeat "
                        "to compare in one run, e.g. --server production "
                        "--server 'gunicorn -k gthread -w 2 --threads 32 -b 127.0.0.1:{port} sandbox_project.wsgi'")
    parser.add_argument("--name", default="ingest", help="report name: bench/results/NAME.md, .json, .png")
    args = parser.parse_args()
    servers = args.server or [PRODUCTION]
    context = {**machine(), "servers": servers}
    databases = args.database or ["sqlite", "postgres"]
    results = [run(db, args.requests, args.concurrency, args.port, s) for db in databases for s in servers]
    figure = plot(results)
    for r in results:
        for name in ("execute", "bare"):
            del r[name]["latencies_ms"]
    write_report(args.name, markdown(results, args, context), {**context, "results": results}, figure)


if __name__ == "__main__":
    main()
