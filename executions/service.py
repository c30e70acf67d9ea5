"""The only writer of the engine tables.

Every change to a run goes through one transaction here: lock the execution
row, let the pure engine decide, append its events, and update the
projections (``Execution.state``, ``Command``, ``StepRun``) from those same
events. Claims and heartbeats touch only ``Command`` rows and write no
events. Both run modes call these functions: embedded mode from its single
writer thread, distributed mode from the worker protocol views.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from datetime import timedelta
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from catalog import services as catalog
from credentials.store import credential_for_playbook
from executions import measures, rawsql
from executions.engine.decide import Decision, Engine
from executions.engine.state import initial_state
from executions.engine.values import Values, dumps, loads
from noetl_site import logs, metrics
from executions.models import (
    Blob,
    Command,
    CommandState,
    Event,
    Execution,
    Inbox,
    Status,
    StepRun,
)

log = logging.getLogger("noetl.executions.service")


def lease_ttl_s() -> float:
    from django.conf import settings

    return settings.NOETL_LEASE_TTL_S
TERMINAL_EVENTS = {"workflow.completed", "workflow.failed", "execution.cancelled"}


class Stale(Exception):
    """A report or heartbeat for a delivery that is no longer current (409)."""


class Gone(Exception):
    """The run already ended; nothing more is accepted for it (410)."""


def new_execution_id() -> str:
    """A UUIDv7: time-ordered, generated here, never by the database."""
    ms = int(timezone.now().timestamp() * 1000)
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class DbBlobStore:
    def put_blob(self, sha256: str, data: bytes) -> None:
        Blob.objects.bulk_create(
            [Blob(sha256=sha256, data=data, size=len(data))], ignore_conflicts=True
        )

    def get_blob(self, sha256: str) -> bytes:
        return bytes(Blob.objects.values_list("data", flat=True).get(sha256=sha256))


_values = Values(DbBlobStore())

# Called after each commit that appended events: (execution_id, events,
# status, ids of the commands dispatched). Embedded mode rings its doorbell
# and prints progress; distributed mode publishes NATS pointers.
listeners: list[Any] = []


def _announce(execution_id: str, events: list[dict[str, Any]], status: str,
              dispatched: list[str]) -> None:
    for listener in list(listeners):
        listener(execution_id, events, status, dispatched)


def values() -> Values:
    return _values


# -- starting ---------------------------------------------------------------


def start_execution(
    path: str,
    version: int | str | None = None,
    payload: dict[str, Any] | None = None,
    *,
    trigger: dict[str, Any] | None = None,
    parent: Execution | None = None,
    parent_command: str = "",
    execution_id: str | None = None,
    owner: str = "",
) -> tuple[Execution, list[str]]:
    """Create a run and its first commands. Returns (execution, command ids).

    ``owner`` names the user who started the root run ('' for the system:
    a schedule, the local CLI); its sub-playbook runs act with that user's
    permissions."""
    playbook_version = catalog.resolve(path, version)
    with transaction.atomic():
        execution = Execution.objects.create(
            id=execution_id or new_execution_id(),
            playbook=playbook_version,
            path=playbook_version.path,
            version=playbook_version.version,
            parent=parent,
            parent_command=parent_command,
            owner=owner,
        )
        StepRun.objects.bulk_create([
            StepRun(execution=execution, step=name)
            for name in _engine(execution).graph.steps])
        playbook_ref = {"path": playbook_version.path,
                        "version": playbook_version.version,
                        "catalog_id": str(playbook_version.id),
                        "digest": playbook_version.digest}
        engine, decision = _decide(execution, "start", lambda engine: engine.start(
            payload or {}, playbook_ref=playbook_ref, trigger=trigger,
            env=_template_env()))
        dispatched = _persist(execution, engine, decision)
    return execution, dispatched


def _template_env() -> dict[str, Any]:
    import os

    from django.conf import settings

    return {name: os.environ[name] for name in settings.NOETL_TEMPLATE_ENV if name in os.environ}


def _engine(execution: Execution) -> Engine:
    parsed, graph = catalog.compiled(execution.playbook_id, "")
    return Engine(parsed, execution.state or initial_state(), _values,
                  execution_id=execution.id, catalog_id=str(execution.playbook_id),
                  graph=graph)


def _decide(execution: Execution, what: str,
            act: Callable[[Engine], Decision]) -> tuple[Engine, Decision]:
    """Feed one input to the run's engine, under the caller's lock. If the
    engine raises (a defect, never the playbook's fault: those are failed
    steps), the run ends failed with the reason; left alone it would raise
    again on every retry and hold its commands, and the duties, forever."""
    engine = _engine(execution)
    try:
        return engine, act(engine)
    except DatabaseError:
        raise
    except Exception as exc:
        log.exception("the engine failed on %s of run %s", what, execution.id)
        # The failed call may have changed the state in place: start again
        # from what is stored.
        execution.state = Execution.objects.values_list("state", flat=True).get(
            id=execution.id)
        engine = _engine(execution)
        message = f"internal error on {what}: {type(exc).__name__}: {exc}"
        return engine, engine.on_fault(message[:2000])


# -- persisting a decision ----------------------------------------------------


def _persist(execution: Execution, engine: Engine, decision: Decision,
             worker_id: str = "", reported: str = "") -> list[str]:
    """Append the decision's events and bring every projection up to date.
    ``worker_id`` ran the command ``reported``; its events name the worker."""
    seq = execution.next_seq
    rows = []
    for ev in decision.events:
        if ev["kind"] == "loop.done":
            _time_loop(execution, ev, decision.events)
        command_id = ev.get("command_id") or ""
        error = ev.get("error")
        rows.append({
            "execution": execution.id, "seq": seq, "kind": ev["kind"],
            "step": ev.get("step") or "", "command_id": command_id,
            "status": ev.get("status") or "", "delivery": ev.get("delivery"),
            "worker_id": worker_id if command_id and command_id == reported else "",
            "duration_ms": ev.get("duration_ms"),
            "payload": ev["payload"], "error": error and measures.error_fields(error),
            "started_at": measures.timestamp(ev.get("started_at")),
            "ended_at": measures.timestamp(ev.get("ended_at")),
            "pool": ev.get("pool") or "", "attempt": ev.get("attempt"),
            "tool": ev.get("tool") or "", "input_bytes": ev.get("input_bytes"),
            "result_bytes": ev.get("result_bytes"),
        })
        seq += 1
    rawsql.insert(Event, rows)
    _project_commands(execution, decision)
    _project_step_runs(execution, decision.events)
    state = engine.state
    execution.state = state
    execution.next_seq = seq
    execution.status = state["status"]
    fields = ["state", "next_seq", "status"]
    terminal = next((e for e in decision.events if e["kind"] in TERMINAL_EVENTS), None)
    if terminal is not None:
        execution.result = terminal["payload"].get("result")
        execution.error = terminal["payload"].get("error") or state.get("error")
        execution.ended_at = timezone.now()
        fields += ["result", "error", "ended_at"]
        Command.objects.filter(execution=execution).exclude(
            state__in=[CommandState.DONE, CommandState.CANCELLED]
        ).update(state=CommandState.CANCELLED, cancel_requested=True)
        # Steps still running when the run ended never finish: their rows
        # say so, or the run page would show them running forever.
        rawsql.update(StepRun, {"status": "cancelled", "ended_at": execution.ended_at},
                      execution=execution.id, status="running")
        _notify_parent(execution)
        for child in Execution.objects.filter(parent=execution, status=Status.RUNNING):
            _target(child.id)
            Inbox.objects.create(execution=child, kind="cancel",
                                 payload={"reason": f"parent run {terminal['payload']['status']}"})
    rawsql.update(Execution, {f: getattr(execution, f) for f in fields}, id=execution.id)
    dispatched = [c["id"] for c in decision.commands]
    for child in decision.children:
        dispatched += _start_child(execution, child)
    first = execution.next_seq - len(decision.events)
    numbered = [{**ev, "seq": first + i} for i, ev in enumerate(decision.events)]
    # A requeued command is dispatched again, under its next delivery.
    announced = dispatched + [ev["command_id"] for ev in decision.events
                              if ev["kind"] == "command.requeued"]
    path = execution.path

    def committed() -> None:
        metrics.observe_events(path, numbered)
        _announce(execution.id, numbered, execution.status, announced)

    transaction.on_commit(committed)
    return dispatched


def _time_loop(execution: Execution, ev: dict[str, Any],
               events: list[dict[str, Any]]) -> None:
    """A loop's end spans from its step's start (one read per loop epoch;
    none for an empty loop, which starts and ends in one decision)."""
    ended = timezone.now()
    if any(e["kind"] == "loop.started" and e["step"] == ev["step"] for e in events):
        started = ended
    else:
        started = StepRun.objects.filter(
            execution=execution, step=ev["step"]).values_list(
            "started_at", flat=True).first()
    if started is None:
        return
    ev.update(started_at=started.timestamp(), ended_at=ended.timestamp(),
              duration_ms=round((ended - started).total_seconds() * 1000, 3))


def _project_commands(execution: Execution, decision: Decision) -> None:
    now = timezone.now()
    rawsql.insert(Command, [
        {
            "id": c["id"], "execution": execution.id, "step": c["step"],
            "epoch": c["epoch"], "iter_from": (c["iter"] or [None, None])[0],
            "iter_to": (c["iter"] or [None, None])[1], "pool": c["pool"],
            "payload": c["payload"],
            "not_before": now + timedelta(seconds=c["delay_s"]) if c.get("delay_s") else None,
        }
        for c in decision.commands
    ])
    finished = []
    for ev in decision.events:
        kind = ev["kind"]
        if kind in ("call.done", "call.error", "loop.chunk.done") and ev.get("command_id"):
            finished.append(ev["command_id"])
        elif kind == "command.issued" and ev["payload"].get("replaces"):
            finished.append(ev["payload"]["replaces"])
        elif kind == "command.waiting":
            Command.objects.filter(id=ev["command_id"]).update(
                state=CommandState.WAITING, lease_owner="", lease_expires_at=None)
        elif kind == "command.requeued":
            Command.objects.filter(id=ev["command_id"]).update(
                state=CommandState.QUEUED, delivery=F("delivery") + 1, lease_owner="",
                lease_expires_at=None, claim_id="")
    if finished:
        rawsql.update(Command, {"state": CommandState.DONE, "lease_expires_at": None},
                      id=finished)


def _project_step_runs(execution: Execution, events: list[dict[str, Any]]) -> None:
    """One UPDATE per step the events touched (rows exist from the start)."""
    touched: dict[str, dict[str, Any]] = {}
    now = timezone.now()
    for ev in events:
        step = ev.get("step")
        if not step or ev["kind"] in TERMINAL_EVENTS or ev["kind"] == "warning":
            continue
        change = touched.setdefault(step, {})
        _step_change(change, ev, now)
    for step, change in touched.items():
        if not change:
            continue
        counters = {key: change.pop(key) for key in _COUNTERS if key in change}
        updates = {key: rawsql.Add(value) for key, value in counters.items()}
        if not rawsql.update(StepRun, {**updates, **change}, execution=execution.id,
                             step=step):
            # A run started before its rows were made at start.
            StepRun.objects.create(execution=execution, step=step, **counters, **change)


_COUNTERS = ("runs", "iterations", "failed_iterations")


def _step_change(change: dict[str, Any], ev: dict[str, Any], now: Any) -> None:
    """Fold one event into the pending change of its step's row."""
    kind = ev["kind"]
    payload = ev["payload"]
    if (kind == "command.issued" and payload.get("reason") == "route") or \
            kind == "loop.started" or payload.get("activation"):
        change["runs"] = change.get("runs", 0) + 1
        change.update(status="running", started_at=now, ended_at=None)
    if kind == "call.done":
        change.update(status="completed", ended_at=now, error=None)
    elif kind == "call.error":
        change.update(status="failed", ended_at=now, error=ev.get("error"))
    elif kind == "loop.chunk.done":
        counts = payload["counts"]
        change["iterations"] = change.get("iterations", 0) + payload["to"] - payload["from"]
        change["failed_iterations"] = change.get("failed_iterations", 0) + counts["failed"]
    elif kind == "loop.done":
        status = "failed" if payload["stats"]["failed"] else "completed"
        change.update(status=status, ended_at=now, error=ev.get("error"))
    elif kind == "step.skipped":
        change.update(status="skipped", ended_at=now)


class _Pending(threading.local):
    """Runs given new inbox rows by this thread, to settle after commit."""

    def __init__(self) -> None:
        self.targets: list[str] = []


_pending = _Pending()


def _target(execution_id: str) -> None:
    _pending.targets.append(execution_id)


def drain_inbox_targets() -> list[str]:
    targets = list(dict.fromkeys(_pending.targets))
    _pending.targets.clear()
    return targets


def settle() -> None:
    """Apply the inbox rows this thread's last transactions created (a child
    that ended resumes its parent; a cancelled parent cancels its children).
    Every caller of the writing functions calls this after them."""
    targets = drain_inbox_targets()
    while targets:
        for execution_id in targets:
            process_inbox(execution_id)
        targets = drain_inbox_targets()


def _notify_parent(execution: Execution) -> None:
    if not execution.parent_id or not execution.parent_command:
        return
    _target(execution.parent_id)
    Inbox.objects.create(execution_id=execution.parent_id, kind="child_done", payload={
        "command_id": execution.parent_command,
        "child": {"execution_id": execution.id, "status": execution.status,
                  "result": execution.result, "error": execution.error,
                  "path": execution.path},
    })


class ChildRefused(Exception):
    """The root run's user may not run the sub-playbook."""


def _check_child_allowed(parent: Execution, path: str) -> None:
    if not parent.owner:
        return
    from django.contrib.auth import get_user_model

    from accounts import audit
    from noetl_site import access

    user = get_user_model().objects.filter(username=parent.owner).first()
    if user is None or not access.can_execute(user, path):
        audit.record(
            "subplaybook.refused",
            path,
            actor=f"user:{parent.owner}",
            allowed=False,
            parent=parent.id,
        )
        raise ChildRefused(
            f"user {parent.owner} (who started the root run) may not execute "
            f"sub-playbook {path}"
        )


def _start_child(parent: Execution, spec: dict[str, Any]) -> list[str]:
    """Start a sub-playbook run; creating a new run needs no other lock."""
    try:
        _check_child_allowed(parent, spec["path"] or "")
        child, dispatched = start_execution(
            spec["path"] or "", spec.get("version"), spec.get("payload") or {},
            trigger={"kind": "parent", "parent_execution_id": parent.id},
            parent=parent, parent_command=spec.get("parent_command") or "",
            execution_id=spec["execution_id"],
            owner=parent.owner,
        )
    except (catalog.PlaybookNotFound, ChildRefused) as exc:
        kind = "permission" if isinstance(exc, ChildRefused) else "playbook"
        if spec.get("parent_command"):
            _target(parent.id)
            Inbox.objects.create(execution=parent, kind="child_done", payload={
                "command_id": spec["parent_command"],
                "child": {"execution_id": spec["execution_id"], "status": "failed",
                          "result": None, "path": spec["path"],
                          "error": {"kind": kind, "message": str(exc)}},
            })
        return []
    return dispatched


# -- inbox --------------------------------------------------------------------


def process_inbox(execution_id: str) -> list[str]:
    """Apply pending cross-execution effects to one run, under its lock."""
    dispatched: list[str] = []
    with transaction.atomic():
        execution = _lock(execution_id)
        items = list(Inbox.objects.filter(execution=execution).order_by("id"))
        if not items:
            return []
        engine, decision = _decide(
            execution, "cross-run messages", lambda engine: _apply_inbox(engine, items))
        Inbox.objects.filter(id__in=[i.id for i in items]).delete()
        dispatched = _persist(execution, engine, decision)
    return dispatched


def _apply_inbox(engine: Engine, items: list[Inbox]) -> Decision:
    for item in items:
        if not engine.running:
            break
        if item.kind == "child_done":
            engine.on_child_done(item.payload["command_id"], item.payload["child"])
        elif item.kind == "cancel":
            engine.on_cancel(item.payload.get("reason", "cancelled"))
    return engine.decision


def pending_inbox() -> list[str]:
    return list(Inbox.objects.values_list("execution_id", flat=True).distinct()[:100])


def _lock(execution_id: str) -> Execution:
    return Execution.objects.select_for_update().get(id=execution_id)


# -- the worker protocol --------------------------------------------------------


def claim(worker_id: str, *, pool: str = "default", limit: int = 1,
          command_ids: list[str] | None = None, claim_id: str = "",
          ttl_s: float | None = None) -> list[dict[str, Any]]:
    """Grant leases on queued commands and return what their workers need.

    A repeated claim (same worker and ``claim_id``, say after a lost
    response) returns the grant it made the first time. Only commands of
    the worker's pool are granted, by id or next in line."""
    with transaction.atomic():
        return _grant(worker_id, pool, limit, command_ids, claim_id, ttl_s)


def _grant(worker_id: str, pool: str, limit: int, command_ids: list[str] | None,
           claim_id: str, ttl_s: float | None,
           fresh: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``claim`` inside the caller's transaction. ``fresh`` holds the tasks
    of commands this transaction created, which need not be read back."""
    if claim_id and not fresh:
        # A repeated claim (a fresh report made no grant before) gets its
        # first grant back.
        granted = list(Command.objects.filter(
            lease_owner=worker_id, claim_id=claim_id, state=CommandState.RUNNING
        ).values_list("id", flat=True))
        if granted:
            return _tasks(granted, worker_id, claim_id)
    # The grant is found again by this token, so a claim without an id of
    # its own never mistakes a lease the worker already held for a new one.
    token = claim_id or f"c:{uuid.uuid4().hex}"
    if command_ids is not None:
        ids = list(command_ids)[:limit]
    else:
        queued = Command.objects.filter(state=CommandState.QUEUED, pool=pool).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=Now()))
        ids = list(queued.order_by("created_at").select_for_update(skip_locked=True)
                   .values_list("id", flat=True)[:limit])
    if not ids:
        return []
    granted = rawsql.grant_leases(ids, pool, worker_id, token, ttl_s or lease_ttl_s())
    if granted:
        count = metrics.COMMANDS_CLAIMED.labels(pool).inc
        transaction.on_commit(lambda: count(granted))
    if fresh and granted == len(ids) and all(i in fresh for i in ids):
        return [fresh[i] for i in ids]
    return _tasks(ids, worker_id, token) if granted else []


def _tasks(ids: list[str], worker_id: str, token: str) -> list[dict[str, Any]]:
    """What the worker needs for the commands it was just granted. Reads the
    few columns a task uses, never the run's whole state."""
    commands = (
        Command.objects.filter(id__in=ids, lease_owner=worker_id, claim_id=token,
                               state=CommandState.RUNNING)
        .values("id", "delivery", "step", "payload", "execution_id",
                "execution__playbook_id", "execution__path")
        .annotate(env=F("execution__state__env"))
        .order_by("created_at")
    )
    return [
        _task(row["id"], row["delivery"], row["step"], row["payload"],
              Execution(id=row["execution_id"], playbook_id=row["execution__playbook_id"],
                        path=row["execution__path"]), row["env"])
        for row in commands
    ]


def _task(command_id: str, delivery: int, step_name: str, payload: dict[str, Any],
          execution: Execution, env: dict[str, Any] | None) -> dict[str, Any]:
    parsed, graph = catalog.compiled(execution.playbook_id, "")
    step = graph.steps[step_name]
    workbook = {}
    for task in step["tasks"]:
        if task["kind"] == "workbook":
            name = task["config"].get("task") or task["config"].get("name")
            if name in parsed["workbook"]:
                workbook[name] = parsed["workbook"][name]
    return {
        "command_id": command_id,
        "delivery": delivery,
        "execution_id": execution.id,
        "catalog_id": str(execution.playbook_id),
        "path": execution.path,
        "step_def": step,
        "step_names": list(graph.steps),
        "workbook": workbook,
        "scope": payload.get("scope") or {},
        "iterations": payload.get("iterations"),
        "args": payload.get("args") or {},
        "resume": payload.get("resume"),
        "env": env or {},
        **({"keychain": parsed["keychain"]} if parsed.get("keychain") else {}),
    }


def report(data: dict[str, Any], worker_id: str = "") -> list[str]:
    """Fold a worker's final report for a command. Idempotent per delivery.
    Returns the commands it dispatched."""
    with transaction.atomic():
        return _fold_report(data, worker_id)


def report_and_claim(data: dict[str, Any], worker_id: str, *, pool: str, limit: int,
                     claim_id: str = "") -> tuple[list[str], list[dict[str, Any]]]:
    """A report, and in the same commit a grant to the reporting worker of the
    command the report caused (or, if it caused none, the next in line), so a
    chain of steps costs one request and one commit per step. Returns
    (dispatched command ids, granted tasks)."""
    fresh: dict[str, dict[str, Any]] = {}
    with transaction.atomic():
        dispatched = _fold_report(data, worker_id, fresh)
        tasks = _grant(worker_id, pool, limit, dispatched or None, claim_id, None, fresh)
    return dispatched, tasks


def _fold_report(data: dict[str, Any], worker_id: str,
                 fresh: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """``report`` inside the caller's transaction; with ``fresh``, also the
    tasks of the commands it created, by id."""
    command_id = data["command_id"]
    # Command ids start with their execution's id (see the engine), so
    # the run is locked first and the command read once, under the lock:
    # every writer of its state or delivery takes the same lock.
    row = rawsql.lock_for_report(command_id.split("/", 1)[0], command_id)
    if row is None or row["command_state"] is None:
        raise Stale(f"unknown command {command_id}")
    current = {"state": row.pop("command_state"),
               "delivery": row.pop("command_delivery")}
    execution = Execution(id=command_id.split("/", 1)[0], **row)
    if current["state"] == CommandState.DONE:
        return []  # a duplicate of a report already folded
    if execution.status != Status.RUNNING or current["state"] == CommandState.CANCELLED:
        raise Gone(f"execution {execution.id} is {execution.status}")
    if current["delivery"] != int(data.get("delivery", current["delivery"])) or \
            current["state"] != CommandState.RUNNING:
        raise Stale(f"command {command_id} delivery {data.get('delivery')} is stale")
    log_text = data.pop("log", None)
    if log_text:
        data["log_ref"] = _store_log(log_text, execution)
    engine, decision = _decide(execution, f"the report of {command_id}",
                               lambda engine: engine.on_report(data))
    dispatched = _persist(execution, engine, decision, worker_id, command_id)
    if fresh is not None:
        env = (execution.state or {}).get("env")
        for c in decision.commands:
            fresh[c["id"]] = _task(c["id"], 1, c["step"], c["payload"], execution, env)
    return dispatched


def _store_log(text: str, execution: Execution) -> dict[str, Any]:
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    DbBlobStore().put_blob(sha, data)
    return {"$ref": f"sha256:{sha}", "size": len(data), "kind": "log"}


def heartbeat(worker_id: str, held: list[dict[str, Any]],
              ttl_s: float | None = None) -> dict[str, Any]:
    """Extend every lease a worker holds; tell it what was cancelled or lost."""
    expiry = ExpressionWrapper(Now() + timedelta(seconds=ttl_s or lease_ttl_s()),
                               output_field=DateTimeField())
    pairs = {h["command_id"]: int(h["delivery"]) for h in held}
    rows = Command.objects.filter(id__in=list(pairs)).values(
        "id", "delivery", "state", "lease_owner", "cancel_requested")
    keep, cancel, lost = [], [], []
    for row in rows:
        if row["cancel_requested"] or row["state"] == CommandState.CANCELLED:
            cancel.append(row["id"])
        elif row["state"] != CommandState.RUNNING or row["delivery"] != pairs[row["id"]] \
                or row["lease_owner"] != worker_id:
            lost.append(row["id"])
        else:
            keep.append(row["id"])
    lost += [cid for cid in pairs if cid not in {r["id"] for r in rows}]
    if keep:
        Command.objects.filter(id__in=keep, lease_owner=worker_id).update(
            lease_expires_at=expiry)
    return {"cancel": cancel, "lost": lost}


def expire_leases(limit: int = 100) -> list[str]:
    """Requeue commands whose lease ran out (their worker died or stalled)."""
    dispatched: list[str] = []
    expired = list(Command.objects.filter(
        state=CommandState.RUNNING, lease_expires_at__lt=Now()).values_list(
        "id", "execution_id")[:limit])
    for command_id, execution_id in expired:
        with logs.bound(execution_id=execution_id, command_id=command_id), \
                transaction.atomic():
            execution = _lock(execution_id)
            current = Command.objects.select_for_update().filter(
                id=command_id, state=CommandState.RUNNING, lease_expires_at__lt=Now()
            ).first()
            if current is None:
                continue  # renewed, reported or expired by another copy meanwhile
            reason = f"lease of {current.lease_owner} expired"
            engine, decision = _decide(execution, f"the lost lease of {command_id}",
                                       lambda engine: engine.on_lost(command_id, reason))
            dispatched += _persist(execution, engine, decision)
            dispatched.append(command_id)
            log.warning("lease of %s expired; the command is requeued or failed",
                        current.lease_owner)
            transaction.on_commit(metrics.LEASE_EXPIRIES.inc)
    return dispatched


def duty_round(repair_after_s: float | None = None) -> list[str]:
    """One pass of the time-driven duties (DESIGN-NOTES R13): apply inbox
    rows, requeue commands whose lease expired and, with ``repair_after_s``,
    pick queued commands nobody claimed for that long. Safe to run in several
    processes at once. Returns the commands whose pointers to republish
    (those the commits announced are published by the listeners)."""
    for execution_id in pending_inbox():
        process_inbox(execution_id)
    expired = expire_leases()
    settle()
    if repair_after_s is None:
        return expired
    return expired + stale_queued(repair_after_s)


def release(command_id: str, delivery: int, worker_id: str,
            reason: str = "handed back by its worker") -> list[str]:
    """A worker gives back a command it holds but will not finish (it is
    shutting down). It runs again elsewhere at ``delivery + 1``."""
    with transaction.atomic():
        row = Command.objects.filter(id=command_id).values("execution_id").first()
        if row is None:
            raise Stale(f"unknown command {command_id}")
        execution = _lock(row["execution_id"])
        current = Command.objects.select_for_update().get(id=command_id)
        if current.state != CommandState.RUNNING or current.delivery != delivery \
                or current.lease_owner != worker_id:
            raise Stale(f"command {command_id} delivery {delivery} is not held by {worker_id}")
        if execution.status != Status.RUNNING:
            raise Gone(f"execution {execution.id} is {execution.status}")
        engine, decision = _decide(
            execution, f"the release of {command_id}",
            lambda engine: engine.on_lost(command_id, f"{reason} ({worker_id})"))
        return _persist(execution, engine, decision) + [command_id]


def stale_queued(older_than_s: float, limit: int = 200) -> list[str]:
    """Queued commands nobody claimed for a while: their pointer may be lost.
    Bumps their publish generation (so JetStream's dedupe does not swallow
    the new pointer) and returns them for republishing. Several scheduler
    copies share this work through SKIP LOCKED."""
    cutoff = ExpressionWrapper(Now() - timedelta(seconds=older_than_s),
                               output_field=DateTimeField())
    with transaction.atomic():
        ids = list(Command.objects.filter(
            state=CommandState.QUEUED, updated_at__lt=cutoff
        ).filter(Q(not_before__isnull=True) | Q(not_before__lte=Now()))
            .select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
        if ids:
            Command.objects.filter(id__in=ids).update(
                publish_gen=F("publish_gen") + 1, updated_at=Now())
    metrics.REPUBLISHES.inc(len(ids))
    return ids


def cancel(execution_id: str, reason: str = "cancelled by user", by: str = "") -> bool:
    with transaction.atomic():
        execution = _lock(execution_id)
        if execution.status != Status.RUNNING:
            return False
        engine, decision = _decide(execution, "cancel",
                                   lambda engine: engine.on_cancel(reason, by or None))
        _persist(execution, engine, decision)
    return True


def credential_for(name: str, command_id: str, worker_id: str) -> dict[str, Any]:
    """A credential's fields for a step of ``command_id``: the scope is
    checked against that command's playbook (a sub-playbook's own path)."""
    execution_id, path = (
        Command.objects.filter(id=command_id)
        .values_list("execution_id", "execution__path")
        .first()
    ) or ("", "")
    return credential_for_playbook(
        name, path, actor=f"worker:{worker_id}", execution_id=execution_id
    )


def put_blob(sha256: str, data: bytes) -> None:
    DbBlobStore().put_blob(sha256, data)


def get_blob(sha256: str) -> bytes:
    return DbBlobStore().get_blob(sha256)


def roundtrip(value: Any) -> Any:
    return loads(dumps(value))
