"""The browser page's API calls: a signed-in member's session stands in for an API key, with CSRF."""

from __future__ import annotations

from executions.models import Execution
from tests.conftest import assert_nothing_created, queued_job_count
from tests.helpers import assert_error

SCRIPT = {"language": "python", "code": "print('hi')", "stdin": ""}


def test_a_member_submits_for_their_tenant_with_a_csrf_token(alice_member, alice):
    token = alice_member.csrf_token()
    response = alice_member.client.post(
        "/api/v1/executions", SCRIPT, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 202, response.content
    execution = Execution.objects.get(id=response.json()["task_id"])
    assert execution.tenant == alice.tenant
    assert queued_job_count() == 1


def test_it_refuses_a_session_submission_without_a_csrf_token(alice_member):
    response = alice_member.client.post("/api/v1/executions", SCRIPT, content_type="application/json")
    assert_error(response, 403, "csrf_failed")
    response = alice_member.client.post("/api/v1/execute", "print(1)", content_type="text/plain")
    assert_error(response, 403, "csrf_failed")
    assert_nothing_created()


def test_it_refuses_a_session_submission_with_a_wrong_csrf_token(alice_member):
    alice_member.csrf_token()
    response = alice_member.client.post(
        "/api/v1/executions", SCRIPT, content_type="application/json", headers={"X-CSRFToken": "x" * 64}
    )
    assert_error(response, 403, "csrf_failed")
    assert_nothing_created()


def test_a_member_reads_only_their_tenants_executions(alice_member, alice, bob):
    mine = alice.submit("print(1)")
    theirs = bob.submit("print(2)")
    assert alice_member.client.get(f"/api/v1/executions/{mine}").json()["task_id"] == mine
    assert_error(alice_member.client.get(f"/api/v1/executions/{theirs}"), 404, "not_found")
    listed = alice_member.client.get("/api/v1/executions").json()["results"]
    assert [row["task_id"] for row in listed] == [mine]


def test_a_user_without_a_membership_is_told_so(outsider):
    assert_error(outsider.client.get("/api/v1/executions"), 403, "no_tenant")
    token = outsider.csrf_token()
    response = outsider.client.post(
        "/api/v1/executions", SCRIPT, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert_error(response, 403, "no_tenant")
    assert_nothing_created()


def test_a_member_of_a_disabled_tenant_is_refused(alice_member, alice):
    alice.tenant.is_active = False
    alice.tenant.save()
    assert_error(alice_member.client.get("/api/v1/executions"), 403, "tenant_disabled")


def test_an_api_key_needs_no_csrf_token_and_wins_over_a_session(alice_member, bob):
    response = alice_member.client.post(
        "/api/v1/executions", SCRIPT, content_type="application/json", headers={"Authorization": f"Bearer {bob.key}"}
    )
    assert response.status_code == 202, response.content
    assert Execution.objects.get(id=response.json()["task_id"]).tenant == bob.tenant


def test_a_signed_out_browser_still_needs_an_api_key(alice_member):
    alice_member.client.logout()
    response = alice_member.client.get("/api/v1/executions")
    assert_error(response, 401, "missing_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_following_a_result_through_the_session_is_cheap(alice_member, alice, django_assert_num_queries):
    task_id = alice.submit("print(1)")
    # The session, its user and the membership; the queued execution is read from Redis.
    with django_assert_num_queries(3):
        response = alice_member.client.get(f"/api/v1/executions/{task_id}")
    assert response.status_code == 200
