"""Task policy rules (DSL §4), admission rules (§3.3) and legacy `retry:`."""

from __future__ import annotations

from typing import Any

from catalog.dsl.paths import index_path, key_path
from catalog.dsl.refs import Ref, Refs
from catalog.dsl.report import Checker, type_name
from catalog.dsl.values import condition, duration, set_map

ACTIONS = ("continue", "retry", "jump", "break", "fail")
BACKOFFS = ("none", "fixed", "linear", "exponential")
PREVIOUS_TASK = frozenset({"previous", "prev", "_previous", "@previous"})
DEFAULT_ATTEMPTS = 3
DEFAULT_DELAY = 1.0
RETRY_ON_ERROR = "{{ output.status == 'error' }}"

_THEN_KEYS = frozenset(
    {"do", "attempts", "backoff", "delay", "to", "set", "set_ctx", "set_iter"}
)
_ADMIT_KEYS = frozenset({"allow"})
# A rule taken apart: (when, action mapping, path of the action mapping).
Split = tuple[str | bool | None, dict[str, Any], str]
# Docs-only policy keys: placeholders that are accepted and have no effect.
_POLICY_KEYS = frozenset(
    {"rules", "mode", "on_unmatched", "before", "after", "finally"}
)


def task_rules(
    ck: Checker, policy: Any, path: str, refs: Refs, labels: frozenset[str]
) -> list[dict[str, Any]] | None:
    """The rules of `spec.policy`, or None when the task declares no rules."""
    body = ck.mapping(policy, path, "'policy'")
    ck.unknown_keys(body, path, _POLICY_KEYS, "policy")
    if "rules" not in body:
        return None
    normalised = []
    for rule_path, raw in _rule_list(ck, body["rules"], key_path(path, "rules")):
        split = _split_rule(ck, raw, rule_path, _THEN_KEYS)
        if split is None:
            continue
        rule = _task_rule(ck, *split)
        normalised.append(rule)
        if rule["do"] == "jump" and rule["to"] is not None:
            to_path = key_path(split[2], "to")
            refs.jumps.append(Ref(to_path, rule["to"], ck.context, labels))
    return normalised


def admit_rules(ck: Checker, admit: Any, path: str) -> list[dict[str, Any]] | None:
    """Admission rules of `step.spec.policy.admit`, or None when there is none."""
    if admit is None:
        return None
    body = ck.mapping(admit, path, "'admit'")
    rules = _rule_list(ck, body.get("rules"), key_path(path, "rules"))
    admitted = []
    for rule_path, raw in rules:
        split = _split_rule(ck, raw, rule_path, _ADMIT_KEYS)
        if split is not None:
            when, then, then_path = split
            admitted.append({"when": when, "allow": _allow(ck, then, then_path)})
    return admitted


def legacy_retry(ck: Checker, retry: Any, path: str) -> dict[str, Any] | None:
    """The implicit rule for a task-level `retry:` (DSL §3.6)."""
    if retry is None or retry is False or retry == 0:
        return None
    if retry is True:
        retry = {}
    elif isinstance(retry, int):
        # `retry: 5` is the docs' short form for five attempts.
        retry = {"max_attempts": retry}
    body = ck.mapping(retry, path, "'retry'")
    attempts = body.get("max_attempts", body.get("attempts", DEFAULT_ATTEMPTS))
    backoff = body.get("backoff")
    delay = body.get("delay", body.get("initial_delay", DEFAULT_DELAY))
    return {
        "when": RETRY_ON_ERROR,
        "do": "retry",
        "attempts": _attempts(ck, attempts, key_path(path, "max_attempts")),
        # Only the named strategies carry over; multipliers and maps do not.
        "backoff": backoff if backoff in BACKOFFS else "none",
        "delay": duration(ck, delay, key_path(path, "delay"), zero_ok=True) or 0.0,
        "to": None,
        "set": {},
    }


def _rule_list(ck: Checker, rules: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, rule mapping) pairs; non-mapping rules are reported and dropped."""
    if rules is None:
        return []
    if not isinstance(rules, list):
        ck.error(path, f"'rules' must be a list, not {type_name(rules)}")
        return []
    valid = []
    for index, raw in enumerate(rules):
        rule_path = index_path(path, index)
        if isinstance(raw, dict):
            valid.append((rule_path, raw))
        else:
            ck.error(rule_path, f"a rule must be a mapping, not {type_name(raw)}")
    return valid


def _split_rule(
    ck: Checker, raw: dict[str, Any], path: str, action_keys: frozenset[str]
) -> Split | None:
    """The parts of a rule written in any accepted shape.

    `action_keys` are the keys a `then` block holds; written beside `when` or
    inside `else` without a `then`, they form the shorthand of DSL §4.
    """
    if "expr" in raw:
        ck.error(key_path(path, "expr"), "'expr' is not supported; use 'when'")
    for key in raw:
        if key not in {"when", "else", "then", "expr"} | action_keys:
            ck.warn(key_path(path, key), f"unknown rule key '{key}' is ignored")
    if "else" in raw:
        if "when" in raw:
            ck.error(path, "a rule has either 'when' or 'else', not both")
            return None
        return _split_else(ck, raw, path, action_keys)
    when = condition(ck, raw.get("when"), key_path(path, "when"))
    then = _then_of(ck, raw, path, action_keys)
    return None if then is None else (when, *then)


def _split_else(
    ck: Checker, raw: dict[str, Any], path: str, action_keys: frozenset[str]
) -> Split | None:
    else_path = key_path(path, "else")
    body = raw["else"]
    if body is None:
        # `else:` with `then:` mis-indented beside it (v10_canonical_example).
        then = _then_of(ck, raw, path, action_keys)
    elif not isinstance(body, dict):
        ck.error(else_path, f"'else' must be a mapping, not {type_name(body)}")
        return None
    elif "then" in raw or action_keys & raw.keys():
        ck.error(path, "write the action inside 'else', not beside it")
        return None
    else:
        for key in body:
            if key not in {"then"} | action_keys:
                ck.warn(key_path(else_path, key), f"unknown key '{key}' is ignored")
        then = _then_of(ck, body, else_path, action_keys)
    return None if then is None else (None, *then)


def _then_of(
    ck: Checker, holder: dict[str, Any], path: str, action_keys: frozenset[str]
) -> tuple[dict[str, Any], str] | None:
    """The action block: `then: {...}`, or the shorthand keys written in place."""
    shorthand = {key: holder[key] for key in holder if key in action_keys}
    if "then" in holder:
        if shorthand:
            ck.error(path, "write the action under 'then' or beside 'when', not both")
            return None
        then_path = key_path(path, "then")
        then = holder["then"]
        if not isinstance(then, dict):
            ck.error(then_path, f"'then' must be a mapping, not {type_name(then)}")
            return None
        return then, then_path
    if shorthand:
        return shorthand, path
    ck.error(path, "a rule needs an action, e.g. 'then: {do: continue}'")
    return None


def _task_rule(
    ck: Checker, when: str | bool | None, then: dict[str, Any], then_path: str
) -> dict[str, Any]:
    for key in then:
        if key not in _THEN_KEYS:
            ck.warn(key_path(then_path, key), f"unknown action key '{key}' is ignored")
    action = _action(ck, then.get("do"), key_path(then_path, "do"))
    target = _target(ck, then, then_path, action)
    attempts = then.get("attempts", DEFAULT_ATTEMPTS)
    delay = then.get("delay", DEFAULT_DELAY)
    return {
        "when": when,
        "do": action,
        "attempts": _attempts(ck, attempts, key_path(then_path, "attempts")),
        "backoff": _backoff(ck, then.get("backoff", "none"), then_path),
        "delay": duration(ck, delay, key_path(then_path, "delay"), zero_ok=True) or 0.0,
        "to": target,
        "set": _writes(ck, then, then_path),
    }


def _action(ck: Checker, action: Any, path: str) -> str:
    if action is None:
        ck.error(path, "'do' is required (one of " + ", ".join(ACTIONS) + ")")
        return "fail"
    if action not in ACTIONS:
        ck.error(path, f"'{action}' must be one of " + ", ".join(ACTIONS))
        return "fail"
    return str(action)


def _target(ck: Checker, then: dict[str, Any], path: str, action: str) -> str | None:
    target = then.get("to")
    to_path = key_path(path, "to")
    if target is None:
        if action == "jump":
            ck.error(path, "'jump' needs 'to' (a task label or 'previous')")
        return None
    if not isinstance(target, str) or not target:
        ck.error(to_path, "'to' must be a task label")
        return None
    if action != "jump":
        ck.warn(to_path, f"'to' is ignored unless 'do' is 'jump' (here '{action}')")
    return target


def _attempts(ck: Checker, attempts: Any, path: str) -> int:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        ck.error(path, f"'attempts' must be an integer >= 1, not {attempts!r}")
        return DEFAULT_ATTEMPTS
    return attempts


def _backoff(ck: Checker, backoff: Any, path: str) -> str:
    if backoff not in BACKOFFS:
        message = f"'{backoff}' must be one of " + ", ".join(BACKOFFS)
        ck.error(key_path(path, "backoff"), message)
        return "none"
    return str(backoff)


def _writes(ck: Checker, then: dict[str, Any], path: str) -> dict[str, Any]:
    """`set`, with the docs' `set_ctx`/`set_iter` folded in as `ctx.`/`iter.` keys."""
    writes = set_map(ck, then.get("set"), key_path(path, "set"))
    for alias, scope in (("set_ctx", "ctx"), ("set_iter", "iter")):
        alias_path = key_path(path, alias)
        for name, value in set_map(ck, then.get(alias), alias_path).items():
            key = f"{scope}.{name}"
            if key in writes:
                ck.error(key_path(alias_path, name), f"'{key}' is set twice")
            writes[key] = value
    return writes


def _allow(ck: Checker, then: dict[str, Any], path: str) -> bool:
    allow = then.get("allow")
    if not isinstance(allow, bool):
        ck.error(key_path(path, "allow"), "'allow' is required and must be true/false")
        return False
    for key in then:
        if key != "allow":
            ck.warn(key_path(path, key), f"unknown admission key '{key}' is ignored")
    return allow
