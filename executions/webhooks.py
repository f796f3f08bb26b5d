"""Webhooks: when an execution ends, its JSON (what GET returns) is POSTed to its callback URL, signed.

An execution whose result is whole (executions/models.py sends `execution_settled`: at its terminal
transition, or for a run cancelled while running once its worker has written its output) gets its
deliveries here: the receiver only writes a Delivery row and queues a job on the webhooks queue, which
its own workers drain (WebhookWorker, under `manage.py sandbox_workers`). A slow or dead receiver so
never holds a sandbox worker.

Each attempt checks the URL again (executions/destinations.py), connects to the exact addresses it
checked, follows no redirect, reads at most WEBHOOK_MAX_RESPONSE_BYTES of the answer, gives up
after WEBHOOK_TIMEOUT_SECONDS without progress and after attempt_seconds() in all. Only a 2xx is delivered; anything else is tried
again later, doubling the pause (with jitter), until WEBHOOK_RETRY_SECONDS after the delivery began.

Signatures follow Standard Webhooks (standardwebhooks.com), whose libraries verify them:
webhook-id, webhook-timestamp and webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
keyed with the base64-decoded tenant secret (after its whsec_ prefix), one signature per live secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import time
from datetime import timedelta

import django_rq
import urllib3
from django.conf import settings
from django.db import close_old_connections
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.worker import SimpleWorker

from executions import destinations, metrics, ownjobs
from executions.models import WEBHOOK_SECRET_PREFIX, Batch, Delivery, Execution, Tenant

log = logging.getLogger(__name__)

USER_AGENT = "rce-webhooks/1"
# How much of a failed answer is kept in the delivery log.
ERROR_EXCERPT_CHARS = 300


def on_execution_settled(sender, execution_id, execution: Execution | None = None, **kwargs) -> None:
    """Queue the deliveries a settled execution owes: its own, and its batch's if it was the last."""
    row = callback_of(execution_id, execution)
    if row is None:
        return
    tenant_id, url, batch_id = row
    if url:
        enqueue(Delivery.make(tenant_id, url, execution_id=execution_id))
    if batch_id is not None:
        batch = Batch.objects.filter(id=batch_id).first()
        if batch is not None and batch.end_if_done():
            enqueue(Delivery.make(tenant_id, batch.callback_url, batch_id=batch_id))


def callback_of(execution_id, execution: Execution | None) -> tuple | None:
    """(tenant id, callback URL, batch id) of the execution, None if it is gone. Its submission fixed
    them, so the row its sender holds says them as well as the database does."""
    if execution is not None:
        return execution.tenant_id, execution.callback_url, execution.batch_id
    return Execution.objects.filter(id=execution_id).values_list("tenant_id", "callback_url", "batch_id").first()


def queue():
    return django_rq.get_queue(settings.WEBHOOK_QUEUE)


def job_id(delivery: Delivery) -> str:
    # One job per attempt: a re-send or a retry never collides with an earlier attempt's job.
    return f"delivery-{delivery.id}-{delivery.attempts}"


JOB_FUNCTION = "executions.webhooks.deliver"


def refusal(job: Job) -> str | None:
    """Why a job a webhook worker dequeued is not a delivery the platform queued, or None: it runs
    deliver() with the delivery its id names and nothing else attached (executions.ownjobs)."""
    return ownjobs.refusal(job, JOB_FUNCTION, delivery_arguments, "delivery")


def delivery_arguments(job: Job, args: tuple) -> bool:
    if len(args) != 1 or not isinstance(args[0], str):
        return False
    prefix = f"delivery-{args[0]}-"
    return job.id.startswith(prefix) and job.id[len(prefix):].isdigit()


def enqueue(delivery: Delivery, delay: float = 0) -> None:
    options = {
        "job_id": job_id(delivery),
        # The cap on a whole attempt: a receiver that answers a byte at a time never trips the
        # timeouts between reads, but rq's job timeout interrupts it (attempt() records it).
        "job_timeout": attempt_seconds(),
        "result_ttl": 0,
        "failure_ttl": 24 * 3600,
    }
    if delay > 0:
        queue().enqueue_in(timedelta(seconds=delay), deliver, str(delivery.id), **options)
    else:
        queue().enqueue(deliver, str(delivery.id), **options)


def attempt_seconds() -> int:
    return int(2 * settings.WEBHOOK_TIMEOUT_SECONDS) + 5


def retry_delay(attempts: int) -> float:
    """The pause after the `attempts`-th failed attempt: the base, doubling, capped; between half and all of it."""
    ceiling = min(settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1))
    # Jitter, so that the deliveries of a receiver that was down do not all come back at once.
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def deliver(delivery_id: str) -> str:
    """The rq job: one attempt, recorded, and the next one queued if it failed. The new status."""
    close_old_connections()
    delivery = (
        Delivery.objects.select_related("tenant").filter(id=delivery_id, status=Delivery.Status.PENDING).first()
    )
    if delivery is None:
        return "skipped"
    started = time.monotonic()
    status_code, error = attempt(delivery)
    seconds = time.monotonic() - started
    delay = retry_delay(delivery.attempts + 1)
    outcome = delivery.record(status_code, error, seconds, delay)
    metrics.record_delivery(outcome, seconds)
    if outcome == Delivery.Status.PENDING:
        enqueue(delivery, delay)
    log.info(
        "delivery %s: %s (attempt %d, %s)", delivery.id, outcome, delivery.attempts, error or f"HTTP {status_code}"
    )
    return outcome


def attempt(delivery: Delivery) -> tuple[int | None, str]:
    """POST the delivery once: the status code (None if there was no answer) and what went wrong."""
    try:
        destination = destinations.check(delivery.url)
    except destinations.Refused as exc:
        return None, f"not sent: callback_url {exc.message}"
    if not delivery.tenant.webhook_secrets():
        return None, "not sent: the tenant has no webhook secret to sign it with"
    body = delivery.payload().encode()
    headers = signed_headers(delivery.tenant, str(delivery.id), body)
    try:
        return post(destination, body, headers)
    except JobTimeoutException:
        return None, f"timed out (the attempt took more than {attempt_seconds()} s)"


def signed_headers(tenant: Tenant, delivery_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signatures = [sign(secret, delivery_id, timestamp, body) for secret in tenant.webhook_secrets()]
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def post(destination: destinations.Destination, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST to the destination's checked addresses, in turn until one accepts the connection."""
    timeout = urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS)
    headers = {**headers, "Host": destination.host_header}
    errors = []
    for address in destination.addresses:
        pool = connection_pool(destination, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                destination.target,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            errors.append(f"{address}: could not connect ({describe(exc)})")
            pool.close()
            continue
        except urllib3.exceptions.HTTPError as exc:
            pool.close()
            return None, f"{address}: {describe(exc)}"
        try:
            return response.status, answer_error(response)
        finally:
            response.close()
            pool.close()
    return None, "; ".join(errors)


def connection_pool(destination: destinations.Destination, address: str, timeout: urllib3.Timeout):
    # The pool connects to the checked address; the Host header, TLS SNI and the certificate's
    # name check all use the URL's host name.
    if destination.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            destination.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            # None: the system's trusted CAs.
            ca_certs=settings.WEBHOOK_CA_FILE or None,
            server_hostname=destination.host,
            assert_hostname=destination.host,
        )
    return urllib3.HTTPConnectionPool(address, destination.port, timeout=timeout, retries=False, maxsize=1)


def answer_error(response) -> str:
    """'' for a 2xx; else the status, where a redirect pointed, and the start of the answer."""
    excerpt = read_capped(response)
    if 200 <= response.status < 300:
        return ""
    error = f"HTTP {response.status}"
    if 300 <= response.status < 400:
        error += f", a redirect (not followed) to {response.headers.get('Location', '?')[:200]}"
    text = excerpt.decode("utf-8", errors="replace").strip()[:ERROR_EXCERPT_CHARS]
    return f"{error}: {text}" if text else error


def read_capped(response) -> bytes:
    """At most WEBHOOK_MAX_RESPONSE_BYTES of the answer, within WEBHOOK_TIMEOUT_SECONDS; the rest is dropped."""
    deadline = time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS
    data = b""
    try:
        while len(data) < settings.WEBHOOK_MAX_RESPONSE_BYTES and time.monotonic() < deadline:
            chunk = response.read(min(8192, settings.WEBHOOK_MAX_RESPONSE_BYTES - len(data)), decode_content=False)
            if not chunk:
                break
            data += chunk
    except urllib3.exceptions.HTTPError:
        # The status is what counts; an answer cut short only shortens the excerpt.
        pass
    return data


def describe(exc: Exception) -> str:
    # NewConnectionError is a ConnectTimeoutError in urllib3, whatever the connection's fault was.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return str(exc).rpartition("] ")[2] or str(exc)
    if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT_CHARS]


def requeue_lost() -> int:
    """Queue again the pending deliveries whose job is gone (Redis lost it, or it could not be queued)."""
    requeued = 0
    connection = queue().connection
    for delivery in Delivery.objects.due().order_by("next_attempt_at")[:1000]:
        try:
            status = Job.fetch(job_id(delivery), connection=connection, serializer=JSONSerializer).get_status()
        except NoSuchJobError:
            status = None
        # A job that failed (a database outage, a crash) recorded nothing: its attempt is still owed.
        if status in (None, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            enqueue(delivery)
            requeued += 1
    return requeued


class WebhookWorker(ownjobs.OwnJobsOnly, SimpleWorker):
    """Drains the webhooks queue in its own process; its scheduler starts the retries when due.

    Its maintenance pass (on start and every WORKER_MAINTENANCE_INTERVAL seconds) queues again the
    deliveries whose job was lost.
    """

    refused_by = "the webhook worker"

    def refusal(self, job) -> str | None:
        return refusal(job)

    def __init__(self, queues, *args, **kwargs):
        kwargs["serializer"] = JSONSerializer
        kwargs["maintenance_interval"] = settings.WORKER_MAINTENANCE_INTERVAL
        kwargs["worker_ttl"] = min(kwargs.get("worker_ttl") or 60, settings.WORKER_MAINTENANCE_INTERVAL + 15)
        super().__init__(queues, *args, **kwargs)

    def work(self, *args, **kwargs):
        # The retries are scheduled jobs: some worker on the queue must move them when due.
        kwargs["with_scheduler"] = True
        return super().work(*args, **kwargs)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            requeued = requeue_lost()
            if requeued:
                log.warning("queued %d webhook deliveries again: their jobs were lost", requeued)
        except Exception:
            log.exception("could not queue lost webhook deliveries again")
        finally:
            close_old_connections()
