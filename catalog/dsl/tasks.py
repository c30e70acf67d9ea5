"""A step's `tool` (DSL §3.1) and workbook entries (§5.7) as normalised tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.dsl.paths import index_path, key_path
from catalog.dsl.policy import legacy_retry, task_rules
from catalog.dsl.refs import Ref, Refs
from catalog.dsl.report import Checker, type_name
from catalog.dsl.values import duration, is_template, set_map

# Task keys that describe the task rather than parametrise the tool.
_TASK_META = frozenset(
    {"name", "kind", "spec", "set", "retry", "timeout", "timeout_seconds"}
)
# `spec` keys read by the engine; every other `spec` key is a tool parameter
# that fixtures wrote one level too deep (DSL §3.2).
_RESERVED_SPEC = frozenset({"policy", "timeout", "result", "retry", "mode"})
_WORKBOOK_ENTRY_KEYS = frozenset({"name", "tool", "desc", "description", "assert"})


@dataclass(frozen=True)
class _Source:
    """One task as written: its mapping, where it is, and the label it gets."""

    raw: dict[str, Any]
    path: str
    label: str
    single: bool = False
    # For `kind: workbook` written as a single map, `name` names the workbook task.
    workbook_target: Any = None


def step_tasks(
    ck: Checker, tool: Any, path: str, step: str, refs: Refs
) -> tuple[list[dict[str, Any]], bool]:
    """(tasks, single) for a step's `tool`; single is True for one mapping."""
    if isinstance(tool, dict):
        source = _single_source(ck, tool, path, f"{step}_task")
        sources = [source] if source else []
        single = True
    elif isinstance(tool, list):
        if not tool:
            ck.error(path, "'tool' must not be an empty list")
        found = [
            _list_source(ck, item, index_path(path, i), i)
            for i, item in enumerate(tool)
        ]
        sources = [source for source in found if source]
        single = False
    else:
        ck.error(path, f"'tool' must be a mapping or a list, not {type_name(tool)}")
        return [], True
    labels = _unique_labels(ck, sources)
    return [_task(ck, source, refs, labels) for source in sources], single


def workbook_task(
    ck: Checker, entry: Any, path: str, refs: Refs
) -> tuple[str, dict[str, Any]] | None:
    """(name, task) for one `workbook` entry; its label is its name."""
    if not isinstance(entry, dict):
        ck.error(path, f"a workbook entry must be a mapping, not {type_name(entry)}")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        ck.error(key_path(path, "name"), "a workbook entry needs a 'name' (a string)")
        return None
    ck = ck.within(f"workbook task '{name}'")
    ck.unknown_keys(entry, path, _WORKBOOK_ENTRY_KEYS, "workbook entry")
    tool_path = key_path(path, "tool")
    tool = entry.get("tool")
    if not isinstance(tool, dict) or "kind" not in tool:
        ck.error(tool_path, "a workbook entry needs 'tool', a mapping with 'kind'")
        return None
    source = _Source(tool, tool_path, name, single=True)
    return name, _task(ck, source, refs, frozenset({name}))


def _single_source(
    ck: Checker, tool: dict[str, Any], path: str, fallback: str
) -> _Source | None:
    if "kind" not in tool:
        hint = ""
        if len(tool) == 1 and isinstance(next(iter(tool.values())), dict):
            hint = "; a labelled task is written as a list item: tool: [{label: {...}}]"
        ck.error(path, "'tool' needs 'kind'" + hint)
        return None
    name = tool.get("name")
    if tool.get("kind") == "workbook" and "task" not in tool:
        # In a single map, `name` names the workbook task, not the label (§10.16).
        return _Source(tool, path, fallback, single=True, workbook_target=name)
    label = fallback
    if name is not None:
        label = _label(ck, name, key_path(path, "name"), fallback)
    return _Source(tool, path, label, single=True)


def _list_source(ck: Checker, item: Any, path: str, index: int) -> _Source | None:
    fallback = f"task_{index}"
    if not isinstance(item, dict):
        ck.error(path, f"a task must be a mapping with 'kind', not {type_name(item)}")
        return None
    if "kind" in item:
        name = item.get("name")
        label = (
            fallback
            if name is None
            else _label(ck, name, key_path(path, "name"), fallback)
        )
        return _Source(item, path, label)
    if len(item) == 1:
        key, inner = next(iter(item.items()))
        if isinstance(inner, dict) and "kind" in inner:
            return _keyed_source(ck, str(key), inner, key_path(path, key))
    ck.error(path, "a task needs 'kind' (or is written as `- <label>: {kind: ...}`)")
    return None


def _keyed_source(ck: Checker, label: str, inner: dict[str, Any], path: str) -> _Source:
    """The docs' `- fetch: {kind: http, ...}` form; the key is the label."""
    name = inner.get("name")
    if name is not None and name != label:
        message = f"'name' ({name!r}) contradicts the task label '{label}'"
        ck.error(key_path(path, "name"), message)
    return _Source(inner, path, label)


def _label(ck: Checker, name: Any, path: str, fallback: str) -> str:
    if isinstance(name, str) and name:
        return name
    ck.error(path, "a task 'name' must be a non-empty string")
    return fallback


def _unique_labels(ck: Checker, sources: list[_Source]) -> frozenset[str]:
    seen: set[str] = set()
    for source in sources:
        if source.label in seen:
            message = f"task label '{source.label}' is used twice in this step"
            ck.error(source.path, message)
        seen.add(source.label)
    return frozenset(seen)


def _task(
    ck: Checker, source: _Source, refs: Refs, labels: frozenset[str]
) -> dict[str, Any]:
    raw, path = source.raw, source.path
    spec_path = key_path(path, "spec")
    spec = ck.mapping(raw.get("spec"), spec_path, "'spec'")
    kind = _kind(ck, raw.get("kind"), key_path(path, "kind"))
    config = {key: value for key, value in spec.items() if key not in _RESERVED_SPEC}
    config.update((key, value) for key, value in raw.items() if key not in _TASK_META)
    if kind == "workbook":
        _workbook_call(ck, source, config, refs)
    rules, has_policy = _rules(ck, source, spec, refs, labels)
    return {
        "label": source.label,
        "kind": kind,
        "config": config,
        "rules": rules,
        "has_policy": has_policy,
        "set": set_map(ck, raw.get("set"), key_path(path, "set")),
        "timeout": _timeout(ck, source, spec, kind, config),
    }


def _kind(ck: Checker, kind: Any, path: str) -> str:
    # An unknown kind is only a warning: the playbook may target a newer
    # installation, and the step fails at run time with a clear error.
    if not isinstance(kind, str) or not kind:
        ck.error(path, "'kind' must be a non-empty string")
        return ""
    if ck.known_kinds is not None and kind not in ck.known_kinds:
        ck.warn(path, f"tool kind '{kind}' is not supported by this NoETL version; "
                      "the step will fail when it runs")
    return kind


def _workbook_call(
    ck: Checker, source: _Source, config: dict[str, Any], refs: Refs
) -> None:
    if source.workbook_target is not None:
        config["task"] = source.workbook_target
    target = config.get("task")
    # A single map without `task` names its workbook task with `name`.
    written_as = "name" if source.single and "task" not in source.raw else "task"
    target_path = key_path(source.path, written_as)
    if not isinstance(target, str) or not target:
        message = "a workbook call needs 'task' (the workbook entry to run)"
        if not source.single:
            message += "; in a pipeline 'name' is the task's label"
        ck.error(target_path, message)
    elif not is_template(target):
        refs.workbook_calls.append(Ref(target_path, target, ck.context))


def _rules(
    ck: Checker,
    source: _Source,
    spec: dict[str, Any],
    refs: Refs,
    labels: frozenset[str],
) -> tuple[list[dict[str, Any]], bool]:
    spec_path = key_path(source.path, "spec")
    declared = None
    if "policy" in spec:
        policy_path = key_path(spec_path, "policy")
        declared = task_rules(ck, spec["policy"], policy_path, refs, labels)
    # Top-level keys win over `spec` keys, as for the tool config.
    retry = _first_written(source, spec, ("retry",))
    implicit = legacy_retry(ck, *retry) if retry else None
    rules = list(declared or [])
    if implicit is not None:
        # The retry rule goes first so an explicit catch-all cannot shadow it.
        rules.insert(0, implicit)
    return rules, declared is not None or implicit is not None


def _timeout(
    ck: Checker,
    source: _Source,
    spec: dict[str, Any],
    kind: str,
    config: dict[str, Any],
) -> float | None:
    """Seconds from `timeout`, `timeout_seconds` or `spec.timeout`."""
    written = _first_written(source, spec, ("timeout", "timeout_seconds"))
    if written is None:
        return None
    value, value_path = written
    if isinstance(value, dict) and kind == "http":
        # `{connect, read}` is an http client parameter, not a task deadline.
        config.setdefault("timeout", value)
        return None
    return duration(ck, value, value_path)


def _first_written(
    source: _Source, spec: dict[str, Any], keys: tuple[str, ...]
) -> tuple[Any, str] | None:
    """(value, path) of the first of `keys` on the task, else in its `spec`."""
    spec_path = key_path(source.path, "spec")
    for holder, base in ((source.raw, source.path), (spec, spec_path)):
        for key in keys:
            if key in holder:
                return holder[key], key_path(base, key)
    return None
