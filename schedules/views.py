"""The schedules page of the browser UI: next fire, last fires and runs."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from noetl_site import access
from schedules.models import Schedule, ScheduleFire

LAST_FIRES = 5


def schedule_list(request: HttpRequest) -> HttpResponse:
    if not settings.NOETL_AUTH_DISABLED and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    # The latest few fires of each schedule in one query, however many
    # fires a backfill left behind.
    latest = Window(
        RowNumber(), partition_by=[F("schedule_id")], order_by=F("fire_time").desc()
    )
    fires = (
        ScheduleFire.objects.annotate(rank=latest)
        .filter(rank__lte=LAST_FIRES)
        .select_related("execution")
    )
    visible = access.viewable(request.user, Schedule.objects.order_by("name"))
    schedules = visible.prefetch_related(
        Prefetch("fires", queryset=fires, to_attr="latest_fires")
    )
    rows = [{"schedule": s, "fires": s.latest_fires} for s in schedules]
    return render(request, "schedules/list.html", {"rows": rows})
