"""The browser page: a signed-in member writes a script, runs it and watches the result.

The page itself only renders; submitting and the live result go through the REST API (with the
user's session and a CSRF token), so the browser meets the same validation, limits and queue as
any API client.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.db.models.functions import Left
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from executions import events, judging
from executions.sandbox import languages
from executions.models import Execution, Membership
from executions.signin import SignInForm

HISTORY_LENGTH = 20
SNIPPET_LENGTH = 100

# Scripts and styles only from our own static files: even if program output ever reached the DOM
# as markup, the browser would not run it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def with_csp(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    return wrapper


login = with_csp(auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=SignInForm))
logout = auth_views.LogoutView.as_view()


def current_membership(request: HttpRequest) -> Membership | None:
    return Membership.current(request.user, request.session.get(Membership.SESSION_KEY))


def history(tenant) -> QuerySet[Execution]:
    # Only what the list shows: code, stdin and output can be 64 KiB each, twenty times over.
    return (
        Execution.objects.filter(tenant=tenant)
        .only("id", "language", "status", "created_at")
        .annotate(snippet=Left("code", SNIPPET_LENGTH))
        .order_by("-created_at", "-id")[:HISTORY_LENGTH]
    )


@with_csp
@require_safe
@login_required
def page(request: HttpRequest, execution_id=None) -> HttpResponse:
    """The editor and the tenant's history; with an id, that execution's result (and its code, to rerun)."""
    membership = current_membership(request)
    if membership is None or not membership.tenant.is_active:
        return render(request, "executions/no_tenant.html", {"membership": membership}, status=403)
    tenant = membership.tenant
    execution = get_object_or_404(Execution, tenant=tenant, id=execution_id) if execution_id else None
    context = {
        "tenant": tenant,
        "memberships": Membership.objects.filter(user=request.user).select_related("tenant").order_by("tenant__name"),
        "history": history(tenant),
        "execution": execution,
        "execution_data": execution.to_dict() if execution else None,
        "draft": execution or Execution(language="python"),
        # Each language with its entry file's name and its editor mode, from the catalog.
        "languages": list(languages.CATALOG.values()),
        "file_rules": {
            "reserved": languages.RESERVED_NAMES,
            "max_parts": languages.MAX_NAME_PARTS,
            "max_part": languages.MAX_NAME_PART,
        },
        "terminal_statuses": sorted(Execution.TERMINAL_STATUSES),
        # Only the platform's own server streams events (executions/events.py): elsewhere the page polls.
        "live_events": bool(request.META.get(events.STREAMS_ENVIRON_KEY)),
        "output_limit_kib": settings.SANDBOX_OUTPUT_LIMIT_BYTES // 1024,
        "comparisons": judging.COMPARISONS,
        # A judged execution's tests come back into the editor, to run again.
        "draft_tests": {
            "tests": execution.tests,
            "comparison": execution.comparison,
            "abs_tolerance": execution.abs_tolerance,
            "rel_tolerance": execution.rel_tolerance,
            "stop_on_first_failure": execution.stop_on_first_failure,
        }
        if execution
        else None,
        # And its other files and arguments (its entry point is the code above).
        "draft_program": {"files": execution.files, "args": execution.args} if execution else None,
    }
    return render(request, "executions/page.html", context)


@require_POST
@login_required
def choose_tenant(request: HttpRequest) -> HttpResponse:
    """Switch a user with several memberships to another of their tenants."""
    chosen = request.POST.get("tenant_id", "")
    if chosen.isdigit() and Membership.objects.filter(user=request.user, tenant_id=int(chosen)).exists():
        request.session[Membership.SESSION_KEY] = int(chosen)
    return redirect("home")
