"""The runs pages of the browser UI: the dashboard, the runs list, a run's
page (graph, timeline, events, steps) and the actions on a run.

Reads go through ``executions.queries`` and writes through
``executions.control``, as for the REST API; every page asks
``noetl_site.access`` what the user may see and do. Nothing here folds
events: step states come from the step_run projection.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from catalog import services as catalog
from executions import control, layout, queries
from executions.models import Execution, Status
from noetl_site import access
from noetl_site.text import count
from noetl_site.ui import body_with_etag, json_with_etag, page, require
from workers.models import WorkerRegistration, WorkerStatus

RUNS_PAGE = 50
# A result or workload shown on a page is cut to this many characters.
SHOWN = 100_000
EVENTS_PAGE = 100
# The dashboard counts at most this many runs per status.
COUNT_CAP = 1000
SINCE_CHOICES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# The run page's header never reads the run's state (it may be large).
HEADER_FIELDS = [
    "id",
    "playbook_id",
    "path",
    "version",
    "status",
    "parent_id",
    "created_at",
    "ended_at",
    "result",
    "error",
    "next_seq",
]


def _run(request: HttpRequest, execution_id: str) -> Execution:
    """The run, if it exists and the user may view its playbook."""
    execution = Execution.objects.only(*HEADER_FIELDS).filter(id=execution_id).first()
    if execution is None:
        raise Http404(f"no execution {execution_id}")
    require(access.can_view(request.user, execution.path), f"view {execution.path}")
    return execution


def _elapsed_ms(start: datetime, end: datetime | None) -> float:
    return queries.duration_ms(start, end or timezone.now()) or 0.0


# -- the dashboard ------------------------------------------------------------


@page
def dashboard(request: HttpRequest) -> HttpResponse:
    since = timezone.now() - timedelta(days=1)
    visible = access.viewable(request.user, Execution.objects.all())
    counts = queries.status_counts(visible, since, COUNT_CAP)
    failed = queries.runs_queryset(status=Status.FAILED)
    failures = access.viewable(request.user, failed).defer("state", "result")[:10]
    workers = list(WorkerRegistration.objects.present().order_by("pool", "name"))
    health = {"live": 0, "stale": 0}
    for worker in workers:
        health[worker.liveness()] += 1
    return render(
        request,
        "executions/dashboard.html",
        {
            "counts": [
                (status, counts[status], counts[status] > COUNT_CAP)
                for status in Status.values
            ],
            "cap": COUNT_CAP,
            "failures": failures,
            "workers": workers,
            "health": health,
        },
    )


# -- the runs list ------------------------------------------------------------


def _since(raw: str) -> datetime | None:
    if raw in SINCE_CHOICES:
        return timezone.now() - SINCE_CHOICES[raw]
    return parse_datetime(raw) if raw else None


@page
def run_list(request: HttpRequest) -> HttpResponse:
    params = request.GET
    status = params.get("status", "")
    if status not in ("", *Status.values):
        status = ""
    since_raw = params.get("since", "")
    since = _since(since_raw)
    rows = queries.with_trigger(
        access.viewable(
            request.user,
            queries.runs_queryset(
                status=status,
                path=params.get("path", "").strip(),
                since=since,
                parent=params.get("parent", ""),
                before=params.get("before", ""),
            ),
        ).defer("state", "result")
    )
    # One row more than a page tells whether another page follows.
    runs = list(rows[: RUNS_PAGE + 1])
    more = len(runs) > RUNS_PAGE
    runs = runs[:RUNS_PAGE]
    for run in runs:
        run.trigger = queries.trigger_summary(run.started_trigger)
        run.elapsed_ms = _elapsed_ms(run.created_at, run.ended_at)

    query = params.copy()
    query.pop("before", None)
    return render(
        request,
        "executions/run_list.html",
        {
            "runs": runs,
            "statuses": Status.values,
            "status": status,
            "path": params.get("path", ""),
            "since": since_raw,
            "parent": params.get("parent", ""),
            "since_choices": list(SINCE_CHOICES),
            "since_invalid": bool(since_raw) and since is None,
            "next_before": runs[-1].id if more else "",
            "filters": query.urlencode(),
            "paged": bool(params.get("before")),
        },
    )


@page
def run_list_live(request: HttpRequest) -> HttpResponse:
    """What changed for the runs a list shows: the status and duration of
    each requested id, and whether a run newer than ``newest`` exists."""
    ids = [i for i in request.GET.get("ids", "").split(",") if i][:RUNS_PAGE]
    rows = access.viewable(request.user, Execution.objects.filter(id__in=ids))
    runs = {
        run["id"]: {
            "status": run["status"],
            "duration_ms": _elapsed_ms(run["created_at"], run["ended_at"]),
        }
        for run in rows.values("id", "path", "status", "created_at", "ended_at")
    }
    newest = request.GET.get("newest", "")
    newer = (
        bool(newest)
        and access.viewable(
            request.user, Execution.objects.filter(id__gt=newest)
        ).exists()
    )
    return json_with_etag(request, {"runs": runs, "newer": newer})


# -- one run ------------------------------------------------------------------


@page
def run_detail(request: HttpRequest, execution_id: str) -> HttpResponse:
    execution = _run(request, execution_id)
    started = queries.started_payload(execution)
    steps = queries.step_rows(execution.id)
    statuses = {row["step"]: row["status"] for row in steps}
    parsed, _ = catalog.compiled(execution.playbook_id, "")
    end = execution.ended_at or timezone.now()

    events, next_after = _events(execution.id, 0)
    return render(
        request,
        "executions/run_detail.html",
        {
            "run": execution,
            "elapsed_ms": _elapsed_ms(execution.created_at, execution.ended_at),
            "trigger": queries.trigger_summary(started.get("trigger")),
            "workload": _pretty(queries.resolved(started.get("workload") or {}), SHOWN),
            "result": _pretty(queries.resolved(execution.result), SHOWN),
            "error": execution.error,
            "graph": layout.step_graph(parsed, statuses),
            "steps": [row for row in steps if row["status"] != "pending"],
            "timeline": layout.timeline(
                execution.created_at, end, steps, queries.chunk_spans(execution.id)
            ),
            "chunk_cap": queries.TIMELINE_CHUNKS,
            "events": events,
            "events_next": next_after,
            "live": {
                "url": reverse("executions:live", args=[execution.id]),
                "status": execution.status,
                # New events are appended only while the whole log fits one page.
                "after_seq": None if next_after else (events[-1].seq if events else 0),
            },
            "may_execute": access.can_execute(request.user, execution.path),
            "has_children": execution.children.exists(),
        },
    )


def _events(execution_id: str, after_seq: int) -> tuple[list[Any], int | None]:
    rows = queries.events_page(execution_id, after_seq, EVENTS_PAGE)
    for row in rows:
        text = json.dumps(row.payload, default=str)
        row.payload_text = text if len(text) <= 300 else text[:299] + "…"
    return rows, rows[-1].seq if len(rows) == EVENTS_PAGE else None


def _pretty(value: Any, limit: int = 0) -> str:
    """``value`` as indented JSON; with ``limit``, cut to that many
    characters (a page never carries a whole large result)."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if limit and len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return text


@page
def run_events(request: HttpRequest, execution_id: str) -> HttpResponse:
    """A page of the run's events by seq, after ``after_seq``."""
    execution = _run(request, execution_id)
    raw = request.GET.get("after_seq", "0")
    after = int(raw) if raw.isdigit() else 0
    events, next_after = _events(execution.id, after)
    return render(
        request,
        "executions/run_events.html",
        {
            "run": execution,
            "events": events,
            "events_next": next_after,
            "after_seq": after,
        },
    )


@page
def run_live(request: HttpRequest, execution_id: str) -> HttpResponse:
    """The run page's poll: status and step states, and the events after
    ``after_seq``. Its ETag is the run's next event number, so a poll while
    nothing happened costs one primary-key read and answers 304."""
    raw = request.GET.get("after_seq", "0")
    after = int(raw) if raw.isdigit() else 0
    head = (
        Execution.objects.filter(id=execution_id)
        .values("path", "status", "next_seq", "created_at", "ended_at")
        .first()
    )
    if head is None:
        raise Http404(f"no execution {execution_id}")
    require(access.can_view(request.user, head["path"]), f"view {head['path']}")
    tag = f"{execution_id}-{head['next_seq']}-{after}"
    if (
        request.headers.get("If-None-Match") == f'"{tag}"'
        and head["status"] == "running"
    ):
        return body_with_etag(request, "", tag)

    events = queries.events_page(execution_id, after, EVENTS_PAGE)
    data = {
        "status": head["status"],
        "duration_ms": _elapsed_ms(head["created_at"], head["ended_at"]),
        "steps": {
            row["step"]: row["status"] for row in queries.step_rows(execution_id)
        },
        "events": [
            {
                "seq": e.seq,
                "ts": e.ts,
                "kind": e.kind,
                "step": e.step,
                "status": e.status,
                "payload": json.dumps(e.payload, default=str)[:2000],
            }
            for e in events
        ],
    }
    response = json_with_etag(request, data)
    if head["status"] == "running":
        response["ETag"] = f'"{tag}"'
    return response


@page
def run_step(request: HttpRequest, execution_id: str, step: str) -> HttpResponse:
    """A step's status, result, error and captured output; ``?partial=1``
    gives the panel alone, for the run page to show beside its graph."""
    execution = _run(request, execution_id)
    row = next((r for r in queries.step_rows(execution.id) if r["step"] == step), None)
    if row is None:
        raise Http404(f"no step {step} in execution {execution_id}")
    template = (
        "executions/_step.html"
        if request.GET.get("partial")
        else ("executions/step.html")
    )
    return render(
        request,
        template,
        {
            "run": execution,
            "step": row,
            "result": _pretty(queries.step_result(execution.id, step), SHOWN),
            "logs": queries.step_logs(execution.id, step),
        },
    )


# -- actions ------------------------------------------------------------------


@require_POST
@page
def run_cancel(request: HttpRequest, execution_id: str) -> HttpResponse:
    execution = _run(request, execution_id)
    require(
        access.can_execute(request.user, execution.path), f"cancel {execution.path}"
    )
    try:
        cancelled = control.cancel_tree(
            execution.id, user=request.user, reason=request.POST.get("reason", "")
        )
    except control.Conflict as exc:
        messages.error(request, str(exc))
    else:
        below = len(cancelled) - 1
        also = f" {count(below, 'sub-run')} too." if below else ""
        messages.success(request, "Cancelled." + also)
    return redirect("executions:detail", execution_id=execution.id)


@page
def run_rerun(request: HttpRequest, execution_id: str) -> HttpResponse:
    """GET: a form with the run's input to edit; POST: start the same
    playbook version again, with the input as it was or as edited."""
    execution = _run(request, execution_id)
    require(access.can_execute(request.user, execution.path), f"run {execution.path}")
    original = queries.original_input(execution)
    text = request.POST.get("payload") if request.method == "POST" else None
    error = ""
    if request.method == "POST":
        try:
            if text is None:
                started, _ = control.rerun(execution, user=request.user)
            else:
                started = _start_edited(request, execution, text)
        except ValueError as exc:
            error = str(exc)
        else:
            messages.success(
                request, f"Started {started.path} v{started.version} again."
            )
            return redirect("executions:detail", execution_id=started.id)
    return render(
        request,
        "executions/rerun.html",
        {
            "run": execution,
            "payload": text if text is not None else _pretty(original),
            "error": error,
        },
        status=400 if error else 200,
    )


def _start_edited(request: HttpRequest, execution: Execution, text: str) -> Execution:
    payload = parse_payload(text)
    started, _ = control.start(
        execution.path,
        execution.version,
        payload,
        user=request.user,
        trigger={"kind": "rerun", "rerun_of": execution.id},
    )
    return started


def parse_payload(text: str) -> dict[str, Any]:
    """A payload typed into a form: a JSON object (blank means none)."""
    if not text.strip():
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"The payload is not valid JSON: {exc.msg} (line {exc.lineno}, "
            f"column {exc.colno})."
        ) from None
    if isinstance(payload, dict):
        return payload
    raise ValueError('The payload must be a JSON object, like {"n": 3}.')
