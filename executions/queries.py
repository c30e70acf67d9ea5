"""Reading runs for the API and the CLI: one run's document, pages of runs
and of events, a run's descendants and the input it was started with.
Nothing here writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform

from executions import service, templating
from executions.models import Blob, Event, Execution, Status, StepRun


def resolved(value: Any) -> Any:
    """``value`` with every large-value reference inside it replaced by the value."""
    value = service.values().resolve(value)
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    return value


def run_detail(execution: Execution, *, full: bool = False) -> dict[str, Any]:
    """One run as the API shows it, and what ``noetl run --json`` prints.

    ``full`` adds each step's result (its variable in the run's state) and
    resolves large values stored by reference; without it, results stay as
    stored (a reference with a preview when large) and steps carry no result.
    """
    variables = (execution.state or {}).get("vars", {})
    steps: dict[str, dict[str, Any]] = {}
    # Every step has a row from the start; those never reached stay out.
    for run in execution.step_runs.exclude(status="pending").order_by("id"):
        entry: dict[str, Any] = {
            "status": run.status,
            "runs": run.runs,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "iterations": run.iterations,
            "failed_iterations": run.failed_iterations,
            "error": run.error,
        }
        if full:
            entry["result"] = resolved(variables.get(run.step))
        steps[run.step] = entry

    started = started_payload(execution)
    trigger = dict(started.get("trigger") or {})
    trigger.pop("input", None)
    result = resolved(execution.result) if full else execution.result
    return {
        "id": execution.id,
        "path": execution.path,
        "version": execution.version,
        "status": execution.status,
        "parent": execution.parent_id,
        "created_at": execution.created_at,
        "ended_at": execution.ended_at,
        "duration_ms": duration_ms(execution.created_at, execution.ended_at),
        "trigger": trigger,
        "result": result,
        "error": execution.error,
        "steps": steps,
    }


def duration_ms(start: datetime, end: datetime | None) -> float | None:
    if end is None:
        return None
    return round((end - start).total_seconds() * 1000, 1)


def runs_page(
    *,
    status: str = "",
    path: str = "",
    since: datetime | None = None,
    parent: str = "",
    before: str = "",
    limit: int = 50,
    narrow: Callable[[QuerySet[Execution]], QuerySet[Execution]] | None = None,
) -> list[Execution]:
    """Newest runs first, keyset-paged on the id: ids are UUIDv7, so id order
    is start order, and ``before`` is the last id of the previous page.
    ``narrow`` keeps the runs a caller may see (``access.viewable``)."""
    rows = runs_queryset(
        status=status, path=path, since=since, parent=parent, before=before
    )
    if narrow is not None:
        rows = narrow(rows)
    return list(with_trigger(rows)[:limit])


def runs_queryset(
    *,
    status: str = "",
    path: str = "",
    since: datetime | None = None,
    parent: str = "",
    before: str = "",
) -> QuerySet[Execution]:
    """The unevaluated query behind ``runs_page``, for callers that add to it
    (the GraphQL optimizer picks the columns and relations it needs)."""
    rows = Execution.objects.order_by("-id")
    if status:
        rows = rows.filter(status=status)
    if path:
        rows = rows.filter(path=path)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if parent:
        rows = rows.filter(parent_id=parent)
    if before:
        rows = rows.filter(id__lt=before)
    return rows


def with_trigger(rows: QuerySet[Execution]) -> QuerySet[Execution]:
    """Runs annotated with ``started_trigger``: what started each (the API,
    the CLI, a schedule fire, a parent run), from its first event."""
    started = Event.objects.filter(
        execution=OuterRef("pk"), kind="execution.started"
    ).order_by("seq")
    return rows.annotate(
        started_trigger=Subquery(started.values("payload__trigger")[:1])
    )


def trigger_summary(trigger: dict[str, Any] | None) -> dict[str, Any]:
    """A run's trigger without the input it carried (shown in run lists)."""
    return {k: v for k, v in (trigger or {}).items() if k != "input"}


def events_page(execution_id: str, after_seq: int = 0, limit: int = 200) -> list[Event]:
    return list(
        Event.objects.filter(execution_id=execution_id, seq__gt=after_seq).order_by(
            "seq"
        )[:limit]
    )


LOG_EVENT_KINDS = ("call.done", "call.error", "loop.chunk.done")


def run_logs(
    execution_id: str, *, step: str = "", after_seq: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    """The output a run's commands captured (python stdout and stderr, SQL
    notices, policy warnings), one entry per command that logged, in seq
    order. Each command's tail is a blob its finishing event points to."""
    rows = Event.objects.filter(
        execution_id=execution_id,
        seq__gt=after_seq,
        kind__in=LOG_EVENT_KINDS,
        payload__has_key="log_ref",
    ).order_by("seq")
    if step:
        rows = rows.filter(step=step)
    entries = []
    for event in rows[:limit]:
        ref = event.payload["log_ref"]
        sha = str(ref.get("$ref", "")).split(":", 1)[-1]
        data = Blob.objects.filter(sha256=sha).values_list("data", flat=True).first()
        text = bytes(data).decode(errors="replace") if data is not None else ""
        entries.append({
            "seq": event.seq,
            "step": event.step,
            "command_id": event.command_id,
            "kind": event.kind,
            "ts": event.ts,
            "worker_id": event.worker_id,
            "lines": text.splitlines(),
            "size": ref.get("size", len(text)),
        })
    return entries


def started_payload(execution: Execution) -> dict[str, Any]:
    """The payload of the run's ``execution.started`` event (its first)."""
    payload = (
        Event.objects.filter(execution=execution, kind="execution.started")
        .order_by("seq")
        .values_list("payload", flat=True)
        .first()
    )
    return payload or {}


def original_input(execution: Execution) -> dict[str, Any]:
    """The payload the run was started with, to start it again.

    Runs started through the API record it in their trigger. For others
    (the embedded CLI) it is recovered from the started workload: the keys
    whose value differs from the playbook's default. A templated default is
    left out, since it was rendered at start and renders again on a re-run.
    """
    started = started_payload(execution)
    trigger = started.get("trigger") or {}
    if "input" in trigger:
        return dict(resolved(trigger["input"]) or {})

    defaults = (execution.playbook.parsed or {}).get("workload") or {}
    payload = {}
    for name, value in (started.get("workload") or {}).items():
        value = resolved(value)
        if name not in defaults:
            payload[name] = value
        elif (
            not templating.referenced_names(defaults[name]) and value != defaults[name]
        ):
            payload[name] = value
    return payload


def descendants(execution_id: str) -> list[str]:
    """Ids of the run's children, their children and so on, breadth first."""
    found: list[str] = []
    frontier = [execution_id]
    while frontier:
        frontier = list(
            Execution.objects.filter(parent_id__in=frontier)
            .order_by("id")
            .values_list("id", flat=True)
        )
        found += frontier
    return found


# -- the run page ---------------------------------------------------------------

# A timeline draws at most this many chunks of loop iterations.
TIMELINE_CHUNKS = 400
# A step page shows the captured output of at most this many of its commands.
STEP_LOGS = 20


def step_rows(execution_id: str) -> list[dict[str, Any]]:
    """The run's step_run rows, in the order the steps were first reached."""
    return list(
        StepRun.objects.filter(execution_id=execution_id)
        .order_by("id")
        .values(
            "step",
            "status",
            "runs",
            "started_at",
            "ended_at",
            "iterations",
            "failed_iterations",
            "error",
        )
    )


def chunk_spans(execution_id: str) -> dict[str, list[dict[str, Any]]]:
    """Each loop step's chunks of iterations as timeline spans, from the
    timing fields of their ``loop.chunk.done`` events (nothing is folded):
    a chunk ended at its event and took ``ms_per_iter`` per iteration."""
    rows = (
        Event.objects.filter(execution_id=execution_id, kind="loop.chunk.done")
        .order_by("seq")
        .values_list(
            "step",
            "ts",
            "status",
            "payload__from",
            "payload__to",
            "payload__ms_per_iter",
        )[:TIMELINE_CHUNKS]
    )
    spans: dict[str, list[dict[str, Any]]] = {}
    for step, ended, status, first, stop, ms_per_iter in rows:
        took = timedelta(milliseconds=float(ms_per_iter or 0) * (stop - first))
        spans.setdefault(step, []).append(
            {
                "label": f"iterations {first}–{stop - 1}",
                "status": "failed" if status == "error" else "completed",
                "start": ended - took,
                "end": ended,
            }
        )
    return spans


def step_result(execution_id: str, step: str) -> Any:
    """A step's result as the run holds it (its variable), resolved."""
    found = (
        Execution.objects.filter(id=execution_id)
        .annotate(value=KeyTransform(step, KeyTransform("vars", "state")))
        .values_list("value", flat=True)
        .first()
    )
    return resolved(found)


def step_logs(execution_id: str, step: str) -> list[dict[str, Any]]:
    """The captured output of the step's latest commands, oldest first."""
    rows = (
        Event.objects.filter(
            execution_id=execution_id, step=step, payload__has_key="log_ref"
        )
        .order_by("-seq")
        .values("seq", "ts", "command_id", "payload__log_ref")[:STEP_LOGS]
    )
    rows = list(reversed(rows))
    shas = [row["payload__log_ref"]["$ref"].split(":", 1)[1] for row in rows]
    texts = dict(Blob.objects.filter(sha256__in=shas).values_list("sha256", "data"))
    return [
        {**row, "text": bytes(texts.get(sha, b"")).decode(errors="replace")}
        for row, sha in zip(rows, shas, strict=True)
    ]


def status_counts(
    rows: QuerySet[Execution], since: datetime, cap: int
) -> dict[str, int]:
    """``rows`` started since ``since`` per status, each count stopping at
    ``cap`` + 1 (shown as "cap+"), so a long history costs no full count."""
    return {
        status: rows.filter(status=status, created_at__gte=since)
        .order_by()[: cap + 1]
        .count()
        for status in Status.values
    }
