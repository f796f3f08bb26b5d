"""What a trivial run asks of the container engine, the database and Redis. Each engine call is work
for the engine's daemons (dockerd, containerd, the shims, runc), most of a trivial execution's cost:
this pins the calls a run makes, as assertNumQueries pins a view's queries."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from rq.worker import WorkerStatus

from executions import runs, scheduler
from executions.sandbox import premade, runner
from executions.sandbox.runner import Limits, docker_api
from executions.worker import SandboxWorker

ID = re.compile(r"/[0-9a-f]{64}/")
IMAGE = re.compile(r"^images/[^/]+/")


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


@pytest.fixture
def engine_calls(monkeypatch):
    """The engine calls made so far, as "METHOD what" (a container's id as {id}, an image's name as
    {name}); clear() to start again."""
    api = docker_api()
    calls = Counter()
    request = api.request

    def counted(method, url, *args, **kwargs):
        path = ID.sub("/{id}/", url.partition("?")[0] + "/").rstrip("/")
        calls[f"{method} {IMAGE.sub('images/{name}/', path.partition('/v1.')[2].partition('/')[2])}"] += 1
        return request(method, url, *args, **kwargs)

    monkeypatch.setattr(api, "request", counted)
    return calls


@pytest.fixture
def ahead():
    yield premade
    premade.discard()


@pytest.mark.no_database
def test_a_run_in_a_sandbox_made_ahead_asks_the_engine_only_what_it_must(ahead, engine_calls):
    ahead.prepare("test-worker")
    # Created and verified (before it starts), then started with its stream attached: checked once
    # more when a run takes it, not here too.
    assert engine_calls == Counter(
        {"POST containers/create": 1, "GET containers/{id}/json": 1, "POST containers/{id}/attach": 1,
         "POST containers/{id}/start": 1}
    )
    engine_calls.clear()
    result = ahead.run("python", "print(1)", limits=Limits.from_settings())
    assert (result.status, result.stdout) == ("completed", b"1\n")
    # Checked again as its code comes (runner.verify_restrictions), then asked how it ended: once,
    # as its stream ends with its exit recorded (runner.exited_state), no wait.
    assert engine_calls == Counter({"GET containers/{id}/json": 2})
    engine_calls.clear()
    ahead.tidy()
    assert engine_calls == Counter({"DELETE containers/{id}": 1})


@pytest.mark.no_database
def test_a_run_in_a_sandbox_of_its_own_asks_the_engine_only_what_it_must(engine_calls):
    result = runner.run("python", "print(1)", limits=Limits.from_settings())
    assert (result.status, result.stdout) == ("completed", b"1\n")
    assert engine_calls == Counter(
        {"POST containers/create": 1, "GET containers/{id}/json": 2, "POST containers/{id}/attach": 1,
         "POST containers/{id}/start": 1, "DELETE containers/{id}": 1}
    )


def test_a_run_made_ahead_costs_the_database_four_queries(transactional_db, alice, ahead, django_assert_num_queries):
    task_id = alice.submit("print(1)")
    ahead.prepare("test-worker")
    # Claim it, read it, record its sandbox, record its result: what it owes its webhooks is known
    # from the row it read (webhooks.callback_of).
    with django_assert_num_queries(4):
        assert runs.run(task_id) == "completed"
    ahead.tidy()


@pytest.mark.no_database
def test_a_worker_says_it_is_busy_once_while_it_removes_a_sandbox_and_makes_the_next(redis_conn, monkeypatch):
    worker = SandboxWorker([scheduler.queue()], connection=redis_conn, serve_metrics=False)
    writes = []
    monkeypatch.setattr(worker.connection, "hset", lambda key, field, value: writes.append((field, value)))
    monkeypatch.setattr(premade, "prepare", lambda name: None)
    monkeypatch.setattr(premade, "tidy", lambda: None)
    idle = worker.get_state()
    with worker.busy():
        worker.maintain("sandbox removal", premade.tidy)
        worker.make_ahead()
    assert writes == [("state", WorkerStatus.BUSY), ("state", idle)]
