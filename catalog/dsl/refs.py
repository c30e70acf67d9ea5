"""Names used before they can be checked: arc targets, jump targets, workbook
tasks. They are recorded while parsing and resolved once the whole playbook is
known."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ref:
    path: str
    target: str
    context: str | None
    # For a jump: the labels of the pipeline the rule belongs to.
    scope: frozenset[str] = frozenset()


@dataclass
class Refs:
    arcs: list[Ref] = field(default_factory=list)
    jumps: list[Ref] = field(default_factory=list)
    workbook_calls: list[Ref] = field(default_factory=list)
