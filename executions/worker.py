"""The rq worker that runs sandboxes: `python manage.py rqworker sandbox` uses it (settings.RQ)."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import threading
import time

import django_rq
import redis
from django.conf import settings
from django.db import close_old_connections
from prometheus_client import start_http_server
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker, WorkerStatus

from executions import metrics, ownjobs, reconciler, scheduler, store
from executions.sandbox import janitor, premade, runner, runtimes
from executions.sandbox.runner import docker_api

log = logging.getLogger(__name__)

ALIVE_TTL = 15
ALIVE_EVERY = 5
# How often a worker whose engine is unreachable asks it again.
ENGINE_POLL_SECONDS = 1
# `kill -USR1 <worker pid>` prints where each of its threads is to its stderr (a worker slow to stop,
# or one that seems stuck), and the worker goes on.
STACKS_SIGNAL = signal.SIGUSR1


class SandboxWorker(ownjobs.OwnJobsOnly, SimpleWorker):
    """Runs jobs in its own process: isolation comes from the container, so forking buys nothing.

    Its maintenance pass, on start and every WORKER_MAINTENANCE_INTERVAL seconds, also removes
    stale sandbox containers and reconciles executions that lost their job or worker. It keeps one
    sandbox made ahead (executions.sandbox.premade), made again after each job and removed when the
    worker stops.
    """

    def __init__(self, queues, *args, serve_metrics: bool = True, **kwargs):
        # Jobs are JSON on both sides, whatever serializer the command line named.
        kwargs["serializer"] = JSONSerializer
        kwargs["maintenance_interval"] = settings.WORKER_MAINTENANCE_INTERVAL
        # A short TTL makes the idle dequeue wake up often enough for the maintenance pass.
        kwargs["worker_ttl"] = min(kwargs.get("worker_ttl") or 60, settings.WORKER_MAINTENANCE_INTERVAL + 15)
        queues = queues if isinstance(queues, (list, tuple)) else [queues]
        super().__init__(with_express_first(list(queues), kwargs.get("connection")), *args, **kwargs)
        self.stop_asked = False
        # Under `manage.py sandbox_workers` the supervisor serves its workers' metrics on the port.
        if settings.WORKER_METRICS_PORT and serve_metrics:
            start_http_server(settings.WORKER_METRICS_PORT, registry=metrics.registry())

    def work(self, *args, **kwargs):
        # A heartbeat of our own: rq's worker key outlives a killed SimpleWorker by the whole job
        # timeout, while this one expires ALIVE_TTL seconds after the process dies.
        warn_without_live_restore()
        faulthandler.register(STACKS_SIGNAL, all_threads=True, chain=False)
        stop = threading.Event()
        beat = threading.Thread(target=self.beat, args=(stop,), name="rce-heartbeat", daemon=True)
        beat.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            try:
                # Before the heartbeat stops: a janitor removes the sandboxes of a worker without one,
                # which is also what happens to them if the engine is gone (no wait for it then).
                patience = runner.ENGINE_RECOVERY_SECONDS if engine_health() == "ok" else 0
                self.maintain("sandbox removal", lambda: premade.discard(patience))
            finally:
                stop.set()
                beat.join(ALIVE_EVERY + 1)

    def check_for_suspension(self, burst: bool) -> None:
        """Before each job, as rq waits here while workers are suspended: no job while the engine is
        unreachable."""
        super().check_for_suspension(burst)
        self.wait_for_engine(burst)
        if self.stop_asked:
            # A stop request swallowed by anything since (an engine call's error handler) still
            # ends the loop before it takes another job.
            raise StopRequested()

    def wait_for_engine(self, burst: bool = False) -> None:
        """Take no job while the container engine does not answer: it could not run it, and another
        host's worker can. The heartbeat and the maintenance passes (the reconciler's) go on meanwhile.
        A job taken as the engine went away goes back to the queue (runs.requeue_unstarted)."""
        health = engine_health()
        if health == "ok":
            return
        log.warning("worker %s takes no job until its container engine answers (%s)", self.name, health)
        if burst:
            raise StopRequested
        state = self.get_state()
        self.set_state(WorkerStatus.SUSPENDED)
        try:
            while engine_health() != "ok":
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                time.sleep(ENGINE_POLL_SECONDS)
        finally:
            self.set_state(state)
        log.warning("worker %s: its container engine answers again; taking jobs", self.name)
        # A sandbox made before the engine went away is checked, and replaced if it did not survive.
        self.make_ahead()

    def execute_job(self, job, queue):
        try:
            return super().execute_job(job, queue)
        finally:
            # The job has recorded its result: remove its sandbox and make the next one, while no
            # execution waits on this worker.
            with self.busy():
                self.maintain("sandbox removal", premade.tidy)
                self.make_ahead()

    refused_by = "the sandbox worker"

    def refusal(self, job) -> str | None:
        return scheduler.refusal(job)

    def make_ahead(self) -> None:
        with self.busy():
            self.maintain("sandbox made ahead", lambda: premade.prepare(self.name))

    @contextlib.contextmanager
    def busy(self):
        """Busy for rq while sandboxes are removed or made: a SIGTERM then stops the worker after
        this (warm shutdown) instead of raising StopRequested inside an engine call, where
        remove_container would log it away and the worker would never stop."""
        state = self.get_state()
        if state == WorkerStatus.BUSY:
            # Busy already (the next sandbox is made while the last one's removal holds it busy):
            # rq's state is one write to Redis each way, none is needed.
            yield
            return
        self.set_state(WorkerStatus.BUSY)
        try:
            yield
        finally:
            self.set_state(state)

    def beat(self, stop: threading.Event) -> None:
        """The heartbeat, with what this worker last saw of its engine, for the web's /readyz."""
        key = reconciler.ALIVE_KEY.format(self.name)
        engine_key = store.ENGINE_KEY.format(self.name)
        while not stop.is_set():
            engine = engine_health()
            try:
                with self.connection.pipeline() as pipe:
                    pipe.set(key, os.getpid(), ex=ALIVE_TTL)
                    pipe.set(engine_key, engine, ex=ALIVE_TTL)
                    pipe.execute()
            except redis.RedisError:
                log.warning("heartbeat: Redis unreachable")
            stop.wait(ALIVE_EVERY)
        try:
            self.connection.delete(key, engine_key)
        except redis.RedisError:
            pass

    def request_stop(self, signum, frame):
        # Remembered here whatever becomes of the StopRequested that rq raises next: raised inside an
        # engine call of a maintenance task (a janitor's or a probe's remove_container, which logs
        # and goes on), it was swallowed, and the worker never stopped (seen: a worker replaced
        # half a second before a Ctrl-C kept taking jobs for minutes, and `make run` waited on it).
        self.stop_asked = True
        super().request_stop(signum, frame)

    def run_maintenance_tasks(self):
        self.maintenance_pass()
        if self.stop_asked:
            # rq's loop ends on it before it takes another job.
            raise StopRequested()

    def maintenance_pass(self):
        super().run_maintenance_tasks()
        close_old_connections()
        # Without its engine, a worker still settles what other hosts' dead workers left.
        engine_up = engine_health() == "ok"
        if engine_up:
            self.maintain("janitor", lambda: janitor.sweep(docker_api(), worker_alive=reconciler.worker_is_alive))
            self.make_ahead()
            self.maintain(
                "code directory janitor",
                lambda: janitor.sweep_code_dirs(in_use=janitor.mounted_code_dirs(docker_api())),
            )
            self.maintain("test cgroup janitor", janitor.sweep_test_cgroups)
        self.maintain("reconciler", lambda: reconciler.reconcile(self.name))
        # The probe costs a sandbox start: never before a user's waiting job, a later pass will do.
        # Busy meanwhile, as for a sandbox made ahead: a SIGTERM raised inside its engine calls
        # left a created probe sandbox that nothing removes.
        if engine_up:
            with self.busy():
                self.maintain(
                    "runtime versions",
                    lambda: any(queue.count for queue in self.queues) or runtimes.record(self.connection),
                )

    def maintain(self, name: str, task) -> None:
        """One maintenance task: its failure is logged, never fatal; a stop request goes through."""
        try:
            task()
        except StopRequested:
            # rq raises it from its SIGTERM handler wherever the worker is; swallowing it here
            # kept an idle worker running after it was told to stop.
            raise
        except Exception:
            log.exception("%s pass failed", name)


def with_express_first(queues: list, connection) -> list:
    """A worker of the sandbox queue takes the express queue's jobs first (executions/scheduler.py)."""
    names = [getattr(queue, "name", queue) for queue in queues]
    if settings.SANDBOX_QUEUE not in names or settings.SANDBOX_EXPRESS_QUEUE in names:
        return queues
    express = django_rq.get_queue(settings.SANDBOX_EXPRESS_QUEUE, connection=connection or queues[0].connection)
    return [express, *queues]


def engine_health() -> str:
    try:
        docker_api().ping()
    except StopRequested:
        # rq's SIGTERM handler raised it during the ping: a stop, not the engine's fault.
        raise
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def warn_without_live_restore() -> None:
    try:
        live_restore = docker_api().info().get("LiveRestoreEnabled")
    except Exception as exc:
        log.warning("the container engine is unreachable: %s", exc)
        return
    if not live_restore:
        # The engine then stops running containers when it restarts, and a run stopped that way
        # looks like the script's own failure (exit 143), not the platform fault it is.
        log.warning("the container engine runs without live-restore: see README, 'Container engine'")
