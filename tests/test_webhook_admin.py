"""The admin's side of webhooks: a tenant's secret shown once and rotated, deliveries listed and re-sent."""

from __future__ import annotations

import django_rq
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from executions import store, webhooks
from executions.models import Delivery, Tenant
from tests.conftest import run_worker
from tests.receivers import Receiver
from tests.test_admin import change_form_data, messages_of, operator, page  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("transactional_db")
DELIVERIES = "/admin/executions/delivery/"


def shown_secret(response, tenant: str) -> str:
    [shown] = [m for m in messages_of(response) if m.startswith(f"New webhook secret for {tenant}: ")]
    return shown.split(": ")[1].split(" ")[0]


def test_a_new_tenant_gets_a_webhook_secret_shown_once(operator):
    data = change_form_data(operator.get("/admin/executions/tenant/add/"))
    data["name"] = "carol"
    response = operator.post("/admin/executions/tenant/add/", data, follow=True)
    secret = shown_secret(response, "carol")
    carol = Tenant.objects.get(name="carol")
    assert secret.startswith("whsec_") and carol.webhook_secrets() == [secret]
    html = page(operator, f"/admin/executions/tenant/{carol.pk}/change/")
    assert secret not in html and secret[:10] in html


def test_it_rotates_the_secret_and_keeps_the_previous_one_signing_for_a_while(operator, alice):
    first = alice.tenant.rotate_webhook_secret()
    url = f"/admin/executions/tenant/{alice.tenant.pk}/change/"
    data = change_form_data(operator.get(url))
    # Saved unchanged: the secret stays.
    operator.post(url, data, follow=True)
    alice.tenant.refresh_from_db()
    assert alice.tenant.webhook_secrets() == [first]
    data["rotate_webhook_secret"] = "on"
    second = shown_secret(operator.post(url, data, follow=True), "alice")
    alice.tenant.refresh_from_db()
    assert second != first and alice.tenant.webhook_secrets() == [second, first]


def test_it_refuses_a_default_callback_to_a_refused_address(operator, alice):
    url = f"/admin/executions/tenant/{alice.tenant.pk}/change/"
    data = change_form_data(operator.get(url))
    data["callback_url"] = "http://169.254.169.254/latest/meta-data/"
    response = operator.post(url, data)
    assert response.status_code == 200
    assert "is a cloud metadata address" in response.content.decode()
    alice.tenant.refresh_from_db()
    assert alice.tenant.callback_url == ""


def failed_delivery(alice, receiver: Receiver, settings) -> Delivery:
    settings.WEBHOOK_RETRY_SECONDS = 0
    alice.tenant.rotate_webhook_secret()
    response = alice.client.post(
        "/api/v1/executions", {"code": "print('x')", "callback_url": receiver.url}, format="json"
    )
    run_worker()
    drain()
    delivery = Delivery.objects.get(execution_id=response.json()["task_id"])
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    return delivery


def drain() -> None:
    queue = django_rq.get_queue(settings.WEBHOOK_QUEUE, connection=store.connection())
    webhooks.WebhookWorker([queue], connection=queue.connection).work(burst=True)


def test_it_lists_deliveries_with_their_attempts_and_re_sends_them(operator, alice, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with Receiver(answers=[500, 200]) as receiver:
        delivery = failed_delivery(alice, receiver, settings)
        html = page(operator, DELIVERIES)
        assert str(delivery.id) in html and "failed" in html
        detail = page(operator, f"{DELIVERIES}{delivery.pk}/change/")
        assert "HTTP 500: ok" in detail and "&quot;stdout&quot;:&quot;x\\n&quot;" in detail
        settings.WEBHOOK_RETRY_SECONDS = 3600
        response = operator.post(
            DELIVERIES, {"action": "resend", "_selected_action": [str(delivery.pk)]}, follow=True
        )
        assert "Re-sending 1; 0 were still pending" in messages_of(response)[0]
        drain()
        assert len(receiver.received) == 2
        # The same delivery: its id, its body.
        assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
        assert receiver.received[0].body == receiver.received[1].body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


def test_a_view_only_operator_cannot_re_send(alice, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    viewer = User.objects.create_user("viewer", password="correct horse battery", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_delivery", "view_tenant"]))
    client = Client()
    assert client.login(username="viewer", password="correct horse battery")
    with Receiver(answers=[500]) as receiver:
        delivery = failed_delivery(alice, receiver, settings)
        assert str(delivery.id) in page(client, DELIVERIES)
        client.post(DELIVERIES, {"action": "resend", "_selected_action": [str(delivery.pk)]})
        drain()
        assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"
