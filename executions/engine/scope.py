"""The names a template sees (DSL section 2.1), built the same way everywhere.

One variable dict ``V`` (the merged workload, ctx writes and step results)
is exposed as ``workload``, as ``ctx`` and as top-level names. Built-in names
(``execution_id``, ``job``, ``iter``, ``output``...) win over a variable of
the same name. Only the names a template references are resolved, so a large
value stored by reference is read only when something uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from executions import templating

WHOLE_SCOPE_NAMES = frozenset({"ctx", "workload", "context", "vars"})
BUILTIN_NAMES = frozenset(
    {"execution_id", "catalog_id", "job", "workload", "ctx", "iter", "output",
     "outcome", "event", "env", "args", "loop", "loop_index", "error"}
)


def needed_names(values: Iterable[Any]) -> set[str]:
    names: set[str] = set()
    for value in values:
        names |= templating.referenced_names(value)
    return names


class Scope:
    """Builds render contexts over a variable dict whose values may be refs."""

    def __init__(
        self,
        variables: dict[str, Any],
        resolve: Callable[[Any], Any],
        *,
        step_names: Iterable[str] = (),
        base: dict[str, Any] | None = None,
    ) -> None:
        self.variables = variables
        self.resolve = resolve
        self.step_names = frozenset(step_names)
        self.base = base or {}

    def value(self, name: str) -> Any:
        value = self.resolve(self.variables[name])
        if name in self.step_names:
            return templating.wrap_result(value)
        return value

    def whole(self) -> dict[str, Any]:
        return {name: self.value(name) for name in self.variables}

    def context(
        self, templates: Iterable[Any], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        names = needed_names(templates)
        if names & WHOLE_SCOPE_NAMES:
            context = self.whole()
            context["ctx"] = context["workload"] = dict(context)
        else:
            context = {n: self.value(n) for n in names if n in self.variables}
        context.update(self.base)
        if extra:
            context.update(extra)
        return context


def base_names(execution_id: str, catalog_id: str, env: dict[str, Any]) -> dict:
    return {
        "execution_id": execution_id,
        "catalog_id": catalog_id,
        "job": {"uuid": execution_id, "execution_id": execution_id, "id": execution_id},
        "env": env,
    }


def split_set_key(key: str) -> tuple[str, str]:
    """``ctx.x`` / ``step.x`` / bare ``x`` write ctx; ``iter.x`` writes iter."""
    scope, _, name = key.partition(".")
    if name and scope in ("ctx", "step", "iter", "args", "vars"):
        return ("iter" if scope == "iter" else "ctx"), name
    return "ctx", key
