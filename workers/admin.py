"""Runtimes in the admin (read only): pools and registered workers with
their heartbeat age and whether they are live or stale."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from workers.models import Pool, WorkerRegistration

_COLOURS = {"live": "#2e7d32", "stale": "#c62828", "gone": "#757575"}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that workers and `manage.py createpool` write; operators look."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: object | None = None
    ) -> bool:
        return False


@admin.register(Pool)
class PoolAdmin(ReadOnlyAdmin):
    list_display = ["name", "created_at"]
    # The enrollment token's hash is left out: it is of no use to look at.
    fields = ["name", "created_at"]
    readonly_fields = fields


@admin.register(WorkerRegistration)
class WorkerRegistrationAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "id",
        "pool",
        "state",
        "heartbeat_age",
        "last_seen_at",
        "capacity",
        "host",
        "version",
        "registered_at",
    ]
    list_filter = ["pool", "status"]
    search_fields = ["id", "name", "host"]
    ordering = ["-registered_at"]
    fields = [
        "id",
        "name",
        "pool",
        "status",
        "capacity",
        "version",
        "host",
        "labels",
        "registered_at",
        "last_seen_at",
        "deregistered_at",
    ]
    readonly_fields = fields

    @admin.display(description="State")
    def state(self, obj: WorkerRegistration) -> str:
        state = obj.liveness()
        return format_html(
            '<strong style="color: {}">{}</strong>', _COLOURS[state], state
        )

    @admin.display(description="Heartbeat age", ordering="last_seen_at")
    def heartbeat_age(self, obj: WorkerRegistration) -> str:
        age = obj.heartbeat_age_s()
        if age is None:
            return "never"
        if age < 120:
            return f"{age:.0f} s"
        if age < 7200:
            return f"{age / 60:.0f} min"
        return f"{age / 3600:.0f} h"
