"""The supervisor replaces a dead worker at once, and waits longer while workers keep dying young."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest

from executions import supervisor as supervision
from executions.supervisor import BACKOFF_MAX_SECONDS, STABLE_SECONDS, STOPPED_SECONDS, Supervisor, backoff_seconds

pytestmark = pytest.mark.no_database

KILLED = signal.SIGKILL  # a wait status: killed by that signal


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervisor(monkeypatch):
    supervisor = Supervisor(slots=2, clock=Clock())
    monkeypatch.setattr(supervisor, "release", lambda name: None)
    return supervisor


def test_the_pause_doubles_up_to_a_minute():
    assert [backoff_seconds(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 32, BACKOFF_MAX_SECONDS]
    assert backoff_seconds(50) == BACKOFF_MAX_SECONDS


def test_a_worker_that_lived_long_is_replaced_at_once(supervisor):
    supervisor.bury(1, "w1", started=supervisor.clock() - STABLE_SECONDS, status=KILLED)
    assert (supervisor.crashes, supervisor.next_start) == (0, supervisor.clock())


def test_workers_dying_young_make_the_next_one_wait_longer(supervisor):
    for crashes, pause in [(1, 1), (2, 2), (3, 4)]:
        supervisor.bury(1, "w1", started=supervisor.clock() - 1, status=256)
        assert (supervisor.crashes, supervisor.next_start - supervisor.clock()) == (crashes, pause)
    # One that lives long enough ends the series.
    supervisor.bury(1, "w1", started=supervisor.clock() - STABLE_SECONDS - 1, status=KILLED)
    assert supervisor.crashes == 0


def test_a_warm_shutdown_is_no_crash_at_any_age(supervisor):
    supervisor.bury(1, "w1", started=supervisor.clock() - 1, status=0)
    assert (supervisor.crashes, supervisor.next_start) == (0, supervisor.clock())


def test_a_worker_stopped_too_long_is_killed(supervisor, monkeypatch):
    states = {11: "T", 12: "S", 13: "t"}
    sent = []
    monkeypatch.setattr(supervision, "process_state", lambda pid: states[pid])
    monkeypatch.setattr("os.kill", lambda pid, sig: sent.append((pid, sig)))
    supervisor.workers = {11: ("w1", 0.0), 12: ("w2", 0.0), 13: ("w3", 0.0)}
    supervisor.kill_stopped()
    supervisor.clock.now += STOPPED_SECONDS - 0.5
    states[13] = "R"  # continued in time: its clock starts again when it stops again
    supervisor.kill_stopped()
    assert sent == []
    supervisor.clock.now += 0.5
    states[13] = "T"
    supervisor.kill_stopped()
    assert sent == [(11, signal.SIGKILL)]


def test_it_sends_each_worker_what_it_is_sent(supervisor, monkeypatch):
    sent = []
    monkeypatch.setattr("os.kill", lambda pid, sig: sent.append((pid, sig)))
    supervisor.workers = {11: ("w1", 0.0), 12: ("w2", 0.0)}
    supervisor.signal_workers()
    assert sent == [(11, signal.SIGTERM), (12, signal.SIGTERM)]


def test_it_keeps_its_reserve_workers_apart(monkeypatch):
    supervisor = Supervisor(slots=2, reserve=1, clock=Clock())
    started = []

    def start_worker(reserve=False):
        pid = 100 + len(started)
        started.append(reserve)
        supervisor.workers[pid] = (f"w{pid}", supervisor.clock())
        if reserve:
            supervisor.reserves.add(pid)

    monkeypatch.setattr(supervisor, "start_worker", start_worker)
    monkeypatch.setattr(supervisor, "release", lambda name: None)
    supervisor.fill()
    assert sorted(started) == [False, False, True]
    # A dead reserve worker is replaced by a reserve worker.
    reserve_pid = next(iter(supervisor.reserves))
    name, born = supervisor.workers.pop(reserve_pid)
    supervisor.reserves.discard(reserve_pid)
    supervisor.bury(reserve_pid, name, born - STABLE_SECONDS, KILLED)
    supervisor.fill()
    assert started[-1] is True and len(supervisor.reserves) == 1


def test_it_keeps_its_webhook_workers_apart(monkeypatch):
    supervisor = Supervisor(slots=2, webhook_workers=1, clock=Clock())
    started, released = [], []

    def start_worker(reserve=False, webhooks=False):
        pid = 100 + len(started)
        started.append("webhooks" if webhooks else "sandbox")
        supervisor.workers[pid] = (f"w{pid}", supervisor.clock())
        if webhooks:
            supervisor.webhook_pids.add(pid)

    monkeypatch.setattr(supervisor, "start_worker", start_worker)
    monkeypatch.setattr(supervisor, "release", released.append)
    supervisor.fill()
    assert sorted(started) == ["sandbox", "sandbox", "webhooks"]
    # A dead webhook worker is replaced by a webhook worker, and held no execution to settle.
    webhook_pid = next(iter(supervisor.webhook_pids))
    monkeypatch.setattr(
        "os.waitid",
        lambda which, pid, options: SimpleNamespace(si_pid=webhook_pid) if webhook_pid in supervisor.workers else None,
    )
    monkeypatch.setattr("os.waitpid", lambda pid, options: (pid, KILLED))
    killed = []
    monkeypatch.setattr("os.killpg", lambda group, sig: killed.append((group, sig)))
    supervisor.reap()
    assert released == [] and not supervisor.webhook_pids
    # What it left in its session (rq's scheduler) was killed before it was reaped.
    assert killed == [(webhook_pid, signal.SIGKILL)]
    supervisor.clock.now += backoff_seconds(supervisor.crashes)
    supervisor.fill()
    assert started[-1] == "webhooks" and len(started) == 4 and len(supervisor.webhook_pids) == 1
