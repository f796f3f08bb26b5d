"""Webhooks end to end, with real receivers on loopback (opened by WEBHOOK_ALLOWED_NETWORKS)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY

from executions import destinations, events, reconciler, runs, store, webhooks
from executions.models import Delivery, Execution
from tests.conftest import ROOT, free_port, manage, run_worker, subprocess_env
from tests.helpers import assert_error
from tests.receivers import Receiver

pytestmark = pytest.mark.usefixtures("transactional_db")


def readme_verify():
    """The README's verification snippet, run as it is printed there."""
    readme = (ROOT / "README.md").read_text()
    (source,) = re.findall(r"```python\n(# verify_webhook\.py.*?)```", readme, re.S)
    namespace: dict = {}
    exec(source, namespace)
    return namespace["verify"]


@pytest.fixture
def hooks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05
    settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS = 0.2
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    return settings


@pytest.fixture
def secret(alice, hooks) -> str:
    return alice.tenant.rotate_webhook_secret()


def submit(persona, code: str = "print('hi')", **fields):
    return persona.client.post("/api/v1/executions", {"language": "python", "code": code, **fields}, format="json")


def submitted(persona, url: str, code: str = "print('hi')") -> str:
    response = submit(persona, code, **({"callback_url": url} if url else {}))
    assert response.status_code == 202, response.content
    return response.json()["task_id"]


def webhook_queue():
    return django_rq.get_queue(settings.WEBHOOK_QUEUE, connection=store.connection())


def drain_webhooks(until, timeout: float = 20) -> None:
    """Run the webhook worker (burst, with its scheduler) until `until()`: retries come due meanwhile."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s: {list(Delivery.objects.values('status', 'attempts'))}")
        queue = webhook_queue()
        webhooks.WebhookWorker([queue], connection=queue.connection).work(burst=True)
        time.sleep(0.05)


def delivery_of(task_id: str) -> Delivery:
    return Delivery.objects.get(execution_id=task_id)


def ended(task_id: str):
    return lambda: delivery_of(task_id).status != Delivery.Status.PENDING


def attempts_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("engine_webhook_attempts_total", {"outcome": outcome}) or 0.0


def test_it_posts_the_execution_signed_as_the_readme_verifies(alice, secret):
    delivered_before = attempts_counted("delivered")
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url, "print('hello')")
        run_worker()
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    delivery = delivery_of(task_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert request.path == "/hook"
    # The same JSON as GET returns.
    assert json.loads(request.body) == alice.get(task_id)
    assert json.loads(request.body)["stdout"] == "hello\n"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["webhook-id"] == str(delivery.id)
    verify = readme_verify()
    assert verify(secret, request.headers, request.body)
    # A changed body, another secret or an old timestamp does not verify.
    assert not verify(secret, request.headers, request.body.replace(b"hello", b"HELLO"))
    assert not verify(alice.tenant.rotate_webhook_secret(), request.headers, request.body[:-1] + b" ")
    assert not verify(secret, {**request.headers, "webhook-timestamp": str(int(time.time()) - 600)}, request.body)
    assert attempts_counted("delivered") == delivered_before + 1


def test_the_finishing_worker_only_queues_the_delivery(alice, secret):
    # The receiver would hold the request for a minute: the sandbox worker never waits for it.
    with Receiver(answers=[("hold", 200)]) as receiver:
        first = submitted(alice, receiver.url)
        second = submitted(alice, receiver.url)
        run_worker()
        assert {Execution.objects.get(id=t).status for t in (first, second)} == {"completed"}
        assert receiver.received == []
        assert webhook_queue().count == 2
        assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}


def test_a_slow_receiver_never_delays_executions(alice, secret, hooks):
    hooks.WEBHOOK_TIMEOUT_SECONDS = 30
    env = {
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_TIMEOUT_SECONDS": "30",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    }
    worker = subprocess.Popen(
        manage("rqworker", settings.WEBHOOK_QUEUE, "--worker-class", "executions.webhooks.WebhookWorker"),
        env=subprocess_env(**env),
        cwd=ROOT,
    )
    try:
        with Receiver(answers=[("hold", 200)]) as receiver:
            first = submitted(alice, receiver.url)
            run_worker()
            # The webhook worker is now held by the receiver ...
            receiver.wait_for(1)
            # ... while more executions run and end, each queueing its own delivery.
            later = [submitted(alice, receiver.url, f"print({n})") for n in range(3)]
            run_worker()
            assert [Execution.objects.get(id=t).status for t in [first, *later]] == ["completed"] * 4
            assert len(receiver.received) == 1
            receiver.released.set()
            receiver.wait_for(4)
            for task_id in [first, *later]:
                wait_for(ended(task_id))
                assert delivery_of(task_id).status == "delivered"
    finally:
        worker.terminate()
        worker.wait(30)


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_retries_a_500_until_a_2xx(alice, secret):
    with Receiver(answers=[500, 503, 200]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
        requests = receiver.received
    delivery = delivery_of(task_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 503, 200]
    assert delivery.attempt_log.first().error == "HTTP 500: ok"
    # The same delivery each time: one id and the same body, freshly signed.
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    assert all(readme_verify()(secret, r.headers, r.body) for r in requests)


def test_it_retries_a_receiver_that_times_out(alice, secret):
    with Receiver(answers=[("sleep", 3, 200), 200]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
    first, second = delivery_of(task_id).attempt_log.all()
    assert (first.status_code, first.error) == (None, "127.0.0.1: timed out")
    assert second.status_code == 200


def test_it_retries_a_refused_connection(alice, secret):
    port = free_port()
    task_id = submitted(alice, f"http://127.0.0.1:{port}/hook")
    run_worker()
    drain_webhooks(lambda: delivery_of(task_id).attempts >= 2)
    delivery = delivery_of(task_id)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert "could not connect" in delivery.last_error and "refused" in delivery.last_error.lower()
    with Receiver(port=port) as receiver:
        drain_webhooks(ended(task_id))
        assert len(receiver.received) == 1
    assert delivery_of(task_id).status == "delivered"


def test_it_gives_up_after_the_retry_window(alice, secret, hooks):
    hooks.WEBHOOK_RETRY_SECONDS = 0
    failed_before = attempts_counted("failed")
    with Receiver(answers=[500]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
        assert len(receiver.received) == 1
    delivery = delivery_of(task_id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 1, None)
    assert attempts_counted("failed") == failed_before + 1


def test_it_follows_no_redirect(alice, secret):
    # The redirect points at another loopback address, which the allow-list does not open.
    with Receiver(host="127.0.0.2") as target, Receiver(answers=[("redirect", target.url), 200]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
        assert target.received == []
        assert len(receiver.received) == 2
    first = delivery_of(task_id).attempt_log.first()
    assert first.status_code == 302
    assert first.error.startswith(f"HTTP 302, a redirect (not followed) to {target.url}")


def test_it_refuses_at_delivery_a_name_that_now_resolves_to_loopback(alice, secret, hooks, monkeypatch):
    # DNS rebinding: public when submitted, loopback when delivered. Nothing may reach loopback.
    hooks.WEBHOOK_ALLOWED_NETWORKS = []
    answers = {"hooks.example": "93.184.216.34"}

    def resolve(host, port, type=0, **kwargs):
        return [(2, 1, 6, "", (answers[host], port))]

    monkeypatch.setattr(destinations, "resolver", resolve)
    with Receiver() as receiver:
        task_id = submitted(alice, f"http://hooks.example:{receiver.port}/hook")
        answers["hooks.example"] = "127.0.0.1"
        run_worker()
        drain_webhooks(lambda: delivery_of(task_id).attempts >= 2)
        assert receiver.received == []
    delivery = delivery_of(task_id)
    assert delivery.status == "pending"
    assert delivery.last_error == (
        "not sent: callback_url hooks.example resolves to 127.0.0.1, 127.0.0.1 is a loopback address: "
        "callbacks go to public addresses only."
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/hook",
        "http://127.0.0.2/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://240.0.0.1/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a00:1]/",
    ],
)
def test_it_refuses_a_callback_to_a_refused_address_at_submission(alice, secret, hooks, url):
    hooks.WEBHOOK_ALLOWED_NETWORKS = []
    body = assert_error(submit(alice, callback_url=url), 400, "callback_url_refused")
    assert body["error"]["details"]["callback_url"][0].endswith("callbacks go to public addresses only.")
    assert Execution.objects.count() == 0


def sleeping_resolver(seconds: float):
    def resolve(host, port, type=0, **kwargs):
        time.sleep(seconds)
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    return resolve


def test_a_callback_whose_name_resolves_too_slowly_is_refused_at_once(alice, secret, hooks, monkeypatch):
    hooks.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 0.3
    monkeypatch.setattr(destinations, "resolver", sleeping_resolver(5))
    started = time.monotonic()
    body = assert_error(submit(alice, callback_url="https://slow.example/hook"), 400, "callback_url_unresolvable")
    assert time.monotonic() - started < 2
    assert body["error"]["details"]["callback_url"] == ["its host slow.example did not resolve within 0.3 s."]
    assert Execution.objects.count() == 0


def test_a_batch_resolves_its_callback_names_at_once(alice, secret, hooks, monkeypatch):
    hooks.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 2
    monkeypatch.setattr(destinations, "resolver", sleeping_resolver(0.25))
    items = [{"code": f"print({n})", "callback_url": f"https://item{n}.example/hook"} for n in range(20)]
    started = time.monotonic()
    response = alice.client.post(
        "/api/v1/executions/batch", {"executions": items, "callback_url": "https://batch.example/"}, format="json"
    )
    # 21 names one after another would take 5.25 s (and the deadline is 2 s).
    assert response.status_code == 202, response.content
    assert time.monotonic() - started < 1.5


def test_a_batch_item_whose_name_resolves_too_slowly_is_named(alice, secret, hooks, monkeypatch):
    hooks.WEBHOOK_RESOLVE_TIMEOUT_SECONDS = 0.3

    def resolve(host, port, type=0, **kwargs):
        time.sleep(5 if host == "slow.example" else 0)
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(destinations, "resolver", resolve)
    items = [{"code": "print(0)", "callback_url": "https://fast.example/"}, {"code": "print(1)", "callback_url": "https://slow.example/"}]
    body = assert_error(alice.client.post("/api/v1/executions/batch", {"executions": items}, format="json"), 400, "callback_url_unresolvable")
    assert body["error"]["details"] == {"executions[1]": {"callback_url": ["its host slow.example did not resolve within 0.3 s."]}}
    assert Execution.objects.count() == 0


def test_it_refuses_a_callback_without_a_webhook_secret(alice, hooks):
    with Receiver() as receiver:
        body = assert_error(submit(alice, callback_url=receiver.url), 400, "webhook_secret_missing")
    assert "no webhook secret" in body["error"]["details"]["callback_url"][0]
    assert Execution.objects.count() == 0


def test_the_tenant_default_callback_applies_when_the_submission_names_none(alice, secret):
    with Receiver() as receiver, Receiver() as own:
        alice.tenant.callback_url = receiver.url
        alice.tenant.save()
        by_default = submitted(alice, "")
        explicit = submitted(alice, own.url)
        run_worker()
        drain_webhooks(lambda: not Delivery.objects.filter(status="pending").exists())
        assert [json.loads(r.body)["task_id"] for r in receiver.received] == [by_default]
        assert [json.loads(r.body)["task_id"] for r in own.received] == [explicit]


def test_a_cancelled_execution_is_delivered_too(alice, secret):
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url)
        assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    assert json.loads(request.body)["status"] == "cancelled"


# Prints, then runs until a cancel stops it.
PRINTS_THEN_WAITS = "import time\nprint('before the cancel', flush=True)\ntime.sleep(60)\n"


def printed(task_id: str, redis_conn) -> None:
    """Wait until the running program's first output has reached its live stream (which a watch turns on)."""
    events.watch(task_id)
    wait_for(lambda: any(b"stream" in fields for _, fields in redis_conn.xrange(f"rce:events:{task_id}")))


def test_a_run_cancelled_while_running_is_delivered_with_the_output_it_kept(alice, secret, worker_process, redis_conn):
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url, PRINTS_THEN_WAITS)
        printed(task_id, redis_conn)
        assert alice.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
        # Queued once the worker has written the output the run printed until its cancel.
        wait_for(lambda: Delivery.objects.filter(execution_id=task_id).exists())
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    body = json.loads(request.body)
    assert (body["status"], body["stdout"]) == ("cancelled", "before the cancel\n")
    assert body == alice.get(task_id)


def cancelled_while_running(persona, url: str) -> str:
    """An execution cancelled while a worker (which writes nothing more here) ran it."""
    task_id = submitted(persona, url)
    assert Execution.objects.claim(task_id, "worker-1")
    assert persona.client.post(f"/api/v1/executions/{task_id}/cancel").status_code == 200
    return task_id


def test_a_cancelled_runs_delivery_waits_for_its_worker_to_write_its_output(alice, secret):
    with Receiver() as receiver:
        task_id = cancelled_while_running(alice, receiver.url)
        assert not Delivery.objects.exists()
        assert runs.keep_cancelled_output(task_id, {"stdout": "partial\n", "exit_code": 137, "duration_ms": 800})
        # Once: writing it again queues nothing more.
        assert runs.keep_cancelled_output(task_id, {"stdout": "partial\n"})
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    assert Delivery.objects.count() == 1
    body = json.loads(request.body)
    assert (body["status"], body["stdout"], body["exit_code"]) == ("cancelled", "partial\n", 137)


def test_a_cancelled_run_whose_worker_is_gone_is_delivered_without_its_output(alice, secret):
    with Receiver() as receiver:
        task_id = cancelled_while_running(alice, receiver.url)
        assert reconciler.settle_cancelled() == 0
        assert not Delivery.objects.exists()
        later = timezone.now() + reconciler.SETTLE_GRACE + timedelta(seconds=1)
        assert reconciler.settle_cancelled(now=later) == 1
        assert reconciler.settle_cancelled(now=later) == 0
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    assert json.loads(request.body)["status"] == "cancelled"
    # A worker that comes back after all still keeps the output on the row; nothing more is sent.
    assert runs.keep_cancelled_output(task_id, {"stdout": "late\n"})
    assert Execution.objects.get(id=task_id).stdout == "late\n"
    assert Delivery.objects.count() == 1


def test_a_cancelled_run_of_a_worker_known_dead_is_delivered_at_once(alice, secret):
    task_id = cancelled_while_running(alice, "http://127.0.0.1:9/hook")
    assert reconciler.release_dead_worker("worker-1") == 1
    assert Delivery.objects.filter(execution_id=task_id).count() == 1


def test_a_batch_waits_for_the_output_of_a_run_cancelled_while_running(alice, secret):
    with Receiver() as receiver:
        response = alice.client.post(
            "/api/v1/executions/batch",
            {"executions": [{"code": "print(0)"}, {"code": "print(1)"}], "callback_url": receiver.url},
            format="json",
        )
        first, second = response.json()["task_ids"]
        assert Execution.objects.claim(first, "worker-1")
        assert alice.client.post(f"/api/v1/executions/{first}/cancel").status_code == 200
        run_worker()
        assert Execution.objects.get(id=second).status == "completed"
        assert not Delivery.objects.exists()
        runs.keep_cancelled_output(first, {"stdout": "partial\n"})
        drain_webhooks(lambda: Delivery.objects.filter(status="delivered").exists())
        (request,) = receiver.received
    assert [e["stdout"] for e in json.loads(request.body)["executions"]] == ["partial\n", "1\n"]


def test_a_batch_gets_one_callback_when_all_its_executions_have_ended(alice, secret):
    with Receiver() as receiver:
        items = [{"code": f"print({n})"} for n in range(3)]
        response = alice.client.post(
            "/api/v1/executions/batch", {"executions": items, "callback_url": receiver.url}, format="json"
        )
        assert response.status_code == 202, response.content
        batch_id, task_ids = response.json()["batch_id"], response.json()["task_ids"]
        # Its items get no default callback of the tenant's.
        assert Delivery.objects.count() == 0
        run_worker()
        drain_webhooks(lambda: Delivery.objects.filter(status="delivered").exists())
        (request,) = receiver.received
    body = json.loads(request.body)
    assert body["batch_id"] == batch_id
    assert [e["task_id"] for e in body["executions"]] == task_ids
    assert [e["stdout"] for e in body["executions"]] == ["0\n", "1\n", "2\n"]
    assert readme_verify()(secret, request.headers, request.body)


def test_a_batch_with_a_refused_callback_creates_nothing(alice, secret):
    response = alice.client.post(
        "/api/v1/executions/batch",
        {"executions": [{"code": "print(1)"}], "callback_url": "http://10.0.0.1/"},
        format="json",
    )
    assert_error(response, 400, "callback_url_refused")
    assert Execution.objects.count() == 0


def test_a_rotated_secret_keeps_signing_with_the_previous_one_for_a_while(alice, secret, hooks):
    verify = readme_verify()
    newer = alice.tenant.rotate_webhook_secret()
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verify(secret, request.headers, request.body) and verify(newer, request.headers, request.body)
    hooks.WEBHOOK_SECRET_OVERLAP_SECONDS = 0
    assert alice.tenant.webhook_secrets() == [newer]


def test_deliveries_are_listed_to_their_tenant_only(alice, bob, secret):
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
    response = alice.client.get(f"/api/v1/executions/{task_id}/deliveries")
    assert response.status_code == 200
    (listed,) = response.json()
    assert listed["delivery_id"] == str(delivery_of(task_id).id)
    assert (listed["status"], listed["attempts"], listed["last_status_code"]) == ("delivered", 1, 200)
    assert_error(bob.client.get(f"/api/v1/executions/{task_id}/deliveries"), 404, "not_found")
    assert list(Delivery.objects.owned_by(bob.tenant)) == []


def test_a_lost_delivery_job_is_queued_again(alice, secret):
    with Receiver() as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        # Redis lost the job.
        webhook_queue().empty()
        assert webhooks.requeue_lost() == 1
        drain_webhooks(ended(task_id))
        assert len(receiver.received) == 1


@pytest.fixture
def certificate(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for hooks.test, and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hooks.test",
         "-addext", "subjectAltName=DNS:hooks.test"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_https_goes_to_the_checked_address_with_the_names_host_sni_and_certificate(
    alice, secret, hooks, certificate, monkeypatch
):
    monkeypatch.setattr(destinations, "resolver", lambda host, port, **kw: [(2, 1, 6, "", ("127.0.0.1", port))])
    hooks.WEBHOOK_CA_FILE = certificate[0]
    with Receiver(tls=certificate) as receiver:
        task_id = submitted(alice, f"https://hooks.test:{receiver.port}/in")
        run_worker()
        drain_webhooks(ended(task_id))
        (request,) = receiver.received
    assert delivery_of(task_id).status == "delivered"
    assert receiver.server_names == ["hooks.test"]
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    assert readme_verify()(secret, request.headers, request.body)


@pytest.mark.parametrize(
    "trusted, error", [(True, "hostname '127.0.0.1' doesn't match 'hooks.test'"), (False, "CERTIFICATE_VERIFY_FAILED")]
)
def test_https_refuses_a_certificate_that_is_not_trusted_for_the_name(
    alice, secret, hooks, certificate, trusted, error
):
    # The certificate names hooks.test, not 127.0.0.1; or it is signed by no trusted CA.
    hooks.WEBHOOK_CA_FILE = certificate[0] if trusted else ""
    with Receiver(tls=certificate) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(lambda: delivery_of(task_id).attempts >= 1)
        assert receiver.received == []
    delivery = delivery_of(task_id)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert error in delivery.last_error


def test_it_reads_no_more_of_an_answer_than_the_cap(alice, secret, hooks):
    # An answer without end: the attempt stops reading at the cap, long before its timeout.
    hooks.WEBHOOK_TIMEOUT_SECONDS = 60
    hooks.WEBHOOK_MAX_RESPONSE_BYTES = 100_000
    with Receiver(answers=[("stream", 500)]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(lambda: delivery_of(task_id).attempts >= 1)
        attempt = delivery_of(task_id).attempt_log.first()
    assert attempt.status_code == 500
    # What the socket buffers took besides: far from the gigabyte the receiver would send.
    assert receiver.streamed < 64 << 20
    assert attempt.error == "HTTP 500: " + "x" * webhooks.ERROR_EXCERPT_CHARS


def test_an_idempotent_retry_must_name_the_same_callback(alice, secret):
    with Receiver() as receiver, Receiver() as other:
        headers = {"HTTP_IDEMPOTENCY_KEY": "k1"}
        body = {"language": "python", "code": "print(1)", "callback_url": receiver.url}
        first = alice.client.post("/api/v1/executions", body, format="json", **headers)
        again = alice.client.post("/api/v1/executions", body, format="json", **headers)
        assert first.status_code == again.status_code == 202
        assert first.json()["task_id"] == again.json()["task_id"]
        changed = alice.client.post(
            "/api/v1/executions", {**body, "callback_url": other.url}, format="json", **headers
        )
        assert_error(changed, 409, "idempotency_key_reused")


def test_a_receiver_dripping_its_answer_is_cut_off(alice, secret, hooks):
    # Each byte comes well within the timeout between reads; the attempt as a whole is capped.
    hooks.WEBHOOK_TIMEOUT_SECONDS = 1
    with Receiver(answers=[("drip", 0.2), 200]) as receiver:
        task_id = submitted(alice, receiver.url)
        run_worker()
        drain_webhooks(ended(task_id))
    first, second = delivery_of(task_id).attempt_log.all()
    assert (first.status_code, first.error) == (None, "timed out (the attempt took more than 7 s)")
    assert second.status_code == 200


def test_the_fast_lanes_group_commit_takes_the_tenant_default_callback(alice, secret):
    from executions import submissions

    with Receiver() as receiver:
        alice.tenant.callback_url = receiver.url
        alice.tenant.save()
        (execution,) = submissions.submit_group([submissions.checked(alice.tenant, submissions.Submission("python", "print(8)"))])
        assert execution.callback_url == receiver.url
        run_worker()
        drain_webhooks(ended(str(execution.id)))
        (request,) = receiver.received
    assert json.loads(request.body)["stdout"] == "8\n"
