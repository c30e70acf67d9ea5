"""Runs in the admin, read only: the execution row with its step runs and
one page of its events at a time (keyset by seq; nothing is folded)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse

from executions.models import Event, Execution, StepRun
from noetl_site.admin_tools import CappedPaginator, PathScoped

EVENTS_PAGE = 50


def _after_seq(request: HttpRequest) -> int:
    raw = request.GET.get("events_after", "")
    return int(raw) if raw.isdigit() else 0


class ViewOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventPage(BaseInlineFormSet):
    """The run's events after ``after_seq``, at most EVENTS_PAGE of them."""

    after_seq = 0

    def get_queryset(self) -> Any:
        if not hasattr(self, "_page"):
            rows = super().get_queryset().filter(seq__gt=self.after_seq)
            self._page = rows.order_by("seq")[:EVENTS_PAGE]
        return self._page


class EventInline(ViewOnly, admin.TabularInline):
    model = Event
    formset = EventPage
    fields = [
        "seq",
        "ts",
        "kind",
        "step",
        "status",
        "worker_id",
        "duration_ms",
        "payload",
        "error",
    ]
    readonly_fields = fields
    can_delete = False
    extra = 0
    verbose_name_plural = f"events (a page of {EVENTS_PAGE}, by seq)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.after_seq = _after_seq(request)
        return formset


class StepRunInline(ViewOnly, admin.TabularInline):
    model = StepRun
    fields = [
        "step",
        "status",
        "runs",
        "started_at",
        "ended_at",
        "iterations",
        "failed_iterations",
        "error",
    ]
    readonly_fields = fields
    ordering = ["id"]
    can_delete = False
    extra = 0


@admin.register(Execution)
class ExecutionAdmin(PathScoped, ViewOnly, admin.ModelAdmin):
    list_display = ["id", "path", "version", "status", "created_at", "ended_at"]
    list_filter = ["status"]
    search_fields = ["=id", "path"]
    ordering = ["-id"]
    paginator = CappedPaginator
    show_full_result_count = False
    fields = [
        "id",
        "path",
        "version",
        "status",
        "parent",
        "owner",
        "created_at",
        "ended_at",
        "result",
        "error",
        "next_seq",
    ]
    readonly_fields = fields
    inlines = [StepRunInline, EventInline]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        after = _after_seq(request)
        seqs = list(
            Event.objects.filter(execution_id=object_id, seq__gt=after)
            .order_by("seq")
            .values_list("seq", flat=True)[: EVENTS_PAGE + 1]
        )
        context = {
            "events_after": after,
            "events_next": seqs[EVENTS_PAGE - 1] if len(seqs) > EVENTS_PAGE else None,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)
