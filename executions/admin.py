"""The operators' admin: tenants with their API keys, and a read-only, fast view of executions."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from executions import destinations, submissions, webhooks
from executions.models import ApiKey, Delivery, DeliveryAttempt, Execution, Membership, NotCancellable, Tenant
from executions.signin import AdminSignInForm

# The admin's sign-in is limited like the browser page's (executions.signin).
admin.site.login_form = AdminSignInForm

# The changelist counts at most this many rows: an exact COUNT(*) costs a scan of the whole table.
COUNT_CAP = 10_000
# A re-run starts real sandboxes: an accidental "select all" must not queue a million of them.
RERUN_LIMIT = 100


class ApiKeyForm(forms.ModelForm):
    revoke = forms.BooleanField(required=False, help_text="It stops working within a second.")

    class Meta:
        model = ApiKey
        fields = ["name"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    form = ApiKeyForm
    fields = ["name", "key", "created_at", "last_used_at", "revoked_at", "revoke"]
    readonly_fields = ["key", "created_at", "last_used_at", "revoked_at"]
    extra = 0
    can_delete = False
    verbose_name_plural = "API keys (name a new one and save: its key is shown once, at the top of the page)"

    @admin.display(description="key")
    def key(self, api_key: ApiKey) -> str:
        return str(api_key) if api_key.pk else "-"


class TenantForm(forms.ModelForm):
    rotate_webhook_secret = forms.BooleanField(
        required=False,
        label="New webhook secret",
        help_text=(
            "Make a new secret to sign this tenant's webhooks with; it is shown once, at the top of the page. "
            "The previous one also signs them for WEBHOOK_SECRET_OVERLAP_SECONDS. A tenant gets one when it "
            "is created."
        ),
    )

    class Meta:
        model = Tenant
        fields = "__all__"

    def clean_callback_url(self) -> str:
        url = self.cleaned_data.get("callback_url", "").strip()
        if url:
            try:
                destinations.check(url)
            except destinations.Refused as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from None
        return url


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the platform writes: operators read them, and act on them only through the admin's actions."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ["name", "is_active", "executions", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["webhook_secret_shown"]
    inlines = [ApiKeyInline]

    @admin.display(description="webhook secret")
    def webhook_secret_shown(self, tenant: Tenant) -> str:
        # Only where it comes from: the secret itself was shown once, when it was made.
        if not tenant.webhook_secret:
            return "-"
        made = tenant.webhook_secret_rotated_at
        return f"{tenant.webhook_secret[:10]}… (made {made:%Y-%m-%d %H:%M} UTC)" if made else "set"

    def save_model(self, request: HttpRequest, obj: Tenant, form: TenantForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # A new tenant gets one, and so does one given a default callback without one.
        wanted = not change or form.cleaned_data.get("rotate_webhook_secret")
        if wanted or (obj.callback_url and not obj.webhook_secret):
            plain = obj.rotate_webhook_secret()
            messages.warning(
                request, f"New webhook secret for {obj}: {plain} (copy it now: it is never shown again)"
            )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # A counting subquery per listed tenant, on the (tenant, created_at) index: no N+1, and no
        # GROUP BY over every execution of every tenant for a page of 100.
        counts = (
            Execution.objects.filter(tenant=OuterRef("pk"))
            .order_by()
            .values("tenant")
            # COUNT(*), not COUNT(id): the index alone answers it, with no visit to the table.
            .annotate(n=Count("*"))
            .values("n")
        )
        count = Coalesce(Subquery(counts, output_field=IntegerField()), 0)
        return super().get_queryset(request).annotate(execution_count=count)

    @admin.display(description="executions", ordering="execution_count")
    def executions(self, tenant: Tenant) -> int:
        return tenant.execution_count

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not ApiKey:
            return super().save_formset(request, form, formset, change)
        # The admin's history entry reads these, as Django's own save_formset would leave them.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for key_form in formset.forms:
            if not key_form.has_changed():
                continue
            if key_form.instance.pk is None:
                formset.new_objects.append(self.create_api_key(request, form.instance, key_form.instance.name))
            else:
                formset.changed_objects.append((self.update_api_key(request, key_form), key_form.changed_data))

    def create_api_key(self, request: HttpRequest, tenant: Tenant, name: str) -> ApiKey:
        # Only the model makes keys: it stores the digest and returns the plain text this one time.
        key, plain = tenant.create_api_key(name=name)
        messages.warning(request, f"New API key {name!r} for {tenant}: {plain} (copy it now: it is never shown again)")
        return key

    def update_api_key(self, request: HttpRequest, key_form: ApiKeyForm) -> ApiKey:
        key = key_form.instance
        key.save(update_fields=["name"])
        if key_form.cleaned_data.get("revoke"):
            if key.revoke():
                messages.info(request, f"API key {key} of {key.tenant} is revoked.")
        return key


class CappedCountPaginator(Paginator):
    """Counts up to COUNT_CAP rows, so the page costs the same on a table of any size."""

    cap = COUNT_CAP
    # A column every index of the filters holds, so that counting never visits the table.
    count_field = "created_at"

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by().values(self.count_field)[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap


# Only the changelist defers these: a hundred rows of 64 KiB outputs would make every page heavy.
HEAVY_FIELDS = ("code", "stdin", "stdout", "stderr", "error", "tests", "test_results")


class ExecutionChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).defer(*HEAVY_FIELDS)


def block(text: str, truncated: bool = False):
    """Untrusted text as an escaped, monospace block."""
    note = format_html(' <span class="help">{}</span>', "(truncated at the output limit)") if truncated else ""
    if not text:
        return format_html('<span class="quiet">(empty)</span>{}', note)
    return format_html(
        '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto; margin: 0">{}</pre>{}', text, note
    )


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "language", "status", "verdict", "exit_code", "duration", "created_at"]
    list_filter = ["status", "verdict", "language", "tenant"]
    list_select_related = ["tenant"]
    # search_fields shows the box; get_search_results makes it an exact primary-key lookup.
    search_fields = ["id"]
    search_help_text = "An execution's exact id (its task_id)."
    date_hierarchy = "created_at"
    # With the id as tie-breaker (the admin adds it) this walks the exec_created index.
    ordering = ["-created_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["rerun", "cancel"]
    fieldsets = [
        (None, {"fields": [
            "id", "tenant", "language", "status", "exit_code", "duration_ms", "compile_duration_ms", "error", "created_at",
            "started_at", "finished_at", "attempts", "worker_name", "container_id", "idempotency_key",
        ]}),
        ("Script", {"fields": ["code_block", "files", "args", "stdin_block"]}),
        ("Output", {"fields": ["compile_output_block", "stdout_block", "stderr_block"]}),
        ("Judging", {"fields": [
            "verdict", "tests_passed", "tests_failed", "comparison", "abs_tolerance", "rel_tolerance",
            "stop_on_first_failure", "test_results_table",
        ]}),
    ]
    readonly_fields = [
        "code_block", "stdin_block", "compile_output_block", "stdout_block", "stderr_block", "test_results_table"
    ]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        # Re-run and cancel change things although the rows themselves are read-only here.
        return request.user.has_perm("executions.change_execution")

    def get_changelist(self, request: HttpRequest, **kwargs):
        return ExecutionChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # A UUID goes straight to the primary key; the default would LIKE-scan id::text.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            wanted = uuid.UUID(term)
        except ValueError:
            return queryset.none(), False
        return queryset.filter(pk=wanted), False

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, execution: Execution) -> str:
        return "-" if execution.duration_ms is None else f"{execution.duration_ms / 1000:.2f} s"

    @admin.display(description="code")
    def code_block(self, execution: Execution):
        return block(execution.code)

    @admin.display(description="stdin")
    def stdin_block(self, execution: Execution):
        return block(execution.stdin)

    @admin.display(description="compiler output")
    def compile_output_block(self, execution: Execution):
        return block(execution.compile_output)

    @admin.display(description="stdout")
    def stdout_block(self, execution: Execution):
        return block(execution.stdout, execution.stdout_truncated)

    @admin.display(description="stderr")
    def stderr_block(self, execution: Execution):
        return block(execution.stderr, execution.stderr_truncated)

    @admin.display(description="tests")
    def test_results_table(self, execution: Execution):
        """Each test with its verdict and figures; its output as escaped text."""
        if not execution.tests:
            return format_html('<span class="quiet">{}</span>', "(not judged)")
        results = execution.test_results or [{"name": test["name"], "verdict": "-"} for test in execution.tests]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    result["name"], result["verdict"], result.get("exit_code", "-"), result.get("cpu_time_ms", "-"),
                    result.get("wall_time_ms", "-"), result.get("memory_kb", "-"), block(result.get("stdout", "")),
                )
                for result in results
            ),
        )
        return format_html(
            "<table><tr><th>test</th><th>verdict</th><th>exit</th><th>CPU ms</th><th>wall ms</th><th>KiB</th>"
            "<th>stdout</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="Re-run the selected executions (same tenant, code and stdin)", permissions=["operate"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        if queryset.count() > RERUN_LIMIT:
            self.message_user(request, f"Select at most {RERUN_LIMIT} executions to re-run.", messages.ERROR)
            return
        created = []
        for execution in queryset.defer(None).select_related("tenant"):
            try:
                new, _ = submissions.submit(execution.tenant, rerun_of(execution))
            except (submissions.Refused, submissions.QueueUnavailable) as exc:
                # The next ones would be refused too.
                self.message_user(request, f"{exc} Nothing more was re-run.", messages.ERROR)
                break
            except submissions.AdmissionError as exc:
                self.message_user(request, f"{execution.id} not re-run: {exc}", messages.WARNING)
                continue
            created.append(str(new.id))
        if created:
            self.message_user(request, f"Queued {len(created)} new execution(s): {', '.join(created)}")

    @admin.action(description="Cancel the selected executions", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        cancelled = finished = 0
        for execution in queryset.select_related("tenant").iterator():
            try:
                cancelled += submissions.cancel(execution)
            except NotCancellable:
                finished += 1
        self.message_user(request, f"Cancelled {cancelled}; {finished} had already finished.")


def rerun_of(execution: Execution) -> submissions.Submission:
    """The same run again, with the limits it had (checked again against its tenant's maxima now)."""
    return submissions.Submission(
        execution.language,
        execution.code,
        execution.stdin,
        execution.timeout_seconds,
        execution.memory_mb,
        files=tuple(execution.files),
        args=tuple(execution.args),
        tests=tuple(execution.tests),
        comparison=execution.comparison,
        abs_tolerance=execution.abs_tolerance,
        rel_tolerance=execution.rel_tolerance,
        stop_on_first_failure=execution.stop_on_first_failure,
    )


# Kept apart from TenantAdmin on purpose: a membership is managed from either side (user or tenant).
@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "tenant__name"]
    fields = ["user", "tenant"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Every webhook with its attempts; an operator re-sends failed (or delivered) ones."""

    list_display = ["id", "tenant", "subject", "status", "attempts", "last_status_code", "next_attempt_at", "created_at"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["id"]
    search_help_text = "A delivery's exact id (its webhook-id header)."
    ordering = ["-created_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["resend"]
    fields = [
        "id", "tenant", "execution", "batch", "url", "status", "attempts", "last_status_code", "last_error",
        "created_at", "next_attempt_at", "give_up_at", "delivered_at", "body_block",
    ]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("executions.change_delivery")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="for")
    def subject(self, delivery: Delivery) -> str:
        return f"execution {delivery.execution_id}" if delivery.execution_id else f"batch {delivery.batch_id}"

    @admin.display(description="body")
    def body_block(self, delivery: Delivery):
        return block(delivery.body)

    @admin.action(description="Re-send the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        if queryset.count() > RERUN_LIMIT:
            self.message_user(request, f"Select at most {RERUN_LIMIT} deliveries to re-send.", messages.ERROR)
            return
        sent = pending = 0
        for delivery in queryset:
            if delivery.resend():
                webhooks.enqueue(delivery)
                sent += 1
            else:
                pending += 1
        self.message_user(request, f"Re-sending {sent}; {pending} were still pending (they are tried anyway).")
