"""Every endpoint, called with another tenant's ids, answers exactly as for ids that do not exist.

The routes are enumerated from the URLconf, so that a new endpoint fails
test_every_api_route_is_covered until it is added here.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from executions import runs
from executions.api import urls
from executions.models import Execution, Tenant

# Each route of executions/api/urls.py, and whether it takes a tenant-owned id.
ROUTES = {
    "^execute/?$": False,
    "^executions/?$": False,
    "^executions/batch/?$": False,
    "^languages/?$": False,
    "executions/<uuid:execution_id>": True,
    "executions/<uuid:execution_id>/": True,
    "executions/<uuid:execution_id>/cancel": True,
    "executions/<uuid:execution_id>/cancel/": True,
    "executions/<uuid:execution_id>/deliveries": True,
    "executions/<uuid:execution_id>/deliveries/": True,
    "executions/<uuid:execution_id>/events": True,
    "executions/<uuid:execution_id>/events/": True,
    "^": False,
}
ID_URLS = [
    "/api/v1/executions/{}",
    "/api/v1/executions/{}/",
    "/api/v1/executions/{}/cancel",
    "/api/v1/executions/{}/cancel/",
    "/api/v1/executions/{}/deliveries",
    "/api/v1/executions/{}/deliveries/",
    "/api/v1/executions/{}/events",
    "/api/v1/executions/{}/events/",
]
METHODS = ["get", "post", "put", "patch", "delete", "head", "options"]


def finished(persona, output: str) -> str:
    """One of persona's executions, finished, so that its result is in the Redis cache too."""
    task_id = persona.submit(f"print({output!r})")
    Execution.objects.filter(id=task_id).update(status="running")
    runs.finish(task_id, {"status": "completed", "stdout": output, "exit_code": 0})
    return task_id


def test_every_api_route_is_covered():
    assert {str(p.pattern) for p in urls.urlpatterns} == set(ROUTES)


def test_the_helper_refuses_to_run_without_a_tenant(db):
    for tenant in (None, Tenant(name="unsaved")):
        with pytest.raises(ValueError):
            Execution.objects.owned_by(tenant)


@pytest.mark.parametrize("url", ID_URLS)
@pytest.mark.parametrize("method", METHODS)
def test_another_tenants_id_looks_like_a_missing_one(alice, bob, url, method, django_assert_num_queries):
    queued = bob.submit("print('bob-secret-queued')")
    cached = finished(bob, "bob-secret-finished")
    alice.client.get("/api/v1/executions")  # brings last_used_at up to date: no write below
    call = getattr(alice.client, method)
    with CaptureQueriesContext(connection) as missing_queries:
        missing = call(url.format(uuid.uuid4()))
    for task_id in (queued, cached):
        with django_assert_num_queries(len(missing_queries)):
            response = call(url.format(task_id))
        assert response.status_code == missing.status_code
        assert response.content == missing.content
        assert b"bob-secret" not in response.content and task_id.encode() not in response.content
    # Nothing alice sent changed bob's executions.
    assert Execution.objects.get(id=queued).status == "queued"
    # Bob still sees his own, so the 404s above are not an accident of the set-up.
    assert bob.client.get(f"/api/v1/executions/{cached}").json()["stdout"] == "bob-secret-finished"


def test_the_list_holds_no_other_tenants_rows_whatever_the_filters(alice, bob):
    bob.submit("print('bob-secret')")
    finished(bob, "bob-secret")
    mine = alice.submit("print(1)")
    for query in ("", "?status=queued", "?status=completed", "?language=python", "?page_size=100"):
        response = alice.client.get(f"/api/v1/executions{query}")
        assert response.status_code == 200
        assert b"bob-secret" not in response.content
        assert {e["task_id"] for e in response.json()["results"]} <= {mine}


def test_an_idempotency_key_is_per_tenant(alice, bob):
    headers = {"HTTP_IDEMPOTENCY_KEY": "same-key"}
    body = {"language": "python", "code": "print('bob-secret')"}
    bobs = bob.client.post("/api/v1/executions", body, format="json", **headers).json()["task_id"]
    # Alice reusing bob's key neither replays bob's execution nor conflicts with it.
    response = alice.client.post("/api/v1/executions", {**body, "code": "print(2)"}, format="json", **headers)
    assert response.status_code == 202
    assert response.json()["task_id"] != bobs
    assert "Idempotent-Replayed" not in response
    response = alice.client.post("/api/v1/execute", "print(3)", content_type="text/plain", **headers)
    assert response.status_code == 409 and b"bob-secret" not in response.content
