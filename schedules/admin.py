"""Schedules in the Django admin: edited with the model's own checks (a bad
cron expression or time zone is refused with a message on its field), the
next five fire times previewed, and the latest fires listed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from noetl_site import access
from noetl_site.admin_tools import PathScoped
from noetl_site.text import count
from schedules import duty
from schedules.models import Schedule, owner_of

RECENT_FIRES = 10
STATE_FIELDS = (
    "next_fires",
    "recent_fires",
    "next_run_at",
    "last_fire_at",
    "last_status",
    "last_error",
    "missed_fires",
)


@admin.register(Schedule)
class ScheduleAdmin(PathScoped, admin.ModelAdmin):
    list_display = (
        "name",
        "path",
        "when",
        "timezone",
        "enabled",
        "next_run_at",
        "last_fire_at",
        "last_status",
    )
    list_filter = ("enabled", "last_status", "catchup", "concurrency")
    search_fields = ("name", "path")
    readonly_fields = STATE_FIELDS
    actions = ["pause", "resume", "run_now"]
    fieldsets = (
        (None, {"fields": ("name", "path", "version", "payload", "enabled")}),
        ("When", {"fields": ("cron", "interval_s", "timezone", "start_at", "end_at")}),
        ("Policies", {"fields": ("catchup", "max_catchup", "concurrency")}),
        ("State", {"fields": STATE_FIELDS}),
    )

    @admin.display(description="trigger")
    def when(self, schedule: Schedule) -> str:
        return schedule.cron or f"every {schedule.interval_s}s"

    @admin.display(description="next 5 fire times")
    def next_fires(self, schedule: Schedule) -> str:
        fires = schedule.preview(duty.db_now())
        if not fires:
            return "none"
        zone = schedule.trigger.zone
        return format_html_join(
            "",
            "<div>{} ({})</div>",
            ((f.astimezone(zone).isoformat(), schedule.timezone) for f in fires),
        )

    @admin.display(description=f"last {RECENT_FIRES} fires")
    def recent_fires(self, schedule: Schedule) -> str:
        # A read-only list, not an inline: a backfill can leave thousands.
        fires = schedule.fires.select_related("execution")[:RECENT_FIRES]
        if not fires:
            return "none yet"
        return format_html_join(
            "",
            "<div>{} {} {} {} {}</div>",
            (
                (
                    f.fire_time.isoformat(),
                    f.kind,
                    f.status,
                    f.execution_id or "",
                    f.execution.status if f.execution_id else f.reason,
                )
                for f in fires
            ),
        )

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: Any, change: bool
    ) -> None:
        # The same rules as every other surface (the form already ran clean()).
        if not access.can_execute(request.user, obj.path):
            raise PermissionDenied(f"you may not run {obj.path}")
        obj.owner = owner_of(request.user)
        obj.save_checked(duty.db_now())

    def _allowed(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> list[Schedule]:
        allowed = []
        for schedule in queryset:
            if access.can_execute(request.user, schedule.path):
                allowed.append(schedule)
            else:
                self.message_user(
                    request, f"You may not run {schedule.path}.", messages.ERROR
                )
        return allowed

    @admin.action(description="Pause the selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        allowed = self._allowed(request, queryset)
        for schedule in allowed:
            schedule.pause()
        self.message_user(request, f"paused {count(len(allowed), 'schedule')}")

    @admin.action(description="Resume the selected schedules from now")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        now = duty.db_now()
        allowed = self._allowed(request, queryset)
        for schedule in allowed:
            schedule.resume(now)
        self.message_user(request, f"resumed {count(len(allowed), 'schedule')}")

    @admin.action(description="Run the selected schedules now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in self._allowed(request, queryset):
            fire = duty.run_now(schedule, duty.db_now())
            if fire.execution_id:
                self.message_user(request, f"{schedule}: started {fire.execution_id}")
            else:
                self.message_user(
                    request, f"{schedule}: {fire.reason}", level=messages.ERROR
                )
