"""The fold: ``apply(state, event) -> state``.

The execution state is a projection of the event log. It is a plain JSON
dict, O(steps + commands in flight): variables (large ones by reference),
per-step status and run counts, the commands in flight, open loops and
pending join arrivals. ``fold(events)`` rebuilds it from scratch; the engine
maintains it incrementally by applying each event it emits, so both are the
same by construction, and a property test checks it.

``apply`` mutates and returns the state it is given: callers own their copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

TERMINAL = {"workflow.completed": "completed", "workflow.failed": "failed",
            "execution.cancelled": "cancelled"}


def initial_state() -> dict[str, Any]:
    return {
        "status": "running",
        "vars": {},
        "env": {},
        "failed": False,
        "error": None,
        "steps": {},
        "commands": {},
        "loops": {},
        "joins": {},
        "leaves": [],
        "final_issued": False,
        "result": None,
    }


def fold(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    state = initial_state()
    for event in events:
        state = apply(state, event)
    return state


def clone(state: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(state)


def write_vars(variables: dict[str, Any], patch: dict[str, Any] | None) -> None:
    """Apply a ctx patch whose keys are already bare variable names."""
    if patch:
        variables.update(patch)


def _step(state: dict[str, Any], name: str) -> dict[str, Any]:
    steps = state["steps"]
    if name not in steps:
        steps[name] = {"status": "pending", "runs": 0, "epoch": 0}
    return steps[name]


def apply(state: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    handler = _HANDLERS.get(event["kind"])
    if handler is not None:
        handler(state, event)
    return state


def _started(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    state["vars"] = dict(payload.get("workload") or {})
    state["env"] = dict(payload.get("env") or {})


def _activate(state: dict[str, Any], name: str, payload: dict[str, Any]) -> None:
    step = _step(state, name)
    step["runs"] += 1
    step["epoch"] = payload["epoch"]
    step["status"] = "running"
    write_vars(state["vars"], payload.get("set"))
    state["joins"].pop(name, None)
    if payload.get("final"):
        state["final_issued"] = True


def _issued(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    name = event["step"]
    replaced = payload.get("replaces")
    if replaced:
        state["commands"].pop(replaced, None)
    if payload.get("reason") == "route":
        _activate(state, name, payload)
    command = {"step": name, "epoch": payload["epoch"], "state": "queued"}
    if replaced:
        command["base"] = payload["base"]
        command["continuations"] = payload["count"]
    if payload.get("iter") is not None:
        command["iter"] = payload["iter"]
        loop = state["loops"].get(name)
        if loop is not None and not replaced:
            loop["next"] = payload["iter"][1]
            loop["in_flight"] += 1
    state["commands"][event["command_id"]] = command


def _waiting(state: dict[str, Any], event: dict[str, Any]) -> None:
    command = state["commands"].get(event["command_id"])
    if command is not None:
        command["state"] = "waiting"
        command["child"] = event["payload"]["child"]["execution_id"]
        command["resume"] = event["payload"]["resume"]


def _requeued(state: dict[str, Any], event: dict[str, Any]) -> None:
    command = state["commands"].get(event["command_id"])
    if command is not None:
        command["lost"] = command.get("lost", 0) + 1


def _finish_step(state: dict[str, Any], event: dict[str, Any], status: str) -> None:
    payload = event["payload"]
    step = _step(state, event["step"])
    step["status"] = status
    if payload.get("leaf"):
        leaves = state["leaves"]
        if event["step"] in leaves:
            leaves.remove(event["step"])
        leaves.append(event["step"])
    if status == "failed" and not payload.get("handled"):
        state["failed"] = True
        if state["error"] is None:
            state["error"] = {"step": event["step"], **(event.get("error") or {})}
    if payload.get("unmatched_error"):
        state["failed"] = True
        if state["error"] is None:
            state["error"] = payload["unmatched_error"]


def _call_done(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    if event.get("command_id"):
        state["commands"].pop(event["command_id"], None)
    if payload.get("activation"):
        _activate(state, event["step"], payload)
    variables = state["vars"]
    write_vars(variables, payload.get("ctx_patch"))
    if event["kind"] == "call.done":
        variables[event["step"]] = payload.get("result")
        write_vars(variables, payload.get("set"))
        _finish_step(state, event, "completed")
    else:
        _finish_step(state, event, "failed")


def _loop_started(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    _activate(state, event["step"], payload)
    state["loops"][event["step"]] = {
        "epoch": payload["epoch"],
        "total": payload["total"],
        "items": payload["items"],
        "mode": payload["mode"],
        "max_in_flight": payload["max_in_flight"],
        "k": payload["k"],
        "next": 0,
        "in_flight": 0,
        "done": 0,
        "success": 0,
        "failed": 0,
        "break": 0,
        "chunks": [],
        "ms_per_iter": None,
    }


def _chunk_done(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    state["commands"].pop(event["command_id"], None)
    loop = state["loops"].get(event["step"])
    if loop is None:
        return
    counts = payload["counts"]
    loop["in_flight"] -= 1
    loop["done"] += payload["to"] - payload["from"]
    for key in ("success", "failed", "break"):
        loop[key] += counts.get(key, 0)
    merged = payload.get("chunks_ref")
    if merged is not None:
        # The engine folded every chunk so far into one blob (see decide's
        # _chunk_done), so the state row stays small however long the loop.
        loop["chunks"] = [[payload["from"], {"$chunks": _slim(merged)}]]
    else:
        loop["chunks"].append([payload["from"], _slim(payload["outcomes"])])
    if payload.get("k"):
        loop["k"] = payload["k"]
    if payload.get("ms_per_iter") is not None:
        loop["ms_per_iter"] = payload["ms_per_iter"]
    write_vars(state["vars"], payload.get("ctx_patch"))


def _slim(ref: Any) -> Any:
    """A blob reference without its size and preview: the state row is
    rewritten by every transaction of a run, the event keeps the rest."""
    if isinstance(ref, dict) and isinstance(ref.get("$ref"), str):
        return {"$ref": ref["$ref"]}
    return ref


def _loop_done(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    state["loops"].pop(event["step"], None)
    state["vars"][event["step"]] = payload["result"]
    status = "failed" if payload["stats"]["failed"] else "completed"
    _finish_step(state, event, status)


def _skipped(state: dict[str, Any], event: dict[str, Any]) -> None:
    _step(state, event["step"])["status"] = "skipped"
    state["joins"].pop(event["step"], None)


def _join_wait(state: dict[str, Any], event: dict[str, Any]) -> None:
    pending = state["joins"].setdefault(event["step"], {"set": {}, "args": {}})
    payload = event["payload"]
    pending["set"].update(payload.get("set") or {})
    pending["args"].update(payload.get("args") or {})


def _terminal(state: dict[str, Any], event: dict[str, Any]) -> None:
    payload = event["payload"]
    state["status"] = TERMINAL[event["kind"]]
    state["result"] = payload.get("result")
    if payload.get("error") and state["error"] is None:
        state["error"] = payload["error"]
    state["commands"] = {}
    state["loops"] = {}
    state["joins"] = {}


_HANDLERS = {
    "execution.started": _started,
    "command.issued": _issued,
    "command.waiting": _waiting,
    "command.requeued": _requeued,
    "call.done": _call_done,
    "call.error": _call_done,
    "loop.started": _loop_started,
    "loop.chunk.done": _chunk_done,
    "loop.done": _loop_done,
    "step.skipped": _skipped,
    "join.waiting": _join_wait,
    "workflow.completed": _terminal,
    "workflow.failed": _terminal,
    "execution.cancelled": _terminal,
}
