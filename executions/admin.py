from __future__ import annotations

from django.contrib import admin

from executions.models import ApiKey, Execution, Membership, Tenant


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    extra = 0
    can_delete = False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    inlines = [ApiKeyInline]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "language", "status", "exit_code", "duration_ms", "created_at"]
    list_filter = ["status", "language", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["=id"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Kept apart from TenantAdmin on purpose: a membership is managed from either side (user or tenant).
@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "tenant__name"]
    fields = ["user", "tenant"]
