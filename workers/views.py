"""The workers page of the browser UI: each registered worker with its
pool, capacity and heartbeat age, live, stale or gone."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from noetl_site.ui import page
from workers.models import Pool, WorkerRegistration, gone_after_s, stale_after_s

# Workers that deregistered stay listed for a while, then drop off the page.
GONE_SHOWN = 50


@page
def worker_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    present = list(WorkerRegistration.objects.present(now).order_by("pool", "name"))
    # Deregistered or long silent, most recently heard from first.
    gone = sorted(
        WorkerRegistration.objects.absent(now).order_by("-registered_at")[:GONE_SHOWN],
        key=lambda w: w.deregistered_at or w.last_seen_at or w.registered_at,
        reverse=True,
    )
    rows = [
        {"worker": w, "state": w.liveness(now), "age_s": w.heartbeat_age_s(now)}
        for w in present + gone
    ]
    pools = set(Pool.objects.values_list("name", flat=True))
    pools.update(w.pool for w in present)
    return render(
        request,
        "workers/list.html",
        {
            "rows": rows,
            "pools": sorted(pools),
            "stale_after_s": stale_after_s(),
            "gone_after_s": gone_after_s(),
        },
    )
