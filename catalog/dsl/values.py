"""Checks for the small value types the language shares: conditions, set maps,
durations."""

from __future__ import annotations

import re
from typing import Any

from catalog.dsl.paths import key_path
from catalog.dsl.report import Checker, type_name

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Strings that §10.2 treats as false; a bare one is a deliberate constant.
_CONSTANT_WORDS = frozenset(
    {"true", "false", "yes", "no", "0", "1", "none", "null", ""}
)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def parse_seconds(value: Any) -> float | None:
    """Seconds from a number or a string like "30s", "5m", "1h"; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    amount, unit = match.groups()
    return float(amount) * _UNIT_SECONDS[unit or "s"]


def duration(
    ck: Checker, value: Any, path: str, *, zero_ok: bool = False
) -> float | None:
    """Checked seconds for a timeout or delay; reports and returns None if invalid."""
    seconds = parse_seconds(value)
    if seconds is None:
        hint = "a number of seconds or a string like '30s', '5m', '1h'"
        if is_template(value):
            ck.error(path, f"must be a literal duration, not a template; use {hint}")
        else:
            ck.error(path, f"{value!r} is not a duration; use {hint}")
        return None
    if seconds == 0 and not zero_ok:
        ck.error(path, "must be greater than 0")
        return None
    return seconds


def condition(ck: Checker, value: Any, path: str) -> str | bool | None:
    """A `when` value: a template string, a boolean, or None (always true)."""
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, str):
        ck.error(
            path, f"must be a template string or a boolean, not {type_name(value)}"
        )
        return None
    if not is_template(value) and value.strip().lower() not in _CONSTANT_WORDS:
        # A condition written without {{ }} is a non-empty string: always true.
        ck.warn(path, f"'{value}' has no {{{{ }}}} template, so it is always true")
    return value


def set_map(ck: Checker, value: Any, path: str) -> dict[str, Any]:
    """A `set` map of scoped writes (`ctx.x`, `iter.y`, bare `z`)."""
    writes = ck.mapping(value, path, "'set'")
    for key in writes:
        if not isinstance(key, str) or not key:
            ck.error(key_path(path, key), "a 'set' key must be a non-empty string")
    return dict(writes)
