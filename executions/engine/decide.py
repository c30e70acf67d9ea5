"""The engine's decisions: given the state and one input, which events follow.

Inputs are a run start, a worker's report for a command, a child run's end,
a lost lease and a cancel. Each entry point returns a ``Decision``: the events
to append (already applied to the state it was given), the commands to
create (with what their workers need), and the child runs to start. No I/O
happens here besides reading and writing immutable blobs through ``Values``;
templates are rendered with the functions of ``executions.templating``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from executions import templating
from executions.engine.graph import Graph, build_graph
from executions.engine.scope import Scope, base_names, needed_names, split_set_key
from executions.engine.state import apply
from executions.engine.values import Values
from noetl_site.text import count

ENGINE_VERSION = "noetl-django/1"
DEFAULT_MAX_IN_FLIGHT = 16
MAX_CHUNK = 256
# A loop's state keeps one reference per finished chunk; when it holds this
# many, the chunk done next folds them into one blob, so the run's state row
# (rewritten by every report) stays small and the bytes written per chunk
# flat, however many chunks a loop has (DESIGN-NOTES R3, R4).
CHUNK_REFS_IN_STATE = 32
TARGET_CHUNK_MS = 150.0
MAX_LOST_DELIVERIES = 3


@dataclass
class Decision:
    events: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)


def event(kind: str, step: str | None = None, command_id: str | None = None,
          payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "step": step, "command_id": command_id,
            "payload": payload or {}, **fields}


class Engine:
    """Decisions for one execution of one playbook version."""

    def __init__(
        self,
        playbook: dict[str, Any],
        state: dict[str, Any],
        values: Values,
        *,
        execution_id: str,
        catalog_id: str = "",
        graph: Graph | None = None,
    ) -> None:
        self.playbook = playbook
        self.graph = graph or build_graph(playbook)
        self.state = state
        self.values = values
        self.execution_id = execution_id
        self.catalog_id = catalog_id
        self.decision = Decision()

    # -- emitting ---------------------------------------------------------

    def emit(self, ev: dict[str, Any]) -> dict[str, Any]:
        self.state = apply(self.state, ev)
        self.decision.events.append(ev)
        return ev

    def warn(self, message: str, step: str | None = None) -> None:
        self.emit(event("warning", step, payload={"message": message}))

    @property
    def running(self) -> bool:
        return self.state["status"] == "running"

    def scope(self) -> Scope:
        return Scope(
            self.state["vars"],
            self.values.resolve,
            step_names=self.graph.steps,
            base=base_names(self.execution_id, self.catalog_id, self.state["env"]),
        )

    # -- entry points -----------------------------------------------------

    def start(self, payload: dict[str, Any], *, playbook_ref: dict[str, Any],
              trigger: dict[str, Any] | None = None,
              env: dict[str, Any] | None = None) -> Decision:
        payload = dict(payload or {})
        workload, warnings = self._initial_workload(payload, env or {})
        entry = self.playbook["entry_step"]
        self.emit(event("execution.started", payload={
            "playbook": playbook_ref,
            "engine_version": ENGINE_VERSION,
            "workload": self.values.externalize_each(workload),
            "env": env or {},
            "trigger": trigger or {"kind": "api"},
            "entry_step": entry,
        }))
        for message in warnings:
            self.warn(message)
        self.activate(entry, {}, {})
        self.settle()
        return self.decision

    def on_report(self, report: dict[str, Any]) -> Decision:
        command_id = report["command_id"]
        command = self.state["commands"].get(command_id)
        if not self.running or command is None or command["state"] != "queued":
            return self.decision
        step = self.graph.steps[command["step"]]
        suspend = report.get("suspend")
        if suspend:
            self._suspend(command_id, command, suspend)
        elif "iterations" in report:
            self._chunk_done(command_id, command, step, report)
        else:
            self._call_done(command_id, command, step, report)
        self.settle()
        return self.decision

    def on_child_done(self, command_id: str, child: dict[str, Any]) -> Decision:
        """A child run ended: resume the waiting command with its outcome."""
        command = self.state["commands"].get(command_id)
        if not self.running or command is None or command["state"] != "waiting":
            return self.decision
        resume = dict(command.get("resume") or {})
        status = child["status"]
        result = self.values.resolve(child.get("result"))
        data = dict(result) if isinstance(result, dict) else {"result": result}
        data.update({"execution_id": child["execution_id"], "status": status})
        if status == "completed":
            resume["outcome"] = {"status": "ok", "data": data}
        else:
            message = (child.get("error") or {}).get("message") or f"child {status}"
            resume["outcome"] = {"status": "error", "data": data, "error": {
                "kind": "playbook", "retryable": False,
                "message": f"sub-playbook {child.get('path', '')} {status}: {message}",
            }}
        self._continue(command_id, command, resume)
        self.settle()
        return self.decision

    def on_lost(self, command_id: str, reason: str) -> Decision:
        """A lease expired or a worker went away: requeue, or fail after 3."""
        command = self.state["commands"].get(command_id)
        if not self.running or command is None or command["state"] != "queued":
            return self.decision
        lost = command.get("lost", 0) + 1
        if lost < MAX_LOST_DELIVERIES:
            self.emit(event("command.requeued", command["step"], command_id,
                            {"reason": reason, "lost": lost}))
            return self.decision
        error = {"kind": "worker_lost", "retryable": False,
                 "message": f"command lost {count(lost, 'time')} ({reason}); giving up"}
        step = self.graph.steps[command["step"]]
        if "iter" in command:
            start, stop = command["iter"]
            iterations = [{"index": i, "status": "error", "error": error}
                          for i in range(start, stop)]
            self._chunk_done(command_id, command, step, {"iterations": iterations})
        else:
            self._call_done(command_id, command, step,
                            {"status": "error", "error": error})
        self.settle()
        return self.decision

    def on_fault(self, message: str) -> Decision:
        """End the run failed because the engine could not process an input.
        A defect would raise again on every retry, so failing the run with
        the reason is the only way it does not stay running forever."""
        if self.running:
            error = {"kind": "internal", "retryable": False, "message": message}
            self.emit(event("workflow.failed", status="failed", payload={
                "status": "failed", "final_step": None, "result": None, "error": error,
            }))
        return self.decision

    def on_cancel(self, reason: str = "cancelled", by: str | None = None) -> Decision:
        if self.running:
            self.emit(event("execution.cancelled", payload={
                "status": "cancelled", "reason": reason, "by": by,
                "error": {"kind": "cancelled", "message": reason},
            }))
        return self.decision

    # -- start ------------------------------------------------------------

    def _initial_workload(self, payload: dict[str, Any], env: dict[str, Any]):
        """Merge the payload over the workload and render templated values."""
        workload = dict(self.playbook.get("workload") or {})
        nested_ctx = payload.pop("ctx", None)
        workload.update(payload)
        if isinstance(nested_ctx, dict):
            workload.update(nested_ctx)
        warnings = [
            f"workload key {name!r} is shadowed by the built-in name of the same name"
            for name in workload
            if name in ("execution_id", "catalog_id", "job", "workload", "ctx",
                        "iter", "output", "event")
        ]
        context = base_names(self.execution_id, self.catalog_id, env)
        context["input"] = payload
        rendered = {}
        start_names = set(context) | {"input"}
        for name, value in workload.items():
            if not templating.referenced_names(value) <= start_names:
                rendered[name] = value
                continue
            try:
                rendered[name] = templating.render_value(value, context)
            except templating.TemplateError as exc:
                warnings.append(f"workload.{name}: {exc}")
                rendered[name] = value
        return rendered, warnings

    # -- activation and routing -------------------------------------------

    def activate(self, name: str, patch: dict[str, Any], args: dict[str, Any],
                 *, final: bool = False) -> None:
        """A token arrives at step ``name``: admit it, then issue its work."""
        step = self.graph.steps[name]
        epoch = self.state["steps"].get(name, {}).get("epoch", 0) + 1
        if step.get("admit") and not self._admitted(step, patch, args):
            self.emit(event("step.skipped", name, payload={"reason": "admission denied",
                                                           "set": patch}))
            return
        base = {"epoch": epoch, "set": patch, "args": args}
        if final:
            base["final"] = True
        if step.get("loop"):
            self._start_loop(step, base)
            return
        command_id = f"{self.execution_id}/{name}/{epoch}/0"
        self.emit(event("command.issued", name, command_id,
                        {**base, "reason": "route"}, **self._measures(step, {})))
        self._queue_command(command_id, step, epoch, args=args)

    def _admitted(self, step: dict[str, Any], patch: dict, args: dict) -> bool:
        rules = step["admit"]
        scope = self.preview(patch)
        context = scope.context([r["when"] for r in rules], {"args": args})
        for rule in rules:
            if rule["when"] is None:
                return bool(rule["allow"])
            matched, problem = templating.render_condition(rule["when"], context)
            if problem:
                self.warn(f"admission rule: {problem}", step["name"])
            if matched:
                return bool(rule["allow"])
        return True

    def preview(self, patch: dict[str, Any]) -> Scope:
        """A scope over the variables as they will be once ``patch`` applies."""
        variables = dict(self.state["vars"])
        variables.update(patch)
        return Scope(variables, self.values.resolve, step_names=self.graph.steps,
                     base=base_names(self.execution_id, self.catalog_id,
                                     self.state["env"]))

    def route(self, name: str, outcome: dict[str, Any], event_name: str,
              result: Any, scope: Scope) -> tuple[list[tuple[dict, dict, dict]], bool, bool]:
        """Evaluate a finished step's arcs. Returns (fired, handled, leaf)."""
        step = self.graph.steps[name]
        arcs = step["next"]["arcs"]
        if not arcs:
            return [], False, True
        extra = {
            "output": templating.wrap_output(outcome),
            "outcome": templating.wrap_output(outcome),
            "error": outcome.get("error"),
            "event": {"name": EventName(event_name), "step": name,
                      "payload": {"result": result, "error": outcome.get("error")}},
            name: templating.wrap_result(result),
        }
        context = scope.context(
            [a["when"] for a in arcs] + [a["set"] for a in arcs] + [a["args"] for a in arcs],
            extra,
        )
        fired: list[tuple[dict, dict, dict]] = []
        handled = False
        inclusive = step["next"]["mode"] == "inclusive"
        for arc in arcs:
            when = arc.get("when")
            if when is None or when is True:
                matched = True
            else:
                matched, problem = templating.render_condition(when, context)
                if problem:
                    self.warn(f"arc to {arc['step']!r}: {problem}", name)
                handled = handled or matched
            if not matched:
                continue
            patch, args = self._render_arc(arc, context, name)
            fired.append((arc, patch, args))
            if not inclusive:
                break
        return fired, handled, False

    def _render_arc(self, arc: dict, context: dict, step: str) -> tuple[dict, dict]:
        patch: dict[str, Any] = {}
        args: dict[str, Any] = {}
        try:
            for key, value in (arc.get("set") or {}).items():
                _, var = split_set_key(key)
                patch[var] = templating.plain(templating.render_value(value, context))
            for key, value in (arc.get("args") or {}).items():
                rendered = templating.plain(templating.render_value(value, context))
                args[key] = rendered
                patch[key] = rendered
        except templating.TemplateError as exc:
            self.warn(f"arc to {arc['step']!r} set: {exc}", step)
        return self.values.externalize_each(patch), args

    def arrive(self, target: str, patch: dict[str, Any], args: dict[str, Any]) -> None:
        if self.graph.is_join(target):
            self.emit(event("join.waiting", target, payload={"set": patch, "args": args}))
        else:
            self.activate(target, patch, args)

    def _finish(self, name: str, ev_kind: str, payload: dict[str, Any],
                outcome: dict[str, Any], result: Any, command_id: str | None,
                error: dict | None = None, scope: Scope | None = None,
                measures: dict[str, Any] | None = None) -> None:
        """Emit a step's end (call.done/call.error/loop.done) and route it."""
        event_name = "loop.done" if ev_kind == "loop.done" else (
            "call.done" if outcome["status"] == "ok" else "call.error")
        if scope is None:
            scope = self.preview(payload.get("ctx_patch") or {})
        fired, handled, leaf = self.route(name, outcome, event_name, result, scope)
        if outcome["status"] != "ok" and ev_kind != "loop.done":
            payload["handled"] = handled
        if ev_kind == "loop.done":
            payload["handled"] = handled
        payload["leaf"] = leaf or not fired
        payload["routed"] = [arc["step"] for arc, _, _ in fired]
        step = self.graph.steps[name]
        if step["next"]["arcs"] and not fired and self.playbook.get("no_next_is_error"):
            payload["unmatched_error"] = {
                "step": name, "kind": "no_next",
                "message": f"step {name!r}: no arc matched and no_next_is_error is set",
            }
        self.emit(event(ev_kind, name, command_id, payload, error=error,
                        status=outcome["status"], **(measures or {})))
        for arc, patch, args in fired:
            self.arrive(arc["step"], patch, args)

    # -- plain steps ------------------------------------------------------

    def _call_done(self, command_id: str, command: dict, step: dict,
                   report: dict[str, Any]) -> None:
        name = step["name"]
        status = "ok" if report.get("status") in ("ok", "break") else "error"
        result = self.values.externalize(report.get("result"))
        error = report.get("error") if status == "error" else None
        outcome = {"status": status, "data": self.values.resolve(result), "error": error}
        payload: dict[str, Any] = {"ctx_patch": self._ctx_patch(report)}
        if report.get("tasks"):
            payload["tasks"] = report["tasks"]
        if report.get("log_ref"):
            payload["log_ref"] = report["log_ref"]
        patch = dict(payload["ctx_patch"])
        if status == "ok":
            payload["result"] = result
            patch[name] = result
            payload["set"] = self._step_set(step, outcome, self.preview(patch))
            patch.update(payload["set"])
        self._finish(name, "call.done" if status == "ok" else "call.error", payload,
                     outcome, outcome["data"], command_id, error, self.preview(patch),
                     self._measures(step, report))

    def _ctx_patch(self, report: dict[str, Any]) -> dict[str, Any]:
        return self.values.externalize_each(report.get("ctx_patch") or {})

    def _step_set(self, step: dict, outcome: dict, scope: Scope) -> dict[str, Any]:
        """Step-level ``set``, rendered after the tool succeeded (DSL 6.2)."""
        if not step.get("set"):
            return {}
        data = outcome["data"]
        extra = {
            "output": templating.wrap_output(outcome),
            "outcome": templating.wrap_output(outcome),
            "event": {"name": "call.done", "step": step["name"]},
            step["name"]: templating.wrap_result(data),
            "result": data,
        }
        context = scope.context([step["set"]], extra)
        patch: dict[str, Any] = {}
        for key, value in step["set"].items():
            _, var = split_set_key(key)
            try:
                patch[var] = templating.plain(templating.render_value(value, context))
            except templating.TemplateError as exc:
                self.warn(f"step set {key}: {exc}", step["name"])
        return self.values.externalize_each(patch)

    # -- loops ------------------------------------------------------------

    def _start_loop(self, step: dict[str, Any], base: dict[str, Any]) -> None:
        name = step["name"]
        loop = step["loop"]
        scope = self.preview(base["set"])
        context = scope.context([loop["in"], loop.get("max_in_flight")],
                                {"args": base["args"]})
        try:
            items = _collection(templating.plain(
                templating.render_value(loop["in"], context, strict=True)))
            max_in_flight = self._max_in_flight(loop, context)
        except (templating.TemplateError, ValueError) as exc:
            error = {"kind": "template", "retryable": False,
                     "message": f"step {name!r} loop: {exc}"}
            outcome = {"status": "error", "data": None, "error": error}
            payload = {**base, "activation": True, "ctx_patch": {}}
            self._finish(name, "call.error", payload, outcome, None, None, error,
                         measures=self._measures(step, {}))
            return
        k = self._first_chunk(step, len(items), max_in_flight)
        self.emit(event("loop.started", name, payload={
            **base,
            "total": len(items),
            "items": self.values.externalize(items, always=len(items) > 64),
            "mode": loop["mode"],
            "max_in_flight": max_in_flight,
            "k": k,
        }))
        if not items:
            self._loop_done(step, self.state["loops"][name])
            return
        self._fill_window(name)

    def _max_in_flight(self, loop: dict[str, Any], context: dict[str, Any]) -> int:
        if loop["mode"] != "parallel":
            return 1
        value = loop.get("max_in_flight")
        if value is None:
            return DEFAULT_MAX_IN_FLIGHT
        rendered = templating.render_value(value, context, strict=True)
        try:
            number = int(rendered)
        except (TypeError, ValueError):
            raise ValueError(f"max_in_flight must be a whole number, got {rendered!r}")
        if number < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {number}")
        return number

    def _first_chunk(self, step: dict, total: int, max_in_flight: int) -> int:
        if _needs_single_iterations(step):
            return 1
        if step["loop"].get("chunk"):
            return max(1, int(step["loop"]["chunk"]))
        return max(1, min(16, math.ceil(total / (2 * max_in_flight))))

    def _fill_window(self, name: str) -> None:
        loop = self.state["loops"][name]
        step = self.graph.steps[name]
        items = None
        while loop["in_flight"] < loop["max_in_flight"] and loop["next"] < loop["total"]:
            if items is None:
                items = self.values.resolve(loop["items"])
            start = loop["next"]
            stop = min(loop["total"], start + loop["k"])
            command_id = f"{self.execution_id}/{name}/{loop['epoch']}/{start}"
            self.emit(event("command.issued", name, command_id, {
                "epoch": loop["epoch"], "reason": "loop", "iter": [start, stop],
            }, **self._measures(step, {})))
            total = loop["total"]
            iterations = [{"index": i, "item": items[i], "first": i == 0,
                           "last": i == total - 1, "total": total}
                          for i in range(start, stop)]
            self._queue_command(command_id, step, loop["epoch"], iterations=iterations)

    def _chunk_done(self, command_id: str, command: dict, step: dict,
                    report: dict[str, Any]) -> None:
        name = step["name"]
        loop = self.state["loops"].get(name)
        if loop is None or loop["epoch"] != command["epoch"]:
            return
        iterations = sorted(report["iterations"], key=lambda it: it["index"])
        start, stop = command["iter"]
        counts = {"success": 0, "failed": 0, "break": 0}
        outcomes = []
        elapsed = 0.0
        for it in iterations:
            status = it.get("status", "error")
            if status == "error":
                counts["failed"] += 1
                outcomes.append({"status": "error", "error": it.get("error")})
            else:
                counts["success"] += 1
                counts["break"] += status == "break"
                outcomes.append(it.get("result"))
            elapsed += float(it.get("ms") or 0.0)
        ms_per_iter = elapsed / max(1, len(iterations))
        stored = self.values.externalize(outcomes, always=True)
        payload = {
            "from": start, "to": stop, "counts": counts,
            "outcomes": stored,
            "ctx_patch": self._ctx_patch(report),
            "ms_per_iter": round(ms_per_iter, 3),
            "k": self._next_chunk(step, loop, ms_per_iter),
        }
        if len(loop["chunks"]) + 1 >= CHUNK_REFS_IN_STATE:
            entries = [*loop["chunks"], [start, {"$ref": stored["$ref"]}]]
            payload["chunks_ref"] = self.values.externalize(entries, always=True)
        if report.get("log_ref"):
            payload["log_ref"] = report["log_ref"]
        self.emit(event("loop.chunk.done", name, command_id, payload,
                        status="error" if counts["failed"] else "ok",
                        **self._measures(step, report)))
        loop = self.state["loops"][name]
        if loop["done"] >= loop["total"] and loop["in_flight"] == 0:
            self._loop_done(step, loop)
        else:
            self._fill_window(name)

    def _next_chunk(self, step: dict, loop: dict, ms_per_iter: float) -> int:
        if _needs_single_iterations(step) or step["loop"].get("chunk"):
            return loop["k"]
        remaining = loop["total"] - loop["next"]
        by_speed = MAX_CHUNK if ms_per_iter <= 0 else math.ceil(
            TARGET_CHUNK_MS / ms_per_iter)
        by_share = math.ceil(remaining / (2 * loop["max_in_flight"])) or 1
        return max(1, min(MAX_CHUNK, by_speed, by_share))

    def _loop_done(self, step: dict, loop: dict) -> None:
        results: list[Any] = []
        for _, outcomes in self._chunk_outcomes(loop["chunks"]):
            results.extend(self.values.resolve(o) for o in self.values.resolve(outcomes))
        stats = {"total": loop["success"] + loop["failed"], "success": loop["success"],
                 "failed": loop["failed"], "break": loop["break"]}
        result = {"results": results, "stats": stats}
        status = "error" if loop["failed"] else "ok"
        error = None
        if loop["failed"]:
            error = _loop_error(results, loop["failed"], stats["total"])
        outcome = {"status": status, "data": result, "error": error}
        stored = self.values.externalize(result)
        payload = {"epoch": loop["epoch"], "stats": stats, "result": stored}
        self._finish(step["name"], "loop.done", payload, outcome, result, None, error,
                     self.preview({step["name"]: stored}), self._measures(step, {}))

    def _chunk_outcomes(self, entries: list[Any]) -> list[tuple[int, Any]]:
        """Each chunk's (first index, outcomes reference) in index order, with
        the blobs of folded chunk lists opened (see CHUNK_REFS_IN_STATE)."""
        chunks: list[tuple[int, Any]] = []
        todo = list(entries)
        while todo:
            start, outcomes = todo.pop()
            if isinstance(outcomes, dict) and "$chunks" in outcomes:
                todo.extend(self.values.resolve(outcomes["$chunks"]))
            else:
                chunks.append((start, outcomes))
        return sorted(chunks, key=lambda chunk: chunk[0])

    # -- continuations (sub-playbooks, long backoffs) ---------------------

    def _suspend(self, command_id: str, command: dict, suspend: dict[str, Any]) -> None:
        resume = suspend["resume"]
        child = suspend.get("child")
        if child is None:
            self._continue(command_id, command, resume, delay=suspend.get("delay_s"))
            return
        child_id = child["execution_id"]
        spec = dict(child)
        if child.get("return_step") is None:
            self.decision.children.append({**spec, "parent_command": None})
            resume = dict(resume)
            resume["outcome"] = {"status": "ok", "data": {
                "status": "started", "execution_id": child_id,
                "path": child.get("path"), "async": True}}
            self._continue(command_id, command, resume)
            return
        self.emit(event("command.waiting", command["step"], command_id,
                        {"child": spec, "resume": resume}))
        self.decision.children.append({**spec, "parent_command": command_id})

    def _continue(self, command_id: str, command: dict, resume: dict,
                  delay: float | None = None) -> None:
        step = self.graph.steps[command["step"]]
        base_id = command.get("base", command_id)
        count = command.get("continuations", 0) + 1
        new_id = f"{base_id}/c{count}"
        payload: dict[str, Any] = {"epoch": command["epoch"], "reason": "continuation",
                                   "replaces": command_id, "base": base_id,
                                   "count": count}
        if "iter" in command:
            payload["iter"] = command["iter"]
        if delay:
            payload["delay_s"] = delay
        self.emit(event("command.issued", step["name"], new_id, payload,
                        **self._measures(step, {})))
        iterations = resume.get("iterations")
        self._queue_command(new_id, step, command["epoch"], iterations=iterations,
                            resume=resume, delay=delay)

    # -- measures ---------------------------------------------------------

    def _measures(self, step: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
        """The analysis fields of a step's events: its pool and tool kind, and
        what the worker measured (wall-clock start and end, duration, the
        highest retry attempt, bytes in and out)."""
        fields: dict[str, Any] = {"pool": step.get("pool") or "default",
                                  "tool": self._tool_kind(step)}
        measured = report.get("measures")
        if measured:
            fields.update(
                started_at=measured.get("started"), ended_at=measured.get("ended"),
                duration_ms=measured.get("ms"), attempt=measured.get("attempt"),
                input_bytes=measured.get("input_bytes"),
                result_bytes=measured.get("result_bytes"),
            )
        return fields

    def _tool_kind(self, step: dict[str, Any]) -> str:
        """The kinds of a step's tasks, workbook entries resolved, joined by
        ``+`` in pipeline order (``http`` or ``http+python``)."""
        cache = self.graph.tool_kinds
        if step["name"] not in cache:
            kinds: list[str] = []
            for task in step["tasks"]:
                kind = task["kind"]
                if kind == "workbook":
                    name = task["config"].get("task") or task["config"].get("name")
                    entry = (self.playbook.get("workbook") or {}).get(name) or {}
                    kind = entry.get("kind", kind)
                if kind not in kinds:
                    kinds.append(kind)
            cache[step["name"]] = "+".join(kinds) or "noop"
        return cache[step["name"]]

    # -- commands ---------------------------------------------------------

    def _queue_command(self, command_id: str, step: dict[str, Any], epoch: int, *,
                       iterations: list | None = None, args: dict | None = None,
                       resume: dict | None = None, delay: float | None = None) -> None:
        """Record what a worker needs to run this command (DESIGN-NOTES R3)."""
        names = self._names(step)
        variables = self.state["vars"]
        if names is None:
            scope = dict(variables)
        else:
            scope = {n: variables[n] for n in names if n in variables}
        self.decision.commands.append({
            "id": command_id,
            "step": step["name"],
            "epoch": epoch,
            "iter": [iterations[0]["index"], iterations[-1]["index"] + 1]
            if iterations else None,
            "delay_s": delay,
            "pool": step.get("pool") or "default",
            "payload": {
                "scope": scope,
                "iterations": iterations,
                "args": args or {},
                "resume": resume,
            },
        })

    def _names(self, step: dict[str, Any]) -> frozenset[str] | None:
        cache = self.graph.scope_names
        if step["name"] not in cache:
            cache[step["name"]] = step_names_needed(step, self.playbook)
        return cache[step["name"]]

    # -- quiescence -------------------------------------------------------

    def settle(self) -> None:
        """Release joins that can no longer be reached, then maybe finish."""
        while self.running:
            released = self._release_joins()
            if released:
                continue
            state = self.state
            if state["commands"] or state["loops"] or state["joins"]:
                return
            final = self.playbook.get("final_step")
            if final and not state["final_issued"] and \
                    state["steps"].get(final, {}).get("runs", 0) == 0:
                self.activate(final, {}, {}, final=True)
                continue
            self._terminate()
            return

    def _release_joins(self) -> bool:
        joins = self.state["joins"]
        if not joins:
            return False
        active = {c["step"] for c in self.state["commands"].values()}
        active |= set(self.state["loops"])
        for name in list(joins):
            sources = active | (set(joins) - {name})
            if any(name in self.graph.reach[src] for src in sources):
                continue
            pending = joins[name]
            self.activate(name, pending["set"], pending["args"])
            return True
        if not active:
            # Joins that can only reach each other (a cycle): release the first
            # in YAML order rather than wait forever.
            name = next(s for s in self.graph.steps if s in joins)
            pending = joins[name]
            self.activate(name, pending["set"], pending["args"])
            return True
        return False

    def _terminate(self) -> None:
        state = self.state
        final = self.playbook.get("final_step")
        leaves = state["leaves"]
        result_step = final if final and state["final_issued"] else (
            leaves[-1] if leaves else None)
        result = state["vars"].get(result_step) if result_step else None
        payload: dict[str, Any] = {"final_step": result_step, "result": result}
        if len(leaves) > 1:
            payload["leaves"] = leaves
        if state["failed"]:
            payload["status"] = "failed"
            payload["error"] = state["error"]
            self.emit(event("workflow.failed", result_step, payload=payload,
                            status="failed"))
        else:
            payload["status"] = "completed"
            self.emit(event("workflow.completed", result_step, payload=payload,
                            status="completed"))


def _collection(value: Any) -> list[Any]:
    """Loop collections per DSL 3.4 and 10.11."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str):
        return [] if "{{" in value else [value]
    return [value]


class EventName(str):
    """An event name that also equals its aliases (DSL section 7).

    ``call.done`` also matches ``step.exit`` and ``step.done``; ``call.error``
    also matches ``step.failed``. Comparisons work on either side of ``==``
    and inside ``in [...]`` because Python tries a subclass's ``__eq__`` first.
    """

    ALIASES = {"call.done": frozenset({"call.done", "step.exit", "step.done"}),
               "call.error": frozenset({"call.error", "step.failed"})}

    def __eq__(self, other: object) -> bool:
        names = self.ALIASES.get(str(self), frozenset({str(self)}))
        return isinstance(other, str) and str(other) in names

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _loop_error(results: list[Any], failed: int, total: int) -> dict[str, Any]:
    """A failed loop's error, naming its first failing iteration and why it
    failed: the count alone leaves the user guessing."""
    message = f"{failed} of {count(total, 'iteration')} failed"
    error: dict[str, Any] = {"kind": "loop", "retryable": False, "message": message,
                             "first": None, "first_index": None}
    for index, result in enumerate(results):
        if isinstance(result, dict) and result.get("status") == "error":
            first = result.get("error")
            cause = first.get("message") if isinstance(first, dict) else first
            cause = cause or "no message"
            error["message"] += f"; first failing iteration {index}: {cause}"
            error.update(first=first, first_index=index)
            break
    return error


def _needs_single_iterations(step: dict[str, Any]) -> bool:
    return any(task["kind"] == "playbook" for task in step["tasks"])


def step_names_needed(
    step: dict[str, Any], playbook: dict[str, Any]
) -> frozenset[str] | None:
    """Root names a step's templates read; None means the whole variable dict.

    Python code that reads ``context`` sees every variable, and so does a
    template that names ``ctx`` or ``workload``.
    """
    sources: list[Any] = [step.get("input"), step.get("set")]
    for task in step["tasks"]:
        sources += [task["config"], task["set"], task["rules"]]
        if task["kind"] == "workbook":
            target = playbook["workbook"].get(task["config"].get("task") or "")
            if target:
                sources += [target["config"], target["set"], target["rules"]]
                if "context" in str(target["config"].get("code", "")):
                    return None
        if task["kind"] == "python" and "context" in str(task["config"]):
            return None
    names = needed_names(sources)
    if "keychain" in names:
        # Entries are rendered on the worker, with what they read.
        names |= needed_names([playbook.get("keychain") or []])
    if names & {"ctx", "workload", "context", "vars"}:
        return None
    return frozenset(names)
