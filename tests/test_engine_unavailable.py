"""A container engine that does not answer: a worker takes no job while it cannot run one, and a
run the engine failed before its script arrived goes back to the queue instead of ending `error`.
With real processes and two engines: tests/test_second_host.py."""

from __future__ import annotations

import os
import socket

import django_rq
import docker
import pytest
from django.conf import settings

from executions import runs, worker
from executions.models import Execution
from executions.sandbox import premade, runner
from executions.sandbox.runner import EngineUnavailable, Limits
from executions.worker import SandboxWorker
from tests.conftest import listed_jobs


def gone(tmp_path) -> docker.APIClient:
    """A client of a socket nobody listens on, as after the engine stopped."""
    return docker.APIClient(base_url=f"unix://{tmp_path}/gone.sock", version="1.41", timeout=5)


@pytest.fixture
def engine_gone(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "_client", gone(tmp_path))


@pytest.fixture(autouse=True)
def private_code_root(settings, tmp_path):
    settings.SANDBOX_CODE_ROOT = str(tmp_path / "sandbox-code")


def test_the_runner_says_the_engine_is_unavailable_and_leaves_nothing(engine_gone, settings):
    with pytest.raises(EngineUnavailable, match="unreachable"):
        runner.run("python", "print(1)", limits=Limits.from_settings())
    with pytest.raises(EngineUnavailable):
        premade.run("python", "print(1)", limits=Limits.from_settings())
    assert os.listdir(settings.SANDBOX_CODE_ROOT) == []


def test_a_run_the_engine_failed_before_its_script_arrived_goes_back_to_the_queue(
    alice, engine_gone, transactional_db
):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(container_id="an-earlier-sandbox")
    assert runs.run(task_id) == "queued"
    execution = Execution.objects.get(id=task_id)
    assert (execution.status, execution.attempts, execution.worker_name, execution.container_id) == (
        "queued", 2, "", ""
    )
    assert execution.started_at is None and execution.error == ""
    assert f"execution-{task_id}-2" in listed_jobs()


def test_it_ends_error_once_no_engine_could_take_it_five_times(alice, engine_gone, transactional_db):
    task_id = alice.submit("print(1)")
    Execution.objects.filter(id=task_id).update(attempts=runs.MAX_ATTEMPTS)
    assert runs.run(task_id) == "error"
    execution = Execution.objects.get(id=task_id)
    assert execution.status == "error" and "no container engine could run it" in execution.error


def test_a_sandbox_made_ahead_does_not_hide_the_loss_of_its_engine(monkeypatch, tmp_path):
    premade.prepare("test-worker")
    assert premade.ready() is not None
    try:
        with monkeypatch.context() as engine_lost:
            engine_lost.setattr(runner, "_client", gone(tmp_path))
            assert worker.engine_health().startswith("unreachable")
            with pytest.raises(EngineUnavailable):
                premade.run("python", "print(1)", limits=Limits.from_settings())
    finally:
        premade.discard()


def test_a_made_ahead_sandbox_whose_stream_broke_before_delivery_never_runs_the_script():
    api = runner.docker_api()
    sandbox = premade.make(api, Limits.from_settings(), premade.worker_labels("test-worker"))
    try:
        sandbox.stream.shutdown(socket.SHUT_RDWR)
        with pytest.raises(EngineUnavailable, match="before the script arrived"):
            premade.run_in(api, sandbox, "python", "print(1)", "", Limits.from_settings())
        # The launcher never got its line: its stdin closed, it exits 97 and never became python3.
        assert api.wait(sandbox.container_id, timeout=10)["StatusCode"] == 97
    finally:
        premade.destroy(api, sandbox)


def test_a_worker_takes_no_job_while_its_engine_is_unreachable(alice, engine_gone, redis_conn):
    task_id = alice.submit("print(1)")
    queue = django_rq.get_queue(settings.SANDBOX_QUEUE, connection=redis_conn)
    # In burst mode it stops instead of waiting for the engine.
    assert SandboxWorker([queue], connection=redis_conn).work(burst=True) is False
    assert Execution.objects.get(id=task_id).status == "queued"
    assert listed_jobs() == [f"execution-{task_id}-1"]
