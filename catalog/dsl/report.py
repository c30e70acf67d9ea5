"""Collects errors and warnings while a playbook is checked."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from catalog.dsl.errors import Issue
from catalog.dsl.paths import key_path, parent_path

# Template names the runtime binds itself (DSL §10.8); a step or workload key
# with one of these names is shadowed by the built-in.
BUILTIN_NAMES = frozenset(
    {"execution_id", "job", "catalog_id", "workload", "ctx", "iter", "output", "event"}
)


@dataclass
class Checker:
    """Where problems go. `within` gives a view that names a step in messages."""

    lines: dict[str, int]
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    context: str | None = None
    # The tool kinds this installation runs; others are accepted with a
    # warning (DSL 10.22). None skips the check (pure parsing, tests).
    known_kinds: frozenset[str] | None = None
    # The line each scalar's text starts on (see load_yaml).
    starts: dict[str, int] = field(default_factory=dict)

    def within(self, context: str | None) -> Checker:
        # The copy shares the issue lists, so nothing has to be merged back.
        return replace(self, context=context)

    def line(self, path: str) -> int | None:
        """The line of `path`, or of its nearest written ancestor."""
        current: str | None = path
        while current is not None:
            if current in self.lines:
                return self.lines[current]
            current = parent_path(current)
        return None

    def error(self, path: str, message: str) -> None:
        self.errors.append(Issue(path, self.line(path), message, self.context))

    def warn(self, path: str, message: str, line: int | None = None) -> None:
        where = line if line is not None else self.line(path)
        self.warnings.append(Issue(path, where, message, self.context))

    def mapping(self, value: Any, path: str, what: str) -> dict[str, Any]:
        """`value` if it is a mapping, else {} (after an error unless absent)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"{what} must be a mapping, not {type_name(value)}")
            return {}
        return value

    def unknown_keys(
        self, data: dict[str, Any], path: str, known: frozenset[str], what: str
    ) -> None:
        for key in data:
            if key not in known:
                self.warn(key_path(path, key), f"unknown {what} key '{key}' is ignored")


def type_name(value: Any) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)
