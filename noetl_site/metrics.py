"""Prometheus metrics: what the system is doing right now.

Counters and histograms are updated where things happen (a commit that
appended events, a claim, a lease expiry, a schedule fire, an HTTP request).
With several gunicorn processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory shared by every process of one host (web and scheduler): each
process then writes its samples to files there and ``/metrics`` adds them up.
Levels that the database or NATS already hold (commands queued and in flight,
worker heartbeat age, consumer lag) are read when ``/metrics`` is scraped, so
they are right whichever process answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("noetl.site.metrics")

# Seconds, from a 5 ms noop step to a long extract.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
TERMINAL = {
    "workflow.completed": "completed",
    "workflow.failed": "failed",
    "execution.cancelled": "cancelled",
}
STEP_ENDS = ("call.done", "call.error")

EXECUTIONS_STARTED = Counter("noetl_executions_started", "Runs started.", ["playbook"])
EXECUTIONS_FINISHED = Counter(
    "noetl_executions_finished",
    "Runs that ended, by final status.",
    ["playbook", "status"],
)
STEP_DURATION = Histogram(
    "noetl_step_duration_seconds",
    "Time a worker spent on a step's command, by the step's tool kind.",
    ["tool", "status"],
    buckets=DURATION_BUCKETS,
)
TASK_DURATION = Histogram(
    "noetl_task_duration_seconds",
    "Time one task of a step's pipeline took (each attempt), by tool kind.",
    ["tool", "status"],
    buckets=DURATION_BUCKETS,
)
COMMANDS_ISSUED = Counter(
    "noetl_commands_issued", "Commands issued to workers.", ["pool"]
)
COMMANDS_CLAIMED = Counter(
    "noetl_commands_claimed", "Commands granted to a worker (leases).", ["pool"]
)
LEASE_EXPIRIES = Counter(
    "noetl_lease_expiries", "Leases that ran out before their worker reported."
)
REPUBLISHES = Counter(
    "noetl_pointer_republishes",
    "Pointers published again for commands nobody claimed in time.",
)
FIRE_LAG = Histogram(
    "noetl_scheduler_fire_lag_seconds",
    "How late a schedule fired after its planned time.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
HTTP_REQUESTS = Counter(
    "noetl_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "noetl_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=DURATION_BUCKETS,
)


# -- recording ----------------------------------------------------------------


def observe_events(playbook: str, events: Iterable[dict[str, Any]]) -> None:
    """Count what a committed transaction's events say happened."""
    for ev in events:
        kind = ev["kind"]
        if kind == "command.issued":
            COMMANDS_ISSUED.labels(ev.get("pool") or "default").inc()
        elif kind in STEP_ENDS:
            _observe_step(ev)
        elif kind == "execution.started":
            EXECUTIONS_STARTED.labels(playbook).inc()
        elif kind in TERMINAL:
            EXECUTIONS_FINISHED.labels(playbook, TERMINAL[kind]).inc()


def _observe_step(ev: dict[str, Any]) -> None:
    status = "ok" if ev["kind"] == "call.done" else "error"
    tool = ev.get("tool") or "unknown"
    if ev.get("duration_ms") is not None:
        STEP_DURATION.labels(tool, status).observe(ev["duration_ms"] / 1000)
    for task in ev["payload"].get("tasks") or ():
        if task.get("ms") is None:
            continue
        TASK_DURATION.labels(
            task.get("kind") or tool, task.get("status") or status
        ).observe(task["ms"] / 1000)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


# -- levels read at scrape time ------------------------------------------------------


class LevelsCollector(Collector):
    """Gauges computed from the database and NATS when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _command_levels()
        yield _heartbeat_ages()
        yield from _consumer_lag()


def _command_levels() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Count

    from executions.models import Command, CommandState

    in_flight = GaugeMetricFamily(
        "noetl_commands_in_flight",
        "Commands a worker holds a lease on.",
        labels=["pool"],
    )
    queued = GaugeMetricFamily(
        "noetl_commands_queued", "Commands waiting for a worker.", labels=["pool"]
    )
    rows = (
        Command.objects.filter(state__in=[CommandState.QUEUED, CommandState.RUNNING])
        .values("pool", "state")
        .annotate(n=Count("id"))
    )
    for row in rows:
        family = in_flight if row["state"] == CommandState.RUNNING else queued
        family.add_metric([row["pool"]], row["n"])
    yield in_flight
    yield queued


def _heartbeat_ages() -> GaugeMetricFamily:
    from django.utils import timezone

    from workers.models import WorkerRegistration

    family = GaugeMetricFamily(
        "noetl_worker_heartbeat_age_seconds",
        "Seconds since each registered worker was last heard from "
        "(workers gone or silent past NOETL_WORKER_GONE_AFTER_S are left out).",
        labels=["worker", "pool"],
    )
    now = timezone.now()
    rows = WorkerRegistration.objects.present(now).values_list(
        "id", "pool", "last_seen_at"
    )
    for worker_id, pool, seen in rows:
        if seen is not None:
            family.add_metric([worker_id, pool], (now - seen).total_seconds())
    return family


def _consumer_lag() -> Iterator[GaugeMetricFamily]:
    # Imported here: only a scrape needs NATS, not every process at start.
    from django.conf import settings
    from nats.errors import Error as NatsError

    if not settings.NOETL_NATS_URL:
        return
    pending = GaugeMetricFamily(
        "noetl_nats_consumer_pending",
        "Pointers in a pool's NATS consumer not yet delivered to a worker.",
        labels=["pool"],
    )
    unacked = GaugeMetricFamily(
        "noetl_nats_consumer_ack_pending",
        "Pointers delivered to a pool's workers and not yet acknowledged.",
        labels=["pool"],
    )
    try:
        lags = asyncio.run(_read_consumers(settings.NOETL_NATS_URL))
    except (OSError, TimeoutError, NatsError) as exc:  # the rest still answers
        log.warning("NATS consumer lag unavailable: %s", exc)
        return
    for pool, (waiting, delivered) in sorted(lags.items()):
        pending.add_metric([pool], waiting)
        unacked.add_metric([pool], delivered)
    yield pending
    yield unacked


async def _read_consumers(url: str) -> dict[str, tuple[int, int]]:
    from workers import dispatch

    nc = await asyncio.wait_for(dispatch.connect(url, once=True), timeout=2.0)
    try:
        js = nc.jetstream()
        infos = await asyncio.wait_for(js.consumers_info(dispatch.stream_name()), 2.0)
    finally:
        await nc.close()
    prefix = f"{dispatch.namespace()}-"
    lags = {}
    for info in infos:
        name = info.name or ""
        if name.startswith(prefix):
            lags[name[len(prefix) :]] = (
                info.num_pending or 0,
                info.num_ack_pending or 0,
            )
    return lags


# -- exposition -------------------------------------------------------------------


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition() -> bytes:
    """The text format of every metric: summed over this host's processes in
    multiprocess mode, plus the levels read now."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Counted())
    registry.register(LevelsCollector())
    return generate_latest(registry)


class _Counted(Collector):
    """This process's own counters and histograms (single-process mode)."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


# -- web --------------------------------------------------------------------------


def metrics_view(request: Any) -> Any:
    """``GET /metrics`` in Prometheus' text format, for a scraper holding
    ``NOETL_METRICS_TOKEN`` as its bearer token, or a superuser (session or
    API token). Its labels name playbooks, so it is not open to anyone."""
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST

    if not _may_scrape(request):
        return HttpResponse(
            "metrics need NOETL_METRICS_TOKEN as a bearer token, or a superuser\n",
            status=401,
            content_type="text/plain",
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def _may_scrape(request: Any) -> bool:
    import hmac

    from django.conf import settings

    from accounts import tokens

    if settings.NOETL_AUTH_DISABLED:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    expected = settings.NOETL_METRICS_TOKEN
    if expected and given and hmac.compare_digest(given, expected):
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_superuser:
        return True
    row = tokens.check(given) if given else None
    return row is not None and row.user.is_superuser


class RequestMetricsMiddleware:
    """Counts and times every request by method, URL pattern and status."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        import time

        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        if route != "metrics":
            observe_request(
                request.method,
                "/" + route,
                response.status_code,
                time.perf_counter() - started,
            )
        return response
