"""The browser page as rendered by Django: sign-in, tenant scoping, CSRF and escaping."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

from executions.models import Execution, Membership
from executions.sandbox import languages
from tests.conftest import PASSWORD

HOSTILE = "<script>alert(1)</script>"


def make_execution(tenant, **fields) -> Execution:
    return Execution.objects.create(tenant=tenant, language="python", code="print(1)", **fields)


def test_it_sends_an_anonymous_visitor_to_sign_in(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_a_member_signs_in_and_sees_their_tenant(alice_member):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login/")
    response = browser.post(
        "/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    page = browser.get("/")
    assert page.status_code == 200
    assert b'id="tenant-name">alice<' in page.content
    assert "script-src 'self'" in page["Content-Security-Policy"]


def test_it_refuses_a_sign_in_without_a_csrf_token(alice_member):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in browser.session


def test_it_refuses_a_wrong_password(alice_member):
    response = Client().post("/login/", {"username": "alice", "password": "not it"})
    assert response.status_code == 200
    assert b"Wrong username or password" in response.content


def test_it_tells_a_user_without_a_membership(outsider):
    response = outsider.client.get("/")
    assert response.status_code == 403
    assert b"Your account belongs to no tenant" in response.content
    assert b"add_member TENANT carol" in response.content


def test_it_tells_a_member_of_a_disabled_tenant(alice_member, alice):
    alice.tenant.is_active = False
    alice.tenant.save()
    response = alice_member.client.get("/")
    assert response.status_code == 403
    assert b"Tenant alice is disabled" in response.content


def test_the_history_lists_only_the_tenants_executions(alice_member, alice, bob):
    mine = make_execution(alice.tenant)
    theirs = make_execution(bob.tenant)
    page = alice_member.client.get("/").content.decode()
    assert f'href="/executions/{mine.id}"' in page
    assert str(theirs.id) not in page


def test_it_shows_one_of_the_tenants_executions_but_not_anothers(alice_member, alice, bob):
    mine = make_execution(alice.tenant, status="completed", stdout="hi\n", exit_code=0)
    theirs = make_execution(bob.tenant)
    page = alice_member.client.get(f"/executions/{mine.id}")
    assert page.status_code == 200
    assert page.context["execution_data"]["stdout"] == "hi\n"
    assert alice_member.client.get(f"/executions/{theirs.id}").status_code == 404


def test_it_escapes_code_stdin_and_output(alice_member, alice):
    execution = Execution.objects.create(
        tenant=alice.tenant,
        language="python",
        code=f"</textarea>{HOSTILE}",
        stdin=f"</textarea>{HOSTILE}",
        status="completed",
        stdout=HOSTILE,
        stderr=f"</script>{HOSTILE}",
        exit_code=0,
    )
    page = alice_member.client.get(f"/executions/{execution.id}").content.decode()
    assert "<script>alert" not in page and "</textarea><" not in page
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The result reaches the script as JSON in which no markup can close the element early.
    assert "\\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E" in page
    # The only script elements are our own static file and its JSON blocks.
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == [
        '<script id="execution-data" type="application/json">',
        '<script id="terminal-statuses" type="application/json">',
        '<script id="live-events" type="application/json">',
        '<script id="draft-tests" type="application/json">',
        '<script id="draft-program" type="application/json">',
        '<script id="file-rules" type="application/json">',
        '<script src="/static/executions/page.js">',
    ]


def test_a_user_in_two_tenants_chooses_which_one_to_act_for(alice_member, alice, bob):
    Membership.objects.create(user=alice_member.user, tenant=bob.tenant)
    theirs = make_execution(bob.tenant)
    client = alice_member.client
    # By default the first tenant by name.
    assert client.get("/").context["tenant"] == alice.tenant
    token = alice_member.csrf_token()
    assert client.post("/tenant", {"tenant_id": bob.tenant.id}).status_code == 403
    response = client.post("/tenant", {"tenant_id": bob.tenant.id, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.get("/").context["tenant"] == bob.tenant
    assert client.get(f"/executions/{theirs.id}").status_code == 200
    # The API calls of the page act for the same tenant.
    assert client.get(f"/api/v1/executions/{theirs.id}").status_code == 200


def test_a_user_cannot_choose_a_tenant_they_are_not_in(alice_member, alice, bob):
    token = alice_member.csrf_token()
    alice_member.client.post("/tenant", {"tenant_id": bob.tenant.id, "csrfmiddlewaretoken": token})
    assert alice_member.client.get("/").context["tenant"] == alice.tenant


def test_signing_out_needs_a_post_with_a_csrf_token(alice_member):
    client = alice_member.client
    token = alice_member.csrf_token()
    assert client.post("/logout/").status_code == 403
    assert client.get("/").status_code == 200
    response = client.post("/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_the_page_takes_no_posts(alice_member):
    token = alice_member.csrf_token()
    assert alice_member.client.post("/", {"code": "print(1)", "csrfmiddlewaretoken": token}).status_code == 405
    assert Execution.objects.count() == 0


def test_a_disabled_tenant_gives_way_to_an_active_one(alice_member, alice, bob):
    Membership.objects.create(user=alice_member.user, tenant=bob.tenant)
    token = alice_member.csrf_token()
    alice_member.client.post("/tenant", {"tenant_id": alice.tenant.id, "csrfmiddlewaretoken": token})
    alice.tenant.is_active = False
    alice.tenant.save()
    assert alice_member.client.get("/").context["tenant"] == bob.tenant


def test_a_judged_executions_page_carries_its_tests_and_results_as_data_only(alice_member, alice):
    test = {"name": HOSTILE, "stdin": f"</textarea>{HOSTILE}", "args": [], "expected_output": f"</script>{HOSTILE}"}
    result = {"name": HOSTILE, "verdict": "wrong_answer", "stdout": f"</script>{HOSTILE}"}
    execution = make_execution(
        alice.tenant, tests=[test], comparison="tokens", status="completed", verdict="wrong_answer",
        tests_passed=0, tests_failed=1, test_results=[result],
    )
    page = alice_member.client.get(f"/executions/{execution.id}").content.decode()
    assert "<script>alert" not in page and "</script><" not in page
    assert 'id="tests-editor"' in page and 'id="test-results"' in page
    assert '<option value="regex">' in page
    drafts = re.search(r'<script id="draft-tests" type="application/json">(.*?)</script>', page).group(1)
    assert '"comparison": "tokens"' in drafts and "\\u003Cscript\\u003E" in drafts


def test_the_language_menu_carries_each_languages_entry_file_and_editor_mode(alice_member):
    page = alice_member.client.get("/").content.decode()
    options = re.findall(r'<option value="([^"]+)" data-source="([^"]+)" data-editor-mode="([^"]+)"', page)
    assert options == [(language.name, language.source, language.editor_mode) for language in languages.CATALOG.values()]
    assert 'data-editor-base="/static/editor/"' in page


def test_every_editor_mode_is_one_the_installed_codemirror_knows():
    # mode/meta.js is CodeMirror's list of modes by MIME type, which the page looks each one up in.
    meta = (settings.EDITOR_DIR / "mode" / "meta.js").read_text()
    for language in languages.CATALOG.values():
        assert f'"{language.editor_mode}"' in meta, language.name
    for path in ("editor/lib/codemirror.js", "editor/lib/codemirror.css", "editor/mode/meta.js", "editor/addon/mode/loadmode.js"):
        assert finders.find(path), path
    # Only what a browser loads is served: not the package's sources or build scripts.
    assert finders.find("editor/package.json") is None and finders.find("editor/src/codemirror.js") is None


def test_an_executions_page_carries_its_files_and_arguments_as_data_only(alice_member, alice):
    files = [{"name": "helper.py", "content": f"</script>{HOSTILE}", "encoding": "utf-8"}]
    execution = make_execution(alice.tenant, files=files, args=["a b", HOSTILE])
    page = alice_member.client.get(f"/executions/{execution.id}").content.decode()
    assert "<script>alert" not in page and "</script><" not in page
    data = re.search(r'<script id="draft-program" type="application/json">(.*?)</script>', page).group(1)
    assert json.loads(data) == {"files": files, "args": ["a b", HOSTILE]}
    rules = re.search(r'<script id="file-rules" type="application/json">(.*?)</script>', page).group(1)
    assert json.loads(rules) == {"reserved": ["stdin"], "max_parts": languages.MAX_NAME_PARTS, "max_part": languages.MAX_NAME_PART}
    # A new program has none.
    assert '<script id="draft-program" type="application/json">null</script>' in alice_member.client.get("/").content.decode()
