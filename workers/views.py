"""The workers page of the browser UI: each registered worker with its
pool, capacity and heartbeat age, live or stale."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from noetl_site.ui import page
from workers.models import Pool, WorkerRegistration, WorkerStatus, stale_after_s

# Workers that deregistered stay listed for a while, then drop off the page.
GONE_SHOWN = 50


@page
def worker_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    active = list(
        WorkerRegistration.objects.filter(status=WorkerStatus.ACTIVE).order_by(
            "pool", "name"
        )
    )
    gone = list(
        WorkerRegistration.objects.filter(status=WorkerStatus.GONE).order_by(
            "-deregistered_at"
        )[:GONE_SHOWN]
    )
    rows = [
        {"worker": w, "state": w.liveness(now), "age_s": w.heartbeat_age_s(now)}
        for w in active + gone
    ]
    return render(
        request,
        "workers/list.html",
        {
            "rows": rows,
            "pools": Pool.objects.order_by("name").values_list("name", flat=True),
            "stale_after_s": stale_after_s(),
        },
    )
