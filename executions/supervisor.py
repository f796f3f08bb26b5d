"""Keep SANDBOX_SLOTS sandbox workers running: `python manage.py sandbox_workers` (make run, compose).

Each worker is a SandboxWorker in a process forked from this one, so the workers share its imported
code. A worker that dies, however it dies, is replaced, after a pause that doubles while workers keep
dying young, and what it held ends at once through the reconciler: a reaped process writes nothing
more. One SIGTERM or SIGINT here sends each worker one SIGTERM, rq's warm shutdown (the execution in
hand finishes), and this process exits when they all have; a second signal is passed on as well,
and makes rq abandon the execution in hand.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import django_rq
from django.conf import settings
from django.db import connections
from prometheus_client import multiprocess, start_http_server
from rq.worker import SimpleWorker

from executions import metrics, reconciler, store

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
# A worker that dies younger than this counts as a crash: its replacement waits, longer each time.
STABLE_SECONDS = 30
# A worker stopped (SIGSTOP, a debugger's stop) this long is killed and replaced as a dead one: it
# would keep its slot, its execution, and the job Redis hands its pending pop, for as long as it stays so.
STOPPED_SECONDS = 5
BACKOFF_MAX_SECONDS = 60
PR_SET_PDEATHSIG = 1


def backoff_seconds(crashes: int) -> float:
    """The pause before a replacement after this many workers in a row died young: 0, 1, 2, 4 ... 60."""
    return 0 if crashes == 0 else min(BACKOFF_MAX_SECONDS, 2 ** (crashes - 1))


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


@dataclass
class Supervisor:
    slots: int
    # Workers beyond the slots that take only express jobs: a tenant's first run when it has
    # nothing running (executions/scheduler.py).
    reserve: int = 0
    clock: Callable[[], float] = time.monotonic
    # pid -> (worker name, start time on self.clock)
    workers: dict[int, tuple[str, float]] = field(default_factory=dict)
    reserves: set[int] = field(default_factory=set)
    # Processes that deliver webhooks (executions.webhooks.WebhookWorker): never a sandbox worker.
    webhook_workers: int = 0
    webhook_pids: set[int] = field(default_factory=set)
    crashes: int = 0
    next_start: float = 0.0
    stop_requests: int = 0
    # pid -> when it was first seen stopped, on self.clock
    stopped: dict[int, float] = field(default_factory=dict)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        if settings.WORKER_METRICS_PORT:
            # One port for all the workers: they share this container's multiprocess directory.
            start_http_server(settings.WORKER_METRICS_PORT, registry=metrics.registry())
        log.info("supervising %d sandbox workers (SANDBOX_SLOTS) and %d in reserve", self.slots, self.reserve)
        signalled = 0
        while True:
            self.reap()
            self.kill_stopped()
            if self.stop_requests > signalled:
                signalled = self.stop_requests
                self.signal_workers()
            if self.stop_requests:
                if not self.workers:
                    log.info("every sandbox worker has stopped")
                    return
            else:
                self.fill()
            time.sleep(TICK_SECONDS)

    def request_stop(self, signum, frame) -> None:
        # Only counted here: the loop signals the workers, so that none is forked past the count.
        self.stop_requests += 1

    def signal_workers(self) -> None:
        log.info("stopping %d sandbox workers (they finish the execution in hand)", len(self.workers))
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def fill(self) -> None:
        wanted = self.slots + self.reserve + self.webhook_workers
        while len(self.workers) < wanted and self.clock() >= self.next_start:
            try:
                if len(self.webhook_pids) < self.webhook_workers:
                    self.start_worker(webhooks=True)
                    continue
                self.start_worker(reserve=len(self.reserves) < self.reserve)
            except OSError:
                # Out of processes or memory for the moment: try again after a pause.
                log.exception("could not start a sandbox worker")
                self.crashes += 1
                self.next_start = self.clock() + backoff_seconds(self.crashes)

    def start_worker(self, reserve: bool = False, webhooks: bool = False) -> None:
        name = uuid.uuid4().hex
        parent = os.getpid()
        # A database connection must not be shared across a fork; Redis' client reconnects by itself.
        connections.close_all()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                (work_webhooks if webhooks else work)(name, parent, reserve)
                code = 0
            except BaseException:
                log.exception("sandbox worker %s failed", name)
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = (name, self.clock())
        if reserve:
            self.reserves.add(pid)
        if webhooks:
            self.webhook_pids.add(pid)
            log.info("started webhook worker %s (pid %d)", name, pid)
            return
        log.info("started sandbox worker %s (pid %d%s)", name, pid, ", in reserve" if reserve else "")

    def kill_stopped(self) -> None:
        """SIGKILL each worker stopped for STOPPED_SECONDS: reap() then settles and replaces it."""
        now = self.clock()
        for pid in list(self.workers):
            if process_state(pid) not in ("T", "t"):
                self.stopped.pop(pid, None)
                continue
            since = self.stopped.setdefault(pid, now)
            if now - since >= STOPPED_SECONDS:
                log.warning("worker %s (pid %d) stopped for %.0f s: killing it", self.workers[pid][0], pid, now - since)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while self.workers:
            try:
                # Seen dead but not yet reaped: its pid is still its own (a zombie's), so the process
                # group it led can be killed without a chance of hitting a new process of that pid.
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if pid not in self.workers:
                os.waitpid(pid, 0)
                continue
            # Whatever it started in its session dies with it: rq's scheduler process, forked by a
            # webhook worker, would otherwise run on, orphaned, holding the scheduler's lock.
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _, status = os.waitpid(pid, 0)
            self.stopped.pop(pid, None)
            name, started = self.workers.pop(pid)
            self.reserves.discard(pid)
            if pid in self.webhook_pids:
                self.webhook_pids.discard(pid)
                self.bury(pid, name, started, status, kind="webhook")
            else:
                self.bury(pid, name, started, status)

    def bury(self, pid: int, name: str, started: float, status: int, kind: str = "sandbox") -> None:
        lived = self.clock() - started
        # rq's warm shutdown (a SIGTERM) exits 0 at any age: that is no crash.
        crashed = lived < STABLE_SECONDS and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
        self.crashes = self.crashes + 1 if crashed else 0
        self.next_start = self.clock() + backoff_seconds(self.crashes)
        level = logging.INFO if self.stop_requests else logging.WARNING
        log.log(level, "%s worker %s (pid %d) %s after %.1f s", kind, name, pid, describe(status), lived)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Its live gauges must leave the sum (as gunicorn.py does for the web's processes).
            multiprocess.mark_process_dead(pid)
        if kind == "sandbox":
            # A webhook worker holds no execution: its deliveries' jobs are queued again by the next.
            self.release(name)
        if self.crashes and not self.stop_requests:
            log.warning("replacing it in %.0f s (%d in a row died young)", self.next_start - self.clock(), self.crashes)

    def release(self, name: str) -> None:
        try:
            connection = django_rq.get_connection(settings.SANDBOX_QUEUE)
            connection.delete(reconciler.ALIVE_KEY.format(name), store.ENGINE_KEY.format(name))
            # rq's own record of it, which would show it busy until its key expired (up to 7 minutes).
            record = SimpleWorker.find_by_key(SimpleWorker.redis_worker_namespace_prefix + name, connection=connection)
            if record is not None:
                record.register_death()
            settled = reconciler.release_dead_worker(name)
            if settled:
                log.warning("sandbox worker %s held %d executions: settled by the reconciler", name, settled)
        except Exception:
            # The heartbeat's expiry lets a later maintenance pass settle them instead.
            log.exception("could not settle the executions of sandbox worker %s", name)
        finally:
            connections.close_all()


def process_state(pid: int) -> str:
    """Its state letter in /proc (R, S, D, T stopped, t traced, Z ...); "" if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


def work(name: str, parent: int, reserve: bool = False) -> None:
    """A forked child's life: one SandboxWorker until it is told to stop, on the express and sandbox
    queues, or on the express queue alone in reserve."""
    from executions.worker import SandboxWorker

    # Its own session, so that a terminal's Ctrl-C reaches only the supervisor, which passes it on once.
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # If the supervisor dies (SIGKILL, OOM), the kernel sends the SIGTERM it would have sent.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return
    queue = django_rq.get_queue(settings.SANDBOX_EXPRESS_QUEUE if reserve else settings.SANDBOX_QUEUE)
    # rqworker's default TTL, which SandboxWorker shortens to fit its maintenance interval.
    worker = SandboxWorker([queue], connection=queue.connection, name=name, worker_ttl=420, serve_metrics=False)
    worker.work(logging_level=logging.getLevelName(logging.getLogger().level))


def work_webhooks(name: str, parent: int, reserve: bool = False) -> None:
    """A forked child's life as a webhook worker: the webhooks queue and its retries' scheduler."""
    from executions.webhooks import WebhookWorker

    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return
    queue = django_rq.get_queue(settings.WEBHOOK_QUEUE)
    worker = WebhookWorker([queue], connection=queue.connection, name=name)
    worker.work(logging_level=logging.getLevelName(logging.getLogger().level))
