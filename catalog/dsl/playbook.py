"""The root document (DSL §1) and `parse_playbook`, the package's entry point."""

from __future__ import annotations

import re
from typing import Any

from catalog.dsl.code import check_code
from catalog.dsl.errors import Issue, PlaybookError
from catalog.dsl.paths import index_path, key_path
from catalog.dsl.policy import PREVIOUS_TASK
from catalog.dsl.refs import Refs
from catalog.dsl.report import BUILTIN_NAMES, Checker, type_name
from catalog.dsl.steps import normalise_step, step_name
from catalog.dsl.tasks import workbook_task
from catalog.dsl.yamlload import load_yaml

API_VERSIONS = ("noetl.io/v2", "noetl.io/v10")
_ROOT_KEYS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "workload",
        "workflow",
        "workbook",
        "keychain",
        "executor",
    }
)
_PROFILES = ("local", "distributed", "auto")
_METADATA_FLAGS = ("exposed_in_ui", "exposes_as_mcp", "agent")


def parse_playbook(
    text: str | bytes, known_kinds: frozenset[str] | None = None
) -> dict[str, Any]:
    """Validate and normalise a playbook; raise PlaybookError with every problem.
    With ``known_kinds``, a task of another kind gets a warning."""
    starts: dict[str, int] = {}
    data, lines = load_yaml(text, starts)
    if not isinstance(data, dict):
        message = f"a playbook must be a YAML mapping, not {type_name(data)}"
        raise PlaybookError([Issue("", 1 if lines else None, message)])
    ck = Checker(lines, known_kinds=known_kinds, starts=starts)
    playbook = _playbook(ck, data)
    check_code(ck, data)
    if ck.errors:
        warnings = _in_line_order(ck.warnings)
        raise PlaybookError(_in_line_order(ck.errors), warnings)
    playbook["warnings"] = [issue.as_warning() for issue in _in_line_order(ck.warnings)]
    return playbook


def _in_line_order(issues: list[Issue]) -> list[Issue]:
    # Checks that need the whole playbook run last; report in reading order.
    return sorted(issues, key=lambda issue: issue.line or 0)


def _playbook(ck: Checker, data: dict[str, Any]) -> dict[str, Any]:
    _check_root(ck, data)
    metadata = _metadata(ck, data.get("metadata"))
    refs = Refs()
    steps = _steps(ck, data.get("workflow"), refs)
    workbook = _workbook(ck, data.get("workbook"), refs)
    names = {step["name"] for step in steps}
    executor = _executor(ck, data.get("executor"), names)
    _resolve(ck, refs, steps, workbook)
    name = metadata.get("name") or ""
    return {
        "api_version": data.get("apiVersion"),
        "name": name,
        "path": metadata.get("path") or name,
        "version": metadata.get("version"),
        "description": metadata.get("description"),
        "metadata": metadata,
        "workload": _workload(ck, data.get("workload")),
        "entry_step": executor["entry_step"] or (steps[0]["name"] if steps else ""),
        "final_step": executor["final_step"],
        "no_next_is_error": executor["no_next_is_error"],
        "steps": steps,
        "workbook": workbook,
        "keychain": _keychain(ck, data.get("keychain")),
        "warnings": [],
    }


def _check_root(ck: Checker, data: dict[str, Any]) -> None:
    version = data.get("apiVersion")
    if version not in API_VERSIONS:
        message = "'apiVersion' must be " + " or ".join(API_VERSIONS)
        ck.error("apiVersion", message + f", not {version!r}")
    if data.get("kind") != "Playbook":
        ck.error("kind", f"'kind' must be 'Playbook', not {data.get('kind')!r}")
    for key in data:
        if key == "vars":
            ck.error("vars", "root 'vars' is not supported; use 'workload'")
        elif key not in _ROOT_KEYS:
            # Ref ignores these (fixtures carry `spec:` and `tracing:`); DSL §9 #26.
            ck.warn(key_path("", key), f"unknown root key '{key}' is ignored")


def _metadata(ck: Checker, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        ck.error("metadata", "'metadata' must be a mapping with a 'name'")
        return {}
    metadata = dict(raw)
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        ck.error("metadata.name", "'metadata.name' is required (a non-empty string)")
        metadata["name"] = ""
    for key in ("path", "description"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            ck.error(key_path("metadata", key), f"'{key}' must be a string")
    path = metadata.get("path") or metadata.get("name")
    if isinstance(path, str) and path:
        problem = catalog_path_problem(path)
        if problem:
            where = "path" if metadata.get("path") else "name"
            ck.error(key_path("metadata", where), f"catalog path {path!r} {problem}")
    if metadata.get("version") is not None:
        # `version: 1.0` reads as a float; the catalog compares versions as text.
        metadata["version"] = str(metadata["version"])
    metadata["tags"] = _tags(ck, metadata.get("tags"))
    for flag in _METADATA_FLAGS:
        if flag in metadata and not isinstance(metadata[flag], bool):
            ck.error(key_path("metadata", flag), f"'{flag}' must be true or false")
    ck.mapping(metadata.get("labels"), "metadata.labels", "'labels'")
    return metadata


# Permissions match paths as text, so a path must have one spelling: no
# "."/".." or empty segments, no backslashes or control characters, and no
# glob characters, which grants reserve for patterns.
_PATH_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\*?\[\]]")
PATH_MAX = 500


def catalog_path_problem(path: str) -> str:
    """What is wrong with ``path`` as a catalog path, or '' if nothing."""
    if len(path) > PATH_MAX:
        return f"is longer than {PATH_MAX} characters"
    if _PATH_FORBIDDEN.search(path):
        return "contains a control character, a backslash or one of * ? [ ]"
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        return "has an empty, '.' or '..' segment (or a leading or trailing '/')"
    if any(segment != segment.strip() for segment in segments):
        return "has a segment starting or ending with a space"
    return ""


def _tags(ck: Checker, tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return tags
    ck.error("metadata.tags", "'tags' must be a string or a list of strings")
    return []


def _workload(ck: Checker, raw: Any) -> dict[str, Any]:
    workload = dict(ck.mapping(raw, "workload", "'workload'"))
    for key in workload:
        if key in BUILTIN_NAMES:
            message = f"workload key '{key}' is hidden by the built-in '{key}'"
            ck.warn(key_path("workload", key), message)
    return workload


def _steps(ck: Checker, raw: Any, refs: Refs) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        ck.error("workflow", "'workflow' must be a non-empty list of steps")
        return []
    steps: list[dict[str, Any]] = []
    first_seen: dict[str, str] = {}
    for index, item in enumerate(raw):
        path = index_path("workflow", index)
        if not isinstance(item, dict):
            ck.error(path, f"a step must be a mapping, not {type_name(item)}")
            continue
        name = step_name(ck, item, path)
        if name is None:
            continue
        if name in first_seen:
            message = f"step name '{name}' is already used by {first_seen[name]}"
            ck.error(key_path(path, "step"), message)
        first_seen.setdefault(name, path)
        step_ck = ck.within(f"step '{name}'")
        steps.append(normalise_step(step_ck, item, path, name, refs))
    return steps


def _workbook(ck: Checker, raw: Any, refs: Refs) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        ck.error("workbook", f"'workbook' must be a list, not {type_name(raw)}")
        return {}
    workbook: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(raw):
        path = index_path("workbook", index)
        found = workbook_task(ck, entry, path, refs)
        if found is None:
            continue
        name, task = found
        if name in workbook:
            ck.error(key_path(path, "name"), f"workbook task '{name}' is defined twice")
        workbook[name] = task
    return workbook


def _executor(ck: Checker, raw: Any, names: set[str]) -> dict[str, Any]:
    executor = ck.mapping(raw, "executor", "'executor'")
    profile = executor.get("profile")
    if profile is not None and profile not in _PROFILES:
        message = f"'{profile}' must be one of " + ", ".join(_PROFILES)
        ck.error("executor.profile", message)
    spec = ck.mapping(executor.get("spec"), "executor.spec", "'spec'")
    no_next_is_error = spec.get("no_next_is_error", False)
    if not isinstance(no_next_is_error, bool):
        ck.error("executor.spec.no_next_is_error", "must be true or false")
        no_next_is_error = False
    return {
        "entry_step": _step_ref(ck, spec, "entry_step", names),
        "final_step": _step_ref(ck, spec, "final_step", names),
        "no_next_is_error": no_next_is_error,
    }


def _step_ref(
    ck: Checker, spec: dict[str, Any], key: str, names: set[str]
) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    path = key_path("executor.spec", key)
    if not isinstance(value, str) or value not in names:
        ck.error(path, f"'{key}' must name a step of the workflow, not {value!r}")
        return None
    return value


def _keychain(ck: Checker, raw: Any) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ck.error("keychain", f"'keychain' must be a list, not {type_name(raw)}")
        return []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        path = index_path("keychain", index)
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            ck.error(path, "a keychain entry must be a mapping with a 'name'")
        elif name in seen:
            ck.error(
                key_path(path, "name"), f"keychain entry '{name}' is defined twice"
            )
        else:
            seen.add(name)
    return raw


def _resolve(
    ck: Checker,
    refs: Refs,
    steps: list[dict[str, Any]],
    workbook: dict[str, dict[str, Any]],
) -> None:
    """Check the names that could only be checked once everything was read."""
    names = {step["name"] for step in steps}
    for ref in refs.arcs:
        if ref.target not in names:
            message = (
                f"arc target step '{ref.target}' does not exist; the arc is dropped"
            )
            ck.within(ref.context).warn(ref.path, message)
    for step in steps:
        step["next"]["arcs"] = [a for a in step["next"]["arcs"] if a["step"] in names]
    labels = {task["label"] for step in steps for task in step["tasks"]}
    labels |= workbook.keys()
    for ref in refs.jumps:
        _check_jump(ck.within(ref.context), ref.path, ref.target, ref.scope, labels)
    for ref in refs.workbook_calls:
        if ref.target not in workbook:
            message = f"the workbook has no task '{ref.target}'"
            ck.within(ref.context).warn(ref.path, message)


def _check_jump(
    ck: Checker, path: str, target: str, scope: frozenset[str], labels: set[str]
) -> None:
    if target in PREVIOUS_TASK or target in scope:
        return
    if target not in labels:
        ck.error(path, f"jump target '{target}' is not a task label in this playbook")
    else:
        # Ref accepts any label of the playbook, but a jump moves within one
        # pipeline, so this one can only fail at run time.
        message = f"jump target '{target}' is not a task of this step's pipeline"
        ck.warn(path, message + "; the jump will fail at run time")
