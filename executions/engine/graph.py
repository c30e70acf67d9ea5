"""Static facts about a playbook's step graph, computed once per version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Graph:
    steps: dict[str, dict[str, Any]]
    upstreams: dict[str, frozenset[str]]
    reach: dict[str, frozenset[str]]
    # Per-step root names its templates read, filled lazily by the engine.
    scope_names: dict[str, frozenset[str] | None] = field(default_factory=dict)
    # Per-step tool kinds (``http+python``), filled lazily by the engine.
    tool_kinds: dict[str, str] = field(default_factory=dict)

    def is_join(self, step: str) -> bool:
        """A step with more than one upstream step waits for all of them."""
        return len(self.upstreams.get(step, ())) > 1


def build_graph(playbook: dict[str, Any]) -> Graph:
    steps = {step["name"]: step for step in playbook["steps"]}
    edges: dict[str, set[str]] = {name: set() for name in steps}
    upstreams: dict[str, set[str]] = {name: set() for name in steps}
    for name, step in steps.items():
        for arc in step["next"]["arcs"]:
            target = arc["step"]
            if target in steps:
                edges[name].add(target)
                upstreams[target].add(name)
    return Graph(
        steps=steps,
        upstreams={k: frozenset(v) for k, v in upstreams.items()},
        reach={name: frozenset(_reachable(name, edges)) for name in steps},
    )


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    """Steps reachable from ``start`` through one or more arcs."""
    seen: set[str] = set()
    frontier = list(edges[start])
    while frontier:
        step = frontier.pop()
        if step not in seen:
            seen.add(step)
            frontier.extend(edges[step])
    return seen
