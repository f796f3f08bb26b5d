"""Workers run only the platform's own job: anything else Redis hands them fails, visibly, unrun.

Jobs are planted with rq's public API, as anyone who can write to Redis could. Each names
os.makedirs on a path of the test's: if the worker ran it (or anything it attaches), the path exists.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from executions import metrics, scheduler, store, webhooks
from executions.models import Delivery
from tests.conftest import run_worker


def sandbox_queue(serializer=JSONSerializer) -> Queue:
    return Queue(settings.SANDBOX_QUEUE, connection=store.connection(), serializer=serializer)


def assert_refused(job_id: str, marker, reason: str, queue: Queue | None = None, by: str = "the sandbox worker") -> None:
    assert not marker.exists(), "the planted job ran"
    job = Job.fetch(job_id, connection=store.connection(), serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert job_id in (queue or sandbox_queue()).failed_job_registry.get_job_ids()
    failure = job.latest_result().exc_string
    assert f"refused by {by}" in failure and reason in failure


def refused_count() -> float:
    return metrics.registry().get_sample_value("engine_refused_jobs_total") or 0.0


# Each kind of worker: its queue, how a test runs it, and how its refusals are signed.
WORKERS = {
    "sandbox": (lambda serializer=JSONSerializer: sandbox_queue(serializer), lambda: run_worker(), "the sandbox worker"),
    "webhook": (lambda serializer=JSONSerializer: webhook_queue(serializer), lambda: run_webhook_worker(), "the webhook worker"),
}


@pytest.mark.parametrize("kind", WORKERS)
def test_it_refuses_a_job_naming_another_function(alice, transactional_db, tmp_path, kind):
    queue, work, by = WORKERS[kind]
    marker = tmp_path / "planted"
    job = queue().enqueue("os.makedirs", str(marker))
    before = refused_count()
    work()
    assert_refused(job.id, marker, "it names the function 'os.makedirs'", queue(), by)
    assert refused_count() == before + 1


@pytest.mark.parametrize("kind", WORKERS)
def test_it_refuses_a_pickled_job(alice, transactional_db, tmp_path, kind):
    queue, work, by = WORKERS[kind]
    marker = tmp_path / "planted"
    # rq's default serializer is pickle: unpickling alone can run code, so it never happens.
    job = queue(serializer=None).enqueue("os.makedirs", str(marker))
    work()
    assert_refused(job.id, marker, "is not the platform's JSON", queue(), by)


def test_it_refuses_the_platform_function_with_a_callback_attached(alice, transactional_db, tmp_path):
    marker = tmp_path / "planted"
    execution_id = str(uuid.uuid4())
    job = sandbox_queue().enqueue(
        scheduler.JOB_FUNCTION,
        execution_id,
        alice.tenant.id,
        job_id=scheduler.job_id(execution_id, 0),
        on_failure=Callback("os.makedirs"),
        on_success=Callback("os.makedirs"),
    )
    run_worker()
    assert_refused(job.id, tmp_path / "planted", "it carries success_callback_name, failure_callback_name")
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("other",), {}),
        ((None, 1), {"tenant_id": 2}),
        ((None, "1; import os"), {}),
    ],
)
def test_it_refuses_the_platform_function_with_other_arguments(alice, transactional_db, args, kwargs):
    execution_id = str(uuid.uuid4())
    args = tuple(execution_id if arg is None else arg for arg in args)
    job = sandbox_queue().enqueue(scheduler.JOB_FUNCTION, *args, job_id=scheduler.job_id(execution_id, 0), **kwargs)
    run_worker()
    job = Job.fetch(job.id, connection=store.connection(), serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert "its arguments are not those of the execution it names" in job.latest_result().exc_string


def test_it_goes_on_running_executions_after_a_refusal(alice, transactional_db, tmp_path):
    sandbox_queue().enqueue("os.makedirs", str(tmp_path / "planted"))
    task_id = alice.submit("print('still here')")
    run_worker()
    assert alice.get(task_id)["stdout"] == "still here\n"
    assert not (tmp_path / "planted").exists()


def test_it_accepts_the_jobs_the_platform_writes(alice, transactional_db):
    task_id = alice.submit("print(1)")
    queue = django_rq.get_queue(settings.SANDBOX_EXPRESS_QUEUE, connection=store.connection())
    (job_id,) = queue.job_ids + scheduler.queue().job_ids
    assert scheduler.refusal(Job.fetch(job_id, connection=store.connection(), serializer=JSONSerializer)) is None
    run_worker()
    assert alice.get(task_id)["status"] == "completed"


# The webhook workers run beside the sandbox workers (manage.py sandbox_workers, Compose's worker
# container with the engine's socket): they run only deliveries.


def webhook_queue(serializer=JSONSerializer) -> Queue:
    return Queue(settings.WEBHOOK_QUEUE, connection=store.connection(), serializer=serializer)


def run_webhook_worker() -> None:
    queue = webhook_queue()
    webhooks.WebhookWorker([queue], connection=queue.connection).work(burst=True)


def test_the_webhook_worker_refuses_a_planted_job_that_comes_due_from_its_schedule(alice, transactional_db, tmp_path):
    marker = tmp_path / "planted"
    job = webhook_queue().enqueue_in(timedelta(seconds=0), "os.makedirs", str(marker))
    deadline = time.monotonic() + 15
    while Job.fetch(job.id, connection=store.connection(), serializer=JSONSerializer).get_status() != JobStatus.FAILED:
        assert time.monotonic() < deadline, "the scheduled job never came due"
        run_webhook_worker()
    assert_refused(job.id, marker, "it names the function 'os.makedirs'", webhook_queue(), "the webhook worker")


@pytest.mark.parametrize(
    "args, kwargs, on_failure",
    [
        (("other",), {}, None),
        ((None, "extra"), {}, None),
        ((None,), {"url": "http://169.254.169.254/"}, None),
        ((None,), {}, Callback("os.makedirs")),
    ],
)
def test_the_webhook_worker_refuses_deliver_with_other_arguments_or_callbacks(
    alice, transactional_db, args, kwargs, on_failure
):
    delivery_id = str(uuid.uuid4())
    args = tuple(delivery_id if arg is None else arg for arg in args)
    job = webhook_queue().enqueue(
        webhooks.JOB_FUNCTION, *args, job_id=f"delivery-{delivery_id}-0", on_failure=on_failure, **kwargs
    )
    run_webhook_worker()
    job = Job.fetch(job.id, connection=store.connection(), serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert "refused by the webhook worker" in job.latest_result().exc_string


def test_the_webhook_worker_accepts_the_deliveries_the_platform_queues(alice, transactional_db):
    delivery = Delivery.make(alice.tenant.id, "http://192.0.2.1/hook", execution_id=alice.submit("print(1)"))
    webhooks.enqueue(delivery)
    (job_id,) = webhook_queue().job_ids
    assert webhooks.refusal(Job.fetch(job_id, connection=store.connection(), serializer=JSONSerializer)) is None
