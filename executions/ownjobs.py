"""Workers run only the platform's own jobs.

rq imports whatever function a job names, and the platform's workers run beside the container
engine (root on the host): anyone who can write to Redis could run code there. Each worker class
states the one call it runs (function, and arguments that must match its job id); anything else a
queue hands it fails unrun, without reading, importing or calling anything it names (no callback,
webhook, retry or dependent), visible in rq's failed jobs with the reason, the log and
engine_refused_jobs_total.
"""

from __future__ import annotations

import logging
from typing import Callable

from rq.job import Job, JobStatus
from rq.results import Result

from executions import metrics

log = logging.getLogger(__name__)

# Fields of rq's job format that make a worker import or call something beyond the job's function,
# or send requests: a job of the platform's never has them.
FOREIGN_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name", "webhooks")


def refusal(job: Job, function: str, arguments_fit: Callable[[Job, tuple], bool], named: str) -> str | None:
    """Why a dequeued job is not the platform's call of `function` for the `named` thing (an
    execution, a delivery) its id names, or None if it is."""
    try:
        fields = job.to_dict(include_meta=False, include_result=False)
        name, args, kwargs = job.func_name, job.args, job.kwargs
    except Exception as exc:
        return f"its data is not the platform's JSON ({type(exc).__name__})"
    if name != function:
        return f"it names the function {name!r}"
    if kwargs or not arguments_fit(job, tuple(args)):
        return f"its arguments are not those of the {named} it names"
    attached = [field for field in FOREIGN_FIELDS if fields.get(field)]
    if attached:
        return f"it carries {', '.join(attached)}"
    return None


class OwnJobsOnly:
    """A mixin for rq workers: `refusal(job)` says why a job is not this worker's, or None."""

    # How a refused job's failure names who refused it.
    refused_by = "the worker"

    def refusal(self, job: Job) -> str | None:
        raise NotImplementedError

    def perform_job(self, job, queue, execution) -> bool:
        reason = self.refusal(job)
        if reason is None:
            return super().perform_job(job, queue, execution)
        self.refuse(job, queue, execution, reason)
        return False

    def refuse(self, job, queue, execution, reason: str) -> None:
        log.error("refused job %s from %s: %s", job.id, queue.name, reason)
        metrics.refused_job()
        with self.connection.pipeline() as pipe:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            text = f"refused by {self.refused_by}: {reason}\n"
            queue.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=text, pipeline=pipe)
            Result.create_failure(job, job.failure_ttl, exc_string=text, worker_name=self.name, pipeline=pipe)
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.execute()
