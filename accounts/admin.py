from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import tokens
from accounts.models import ApiToken, AuditEntry, PathGrant


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "user",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    readonly_fields = [
        "user",
        "prefix",
        "token_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown only once, so it is made by `manage.py createtoken`.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for row in queryset:
            tokens.revoke(row)


@admin.register(PathGrant)
class PathGrantAdmin(admin.ModelAdmin):
    """Who may view, run and change which playbooks. Every change is written
    to the audit log (accounts.signals)."""

    list_display = ["group", "pattern", "can_view", "can_execute", "can_modify"]
    list_filter = ["group", "can_execute", "can_modify"]
    search_fields = ["pattern", "group__name"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "target", "allowed"]
    list_filter = ["action", "allowed"]
    search_fields = ["actor", "target"]
    readonly_fields = ["at", "actor", "action", "target", "allowed", "detail"]

    # The audit log is only ever added to.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
