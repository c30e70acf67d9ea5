"""One workflow step (DSL §3): tool, loop, admission, `next` router."""

from __future__ import annotations

from typing import Any

from catalog.dsl.paths import index_path, key_path
from catalog.dsl.policy import admit_rules
from catalog.dsl.refs import Ref, Refs
from catalog.dsl.report import BUILTIN_NAMES, Checker, type_name
from catalog.dsl.tasks import step_tasks
from catalog.dsl.values import condition, duration, is_template, set_map

_STEP_KEYS = frozenset(
    {"step", "desc", "description", "spec", "input", "loop", "tool", "set", "next"}
)
# Step keys from older dialects or the docs, with what to write instead.
_REJECTED_STEP_KEYS = {
    "when": "put the condition on the incoming arc (next.arcs[].when) "
    "or use spec.policy.admit",
    "case": "route with next.arcs and 'when'",
    "type": "use tool: {kind: ...}",
    "args": "use 'input' (an incoming arc may also pass 'args')",
    "set_ctx": "use set: {ctx.<name>: ...}",
    "set_iter": "use set: {iter.<name>: ...} in a task policy",
    "result": "the step result is the tool's result; use 'set' to keep values",
    "outcome": "the step result is the tool's result; use 'set' to keep values",
    "vars": "use set: {ctx.<name>: ...}",
    "save": "add a task that writes the data (e.g. kind: postgres) to 'tool'",
    "sink": "add a task that writes the data (e.g. kind: postgres) to 'tool'",
}
_STEP_SPEC_KEYS = frozenset({"policy", "timeout"})
_STEP_POLICY_KEYS = frozenset({"admit", "lifecycle", "failure"})
_LOOP_KEYS = frozenset({"in", "cursor", "iterator", "spec"})
_LOOP_SPEC_KEYS = frozenset({"mode", "max_in_flight", "chunk", "policy"})
_LOOP_MODES = ("sequential", "parallel")
_LOOP_EXEC = ("local", "distributed")
_NEXT_MODES = ("exclusive", "inclusive")
_NO_MATCH = ("complete", "quiet")
_ARC_KEYS = frozenset({"step", "when", "cond", "set", "args", "spec"})


def step_name(ck: Checker, raw: dict[str, Any], path: str) -> str | None:
    name = raw.get("step")
    if isinstance(name, str) and name:
        return name
    problem = "must be a non-empty string" if "step" in raw else "is required"
    ck.error(key_path(path, "step"), f"'step' (the step name) {problem}")
    return None


def normalise_step(
    ck: Checker, raw: dict[str, Any], path: str, name: str, refs: Refs
) -> dict[str, Any]:
    _check_step_keys(ck, raw, path)
    if name in BUILTIN_NAMES:
        message = f"step name '{name}' hides the built-in '{name}'"
        ck.warn(key_path(path, "step"), message)
    spec_path = key_path(path, "spec")
    spec = _step_spec(ck, raw.get("spec"), spec_path)
    tasks, single = _tool(ck, raw, path, name, refs)
    return {
        "name": name,
        "desc": _desc(raw),
        "line": ck.line(path),
        "single": single,
        "tasks": tasks,
        "loop": _loop(ck, raw.get("loop"), key_path(path, "loop")),
        "input": dict(ck.mapping(raw.get("input"), key_path(path, "input"), "'input'")),
        "set": set_map(ck, raw.get("set"), key_path(path, "set")),
        "next": _next(ck, raw.get("next"), key_path(path, "next"), refs),
        "admit": _admit(ck, spec, spec_path),
        "timeout": _step_timeout(ck, spec, spec_path),
    }


def _check_step_keys(ck: Checker, raw: dict[str, Any], path: str) -> None:
    for key in raw:
        key_at = key_path(path, key)
        if key in _REJECTED_STEP_KEYS:
            ck.error(key_at, f"a step cannot have '{key}'; {_REJECTED_STEP_KEYS[key]}")
        elif key == "output":
            # Result-storage tiering from Ref (DSL §3.6); storage is automatic here.
            ck.warn(key_at, "'output' (result storage settings) is ignored")
        elif key not in _STEP_KEYS:
            message = f"unknown step key '{key}' is ignored"
            ck.warn(key_at, message + "; tool parameters belong under 'tool'")


def _desc(raw: dict[str, Any]) -> str | None:
    desc = raw.get("desc", raw.get("description"))
    return None if desc is None else str(desc)


def _tool(
    ck: Checker, raw: dict[str, Any], path: str, name: str, refs: Refs
) -> tuple[list[dict[str, Any]], bool]:
    if raw.get("tool") is None:
        message = "'tool' is required; use `tool: {kind: noop}` for a router step"
        ck.error(path, message)
        return [], True
    return step_tasks(ck, raw["tool"], key_path(path, "tool"), name, refs)


def _step_spec(ck: Checker, raw: Any, path: str) -> dict[str, Any]:
    spec = ck.mapping(raw, path, "'spec'")
    ck.unknown_keys(spec, path, _STEP_SPEC_KEYS | {"next_mode"}, "step spec")
    if "next_mode" in spec:
        message = "'next_mode' is not supported; use next: {spec: {mode: ...}}"
        ck.error(key_path(path, "next_mode"), message)
    return spec


def _step_timeout(ck: Checker, spec: dict[str, Any], path: str) -> float | None:
    if spec.get("timeout") is None:
        return None
    return duration(ck, spec["timeout"], key_path(path, "timeout"))


def _admit(ck: Checker, spec: dict[str, Any], path: str) -> list[dict[str, Any]] | None:
    policy_path = key_path(path, "policy")
    policy = ck.mapping(spec.get("policy"), policy_path, "'policy'")
    if "rules" in policy:
        message = "task policy rules belong to a task: tool.spec.policy.rules"
        ck.error(key_path(policy_path, "rules"), message)
    else:
        ck.unknown_keys(policy, policy_path, _STEP_POLICY_KEYS, "step policy")
    return admit_rules(ck, policy.get("admit"), key_path(policy_path, "admit"))


def _loop(ck: Checker, raw: Any, path: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    loop = ck.mapping(raw, path, "'loop'")
    ck.unknown_keys(loop, path, _LOOP_KEYS, "loop")
    if "cursor" in loop:
        ck.error(key_path(path, "cursor"), "cursor loops are not supported yet")
    elif "in" not in loop:
        ck.error(path, "'in' (the collection to loop over) is required")
    spec_path = key_path(path, "spec")
    spec = ck.mapping(loop.get("spec"), spec_path, "'spec'")
    ck.unknown_keys(spec, spec_path, _LOOP_SPEC_KEYS, "loop spec")
    _loop_exec(ck, spec.get("policy"), key_path(spec_path, "policy"))
    return {
        "in": loop.get("in"),
        "iterator": _iterator(ck, loop.get("iterator"), key_path(path, "iterator")),
        "mode": _loop_mode(ck, spec.get("mode", "sequential"), spec_path),
        "max_in_flight": _max_in_flight(ck, spec.get("max_in_flight"), spec_path),
        "chunk": _chunk(ck, spec.get("chunk"), key_path(spec_path, "chunk")),
    }


def _iterator(ck: Checker, iterator: Any, path: str) -> str:
    if not isinstance(iterator, str) or not iterator:
        ck.error(path, "'iterator' (the name bound to each item) is required")
        return ""
    if iterator in BUILTIN_NAMES:
        ck.warn(path, f"iterator '{iterator}' hides the built-in '{iterator}'")
    return iterator


def _loop_mode(ck: Checker, mode: Any, path: str) -> str:
    if mode == "cursor":
        ck.error(key_path(path, "mode"), "cursor loops are not supported yet")
    elif mode not in _LOOP_MODES:
        message = f"'{mode}' must be one of " + ", ".join(_LOOP_MODES)
        ck.error(key_path(path, "mode"), message)
    else:
        return str(mode)
    return "sequential"


def _max_in_flight(ck: Checker, value: Any, path: str) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str) and is_template(value):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    message = f"must be an integer >= 1 or a template, not {value!r}"
    ck.error(key_path(path, "max_in_flight"), message)
    return None


def _chunk(ck: Checker, value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    ck.error(path, f"must be an integer >= 1, not {value!r}")
    return None


def _loop_exec(ck: Checker, policy: Any, path: str) -> None:
    body = ck.mapping(policy, path, "'policy'")
    if "exec" in body and body["exec"] not in _LOOP_EXEC:
        message = f"'{body['exec']}' must be one of " + ", ".join(_LOOP_EXEC)
        ck.error(key_path(path, "exec"), message)


def _next(ck: Checker, raw: Any, path: str, refs: Refs) -> dict[str, Any]:
    """The router. The docs' list and string shapes are accepted (DSL §3.6)."""
    router: dict[str, Any] = {
        "mode": "exclusive",
        "on_no_match": "complete",
        "arcs": [],
    }
    if raw is None:
        return router
    if isinstance(raw, str):
        arcs = [(path, raw)]
    elif isinstance(raw, list):
        arcs = [(index_path(path, i), arc) for i, arc in enumerate(raw)]
    elif isinstance(raw, dict):
        arcs = _routed_arcs(ck, raw, path, router)
    else:
        ck.error(path, f"'next' must be a mapping with 'arcs', not {type_name(raw)}")
        return router
    for arc_path, arc in arcs:
        normalised = _arc(ck, arc, arc_path)
        if normalised is not None:
            router["arcs"].append(normalised)
            refs.arcs.append(
                Ref(key_path(arc_path, "step"), normalised["step"], ck.context)
            )
    return router


def _routed_arcs(
    ck: Checker, raw: dict[str, Any], path: str, router: dict[str, Any]
) -> list[tuple[str, Any]]:
    """Arcs of the canonical `{spec: {...}, arcs: [...]}` form; sets the modes."""
    ck.unknown_keys(raw, path, frozenset({"arcs", "spec"}), "next")
    spec_path = key_path(path, "spec")
    spec = ck.mapping(raw.get("spec"), spec_path, "'spec'")
    ck.unknown_keys(spec, spec_path, frozenset({"mode", "on_no_match"}), "next spec")
    router["mode"] = _choice(ck, spec, spec_path, "mode", _NEXT_MODES)
    router["on_no_match"] = _choice(ck, spec, spec_path, "on_no_match", _NO_MATCH)
    arcs_path = key_path(path, "arcs")
    arcs = raw.get("arcs")
    if arcs is None:
        if "step" in raw:
            ck.error(path, "write a single arc as next: {arcs: [{step: ...}]}")
        return []
    if not isinstance(arcs, list):
        ck.error(arcs_path, f"'arcs' must be a list, not {type_name(arcs)}")
        return []
    return [(index_path(arcs_path, i), arc) for i, arc in enumerate(arcs)]


def _choice(
    ck: Checker, spec: dict[str, Any], path: str, key: str, allowed: tuple[str, ...]
) -> str:
    value = spec.get(key, allowed[0])
    if value not in allowed:
        ck.error(key_path(path, key), f"'{value}' must be one of " + ", ".join(allowed))
        return allowed[0]
    return str(value)


def _arc(ck: Checker, raw: Any, path: str) -> dict[str, Any] | None:
    if isinstance(raw, str):
        raw = {"step": raw}
    if not isinstance(raw, dict):
        ck.error(path, f"an arc must be a mapping with 'step', not {type_name(raw)}")
        return None
    ck.unknown_keys(raw, path, _ARC_KEYS, "arc")
    target = raw.get("step")
    if not isinstance(target, str) or not target:
        message = "an arc needs 'step' (the target step name)"
        if "then" in raw:
            message += "; the old `when/then` form is written {step: x, when: ...}"
        ck.error(path, message)
        return None
    if "cond" in raw and "when" in raw:
        ck.error(key_path(path, "cond"), "'cond' is an old name for 'when'; use one")
    when_key = "cond" if "cond" in raw else "when"
    return {
        "step": target,
        "when": condition(ck, raw.get(when_key), key_path(path, when_key)),
        "set": set_map(ck, raw.get("set"), key_path(path, "set")),
        "args": dict(ck.mapping(raw.get("args"), key_path(path, "args"), "'args'")),
    }
