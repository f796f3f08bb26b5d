"""The admin, as an operator uses it: tenants and their API keys, executions, re-run and cancel."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from executions import runs
from executions.models import ApiKey, Execution, Tenant
from tests.conftest import listed_jobs, run_worker
from tests.helpers import assert_error

EXECUTIONS = "/admin/executions/execution/"


@pytest.fixture
def operator(db) -> Client:
    User.objects.create_superuser("operator", "operator@example.com", "correct horse battery")
    client = Client()
    assert client.login(username="operator", password="correct horse battery")
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def change_form_data(response) -> dict:
    """The POST body the tenant's change page would send back unchanged, inline keys included."""
    data = form_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(form_data(formset.management_form))
        for key_form in formset.forms:
            data.update(form_data(key_form))
    return data


def form_data(form) -> dict:
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None or value is False:
            continue
        key = form.add_prefix(name)
        if hasattr(field.widget, "widgets_names"):
            # A split date and time: one input per part.
            parts = field.widget.decompress(value)
            for suffix, widget, part in zip(field.widget.widgets_names, field.widget.widgets, parts):
                data[key + suffix] = widget.format_value(part)
        else:
            data[key] = value
    return data


def add_key_row(data: dict, name: str) -> None:
    index = int(data["api_keys-TOTAL_FORMS"])
    data["api_keys-TOTAL_FORMS"] = str(index + 1)
    data[f"api_keys-{index}-name"] = name


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_needs_a_staff_login(client, alice):
    response = client.get(EXECUTIONS)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


class TestTenants:
    def test_it_lists_tenants_with_their_execution_counts(self, operator, alice, bob):
        for _ in range(3):
            alice.submit("print(1)")
        bob.submit("print(2)")
        html = page(operator, "/admin/executions/tenant/")
        assert '<td class="field-executions">3</td>' in html
        assert '<td class="field-executions">1</td>' in html

    def test_it_searches_tenants_by_name(self, operator, alice, bob):
        html = page(operator, "/admin/executions/tenant/?q=ali")
        assert ">alice</a>" in html and ">bob</a>" not in html

    def test_the_tenant_list_costs_the_same_queries_for_any_number_of_tenants(self, operator, alice):
        alice.submit("print(1)")
        with CaptureQueriesContext(connection) as few:
            page(operator, "/admin/executions/tenant/")
        for name in ("carol", "dave", "erin", "frank"):
            Tenant.objects.create(name=name).create_api_key()
        with CaptureQueriesContext(connection) as many:
            page(operator, "/admin/executions/tenant/")
        assert len(many) == len(few)

    def test_it_creates_an_api_key_and_shows_it_once(self, operator, alice):
        url = f"/admin/executions/tenant/{alice.tenant.pk}/change/"
        data = change_form_data(operator.get(url))
        add_key_row(data, "ci")
        response = operator.post(url, data, follow=True)
        assert response.status_code == 200
        [shown] = [m for m in messages_of(response) if "New API key 'ci'" in m]
        plain = shown.split(": ")[1].split(" ")[0]
        key = ApiKey.find(plain)
        assert key is not None and key.tenant == alice.tenant and key.name == "ci"
        assert plain not in page(operator, url)
        # The new key works on the API.
        alice.client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
        assert alice.client.get("/api/v1/executions").status_code == 200

    def test_it_creates_a_tenant_with_its_first_key(self, operator):
        data = change_form_data(operator.get("/admin/executions/tenant/add/"))
        data["name"] = "carol"
        add_key_row(data, "first")
        response = operator.post("/admin/executions/tenant/add/", data, follow=True)
        [shown] = [m for m in messages_of(response) if "New API key 'first' for carol" in m]
        key = ApiKey.find(shown.split(": ")[1].split(" ")[0])
        assert key is not None and key.tenant.name == "carol"

    def test_it_revokes_an_api_key(self, operator, alice, bob):
        url = f"/admin/executions/tenant/{alice.tenant.pk}/change/"
        data = change_form_data(operator.get(url))
        data["api_keys-0-revoke"] = "on"
        response = operator.post(url, data, follow=True)
        assert any("is revoked" in m for m in messages_of(response))
        alice.key_row.refresh_from_db()
        assert alice.key_row.revoked_at is not None
        assert_error(alice.client.get("/api/v1/executions"), 401, "invalid_api_key")
        # Only alice's key.
        assert bob.client.get("/api/v1/executions").status_code == 200

    def test_saving_a_tenant_unchanged_creates_and_revokes_nothing(self, operator, alice):
        url = f"/admin/executions/tenant/{alice.tenant.pk}/change/"
        operator.post(url, change_form_data(operator.get(url)))
        assert list(ApiKey.objects.values_list("pk", "revoked_at")) == [(alice.key_row.pk, None)]


class TestExecutionList:
    def test_it_lists_executions_with_their_tenant(self, operator, alice, bob):
        first, second = alice.submit("print(1)"), bob.submit("echo 2", language="bash")
        html = page(operator, EXECUTIONS)
        assert first in html and second in html
        assert '<td class="field-tenant nowrap">alice</td>' in html

    def test_it_filters_by_status_language_and_tenant(self, operator, alice, bob):
        python, bash, bobs = alice.submit("print(1)"), alice.submit("echo 2", "bash"), bob.submit("print(3)")
        Execution.objects.filter(id=python).update(status="completed")
        assert_listed(operator, "?status__exact=completed", {python})
        assert_listed(operator, "?language__exact=bash", {bash})
        assert_listed(operator, f"?tenant__id__exact={bob.tenant.pk}", {bobs})
        created = Execution.objects.get(id=python).created_at
        assert_listed(
            operator, f"?created_at__year={created.year}&created_at__month={created.month}", {python, bash, bobs}
        )

    def test_the_date_drill_down_goes_from_years_to_months_to_days(self, operator, alice):
        seed(alice.tenant, 1, created_at=datetime(2025, 12, 31, 12, tzinfo=UTC))
        seed(alice.tenant, 1, created_at=datetime(2026, 9, 30, 12, tzinfo=UTC))
        seed(alice.tenant, 2, created_at=datetime(2026, 11, 2, 12, tzinfo=UTC))
        seed(alice.tenant, 1, created_at=datetime(2026, 11, 4, 12, tzinfo=UTC))
        assert drill_down(operator, "") == "2025 2026"
        assert drill_down(operator, "?created_at__year=2026") == (
            "‹ All dates September 2026 October 2026 November 2026"
        )
        november = "?created_at__month=11&created_at__year=2026"
        assert drill_down(operator, november) == "‹ 2026 November 2 November 3 November 4"
        assert len(listed(operator, november)) == 3
        day = "?created_at__day=2&created_at__month=11&created_at__year=2026"
        assert drill_down(operator, day) == "‹ November 2026 November 2"
        assert len(listed(operator, day)) == 2
        # Each link is the next level's query.
        assert f'href="{november.replace("&", "&amp;")}"' in page(operator, f"{EXECUTIONS}?created_at__year=2026")

    def test_it_finds_an_execution_by_its_exact_id_without_a_scan(self, operator, alice):
        wanted, other = alice.submit("print(1)"), alice.submit("print(2)")
        with CaptureQueriesContext(connection) as queries:
            assert_listed(operator, f"?q={wanted}", {wanted})
        sql = " ".join(q["sql"] for q in queries).upper()
        assert " LIKE " not in sql and "UPPER(" not in sql
        assert_listed(operator, f"?q={wanted[:8]}", set())
        assert_listed(operator, f"?q={uuid.uuid4()}", set())
        assert other

    def test_it_costs_the_same_queries_for_any_number_of_rows(self, operator, alice, bob, django_assert_num_queries):
        seed(alice.tenant, 3)
        with CaptureQueriesContext(connection) as few:
            page(operator, EXECUTIONS)
        seed(alice.tenant, 150)
        seed(bob.tenant, 150)
        with django_assert_num_queries(len(few)):
            page(operator, EXECUTIONS)
        with django_assert_num_queries(len(few)):
            page(operator, f"{EXECUTIONS}?status__exact=completed&language__exact=python&p=2")

    def test_it_never_counts_more_than_the_cap(self, operator, alice, monkeypatch):
        from executions import admin

        monkeypatch.setattr(admin.CappedCountPaginator, "cap", 20)
        seed(alice.tenant, 25)
        html = page(operator, EXECUTIONS)
        assert "more than 20 executions" in html and "more than 20 results" in html
        # Nothing claims a total it does not know.
        assert "21 executions" not in html and "21 results" not in html and "All 21" not in html
        assert "5 executions" in page(operator, f"{EXECUTIONS}?language__exact=bash")


class TestExecutionDetail:
    @pytest.mark.usefixtures("transactional_db")
    def test_it_shows_code_and_output_as_escaped_text(self, operator, alice):
        task_id = alice.submit("print('<script>alert(1)</script>')", stdin="<b>in</b>")
        run_worker()
        assert alice.get(task_id)["stdout"] == "<script>alert(1)</script>\n"
        html = page(operator, f"{EXECUTIONS}{task_id}/change/")
        assert "<script>alert(1)</script>" not in html
        assert "<pre" in html and "&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>" in html
        assert "print(&#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;)</pre>" in html
        assert "&lt;b&gt;in&lt;/b&gt;</pre>" in html

    def test_it_shows_a_judged_executions_tests_as_escaped_text(self, operator, alice):
        execution = Execution.objects.create(
            tenant=alice.tenant, language="python", code="print(1)", status="completed", verdict="wrong_answer",
            tests=[{"name": "<i>t</i>", "stdin": "", "args": [], "expected_output": "2"}], comparison="tokens",
            test_results=[{"name": "<i>t</i>", "verdict": "wrong_answer", "exit_code": 0, "cpu_time_ms": 12,
                           "wall_time_ms": 30, "memory_kb": 4000, "stdout": "<script>alert(1)</script>"}],
        )
        html = page(operator, f"{EXECUTIONS}{execution.id}/change/")
        assert "<script>alert(1)</script>" not in html and "<i>t</i>" not in html
        assert "<td>&lt;i&gt;t&lt;/i&gt;</td><td>wrong_answer</td><td>0</td><td>12</td><td>30</td><td>4000</td>" in html

    def test_it_cannot_add_edit_or_delete(self, operator, alice):
        task_id = alice.submit("print(1)")
        assert operator.get(f"{EXECUTIONS}add/").status_code == 403
        response = operator.post(f"{EXECUTIONS}{task_id}/change/", {"code": "print(2)", "status": "completed"})
        assert response.status_code == 403
        assert operator.post(f"{EXECUTIONS}{task_id}/delete/", {"post": "yes"}).status_code == 403
        assert Execution.objects.get(id=task_id).code == "print(1)"


class TestExecutionActions:
    @pytest.mark.usefixtures("transactional_db")
    def test_re_run_submits_a_new_execution_for_the_same_tenant(self, operator, alice):
        task_id = alice.submit("print(input()[::-1])", stdin="olleh\n")
        run_worker()
        response = act(operator, "rerun", task_id)
        new = Execution.objects.exclude(id=task_id).get()
        assert any(str(new.id) in m for m in messages_of(response))
        original = Execution.objects.get(id=task_id)
        assert (new.tenant, new.language, new.code, new.stdin) == (
            alice.tenant, original.language, original.code, original.stdin
        )
        assert new.status == "queued"
        run_worker()
        assert alice.get(str(new.id))["stdout"] == "hello\n"

    def test_re_run_keeps_the_programs_files_and_arguments(self, operator, alice):
        files = [{"name": "lib.py", "content": "X = 1", "encoding": "utf-8"}]
        response = alice.client.post(
            "/api/v1/executions", {"code": "import lib", "files": files, "args": ["a b"]}, format="json"
        )
        task_id = response.json()["task_id"]
        act(operator, "rerun", task_id)
        new = Execution.objects.exclude(id=task_id).get()
        assert (new.files, new.args) == (files, ["a b"])

    def test_re_run_keeps_the_original_limits_and_its_tenants_quotas(self, operator, alice):
        response = alice.client.post(
            "/api/v1/executions", {"code": "print(1)", "timeout_seconds": 1.5, "memory_mb": 32}, format="json"
        )
        task_id = response.json()["task_id"]
        act(operator, "rerun", task_id)
        new = Execution.objects.exclude(id=task_id).get()
        assert (new.timeout_seconds, new.memory_mb) == (1.5, 32)
        # Over the tenant's max_queued: a message, nothing created, not a server error.
        Tenant.objects.filter(pk=alice.tenant.pk).update(max_queued=2)
        response = act(operator, "rerun", task_id)
        assert response.status_code == 200
        assert any("queued or running, its quota" in m for m in messages_of(response))
        assert Execution.objects.count() == 2
        # Limits the tenant may no longer ask for are refused the same way as on the API.
        Tenant.objects.filter(pk=alice.tenant.pk).update(max_queued=None, max_timeout_seconds=1)
        response = act(operator, "rerun", task_id)
        assert any("not re-run: timeout_seconds: must be between" in m for m in messages_of(response))
        assert Execution.objects.count() == 2

    def test_cancel_cancels_what_has_not_finished(self, operator, alice):
        queued, finished = alice.submit("print(1)"), alice.submit("print(2)")
        Execution.objects.filter(id=finished).update(status="running")
        runs.finish(finished, {"status": "completed", "exit_code": 0})
        response = act(operator, "cancel", queued, finished)
        assert "Cancelled 1; 1 had already finished." in messages_of(response)
        assert Execution.objects.get(id=queued).status == "cancelled"
        assert Execution.objects.get(id=finished).status == "completed"
        # The cancelled one's job left the queue.
        assert f"execution-{queued}-1" not in listed_jobs()

    def test_a_view_only_operator_can_browse_but_not_act(self, alice):
        task_id = alice.submit("print(1)")
        viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_execution"))
        client = Client()
        client.force_login(viewer)
        assert task_id in page(client, EXECUTIONS)
        act(client, "cancel", task_id, expect_ok=False)
        assert Execution.objects.get(id=task_id).status == "queued"


def act(client: Client, action: str, *task_ids: str, expect_ok: bool = True):
    response = client.post(EXECUTIONS, {"action": action, "_selected_action": list(task_ids)}, follow=True)
    assert response.status_code == 200
    if expect_ok:
        assert "No action selected" not in response.content.decode()
    return response


def listed(client: Client, query: str) -> set[str]:
    response = client.get(EXECUTIONS + query)
    assert response.status_code == 200
    return {str(e.pk) for e in response.context["cl"].result_list}


def assert_listed(client: Client, query: str, expected: set[str]) -> None:
    assert listed(client, query) == expected


def drill_down(client: Client, query: str) -> str:
    """The date drill-down's text: its back link, then its choices."""
    nav = page(client, EXECUTIONS + query).split('<nav class="toplinks">', 1)[1].split("</nav>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", nav)).split())


def seed(tenant: Tenant, count: int, **fields) -> None:
    Execution.objects.bulk_create(
        Execution(
            tenant=tenant, language="python" if i % 5 else "bash", code=f"print({i})", status="completed", **fields
        )
        for i in range(count)
    )
