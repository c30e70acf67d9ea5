"""Where the run page draws things: the step graph laid out in columns by
distance from the entry step, and the timeline's bars as fractions of the
run's span. Pure: plain data in, plain data out, no Django."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NODE_W, NODE_H = 160, 40
GAP_X, GAP_Y, MARGIN = 70, 24, 12


@dataclass
class Node:
    name: str
    x: int
    y: int
    loop: bool
    status: str = "pending"

    @property
    def label(self) -> str:
        return self.name if len(self.name) <= 20 else self.name[:19] + "…"


@dataclass
class Edge:
    source: str
    target: str
    path: str
    conditional: bool


@dataclass
class StepGraph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def step_graph(playbook: dict[str, Any], statuses: dict[str, str]) -> StepGraph:
    """The playbook's steps in columns (a step's column is its shortest
    distance from the entry; steps no arc reaches go last), each arc a curve
    from its step's right side to its target's left side."""
    steps = {step["name"]: step for step in playbook.get("steps", [])}
    columns = _columns(steps, playbook.get("entry_step", ""))

    nodes: dict[str, Node] = {}
    for column, names in enumerate(columns):
        for row, name in enumerate(names):
            nodes[name] = Node(
                name=name,
                x=MARGIN + column * (NODE_W + GAP_X),
                y=MARGIN + row * (NODE_H + GAP_Y),
                loop=bool(steps[name].get("loop")),
                status=statuses.get(name, "pending"),
            )

    edges = [
        Edge(
            name,
            arc["step"],
            _curve(nodes[name], nodes[arc["step"]]),
            bool(arc.get("when")),
        )
        for name, step in steps.items()
        for arc in step["next"]["arcs"]
        if arc["step"] in nodes
    ]
    rows = max((len(names) for names in columns), default=0)
    return StepGraph(
        nodes=list(nodes.values()),
        edges=edges,
        width=2 * MARGIN + len(columns) * (NODE_W + GAP_X) - GAP_X,
        height=2 * MARGIN + rows * (NODE_H + GAP_Y) - GAP_Y,
    )


def _columns(steps: dict[str, dict[str, Any]], entry: str) -> list[list[str]]:
    depth: dict[str, int] = {}
    queue = deque([entry] if entry in steps else [])
    if queue:
        depth[entry] = 0
    while queue:
        name = queue.popleft()
        for arc in steps[name]["next"]["arcs"]:
            target = arc["step"]
            if target in steps and target not in depth:
                depth[target] = depth[name] + 1
                queue.append(target)

    last = max(depth.values(), default=-1) + 1
    columns: list[list[str]] = [[] for _ in range(last)]
    for name in steps:  # the playbook's order within a column
        if name in depth:
            columns[depth[name]].append(name)
    unreached = [name for name in steps if name not in depth]
    if unreached:
        columns.append(unreached)
    return columns


def _curve(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    if target.x <= source.x:
        # An arc back (a retry loop, a cycle): around, below the boxes.
        below = max(source.y, target.y) + NODE_H + GAP_Y // 2
        return f"M{x1},{y1} C{x1 + 40},{below} {x2 - 40},{below} {x2},{y2}"
    bend = (x2 - x1) // 2
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


# -- the timeline ---------------------------------------------------------------


@dataclass
class Bar:
    label: str
    status: str
    left: float  # percent of the span
    width: float
    start: datetime
    end: datetime | None

    @property
    def duration_ms(self) -> float | None:
        if self.end is None:
            return None
        return round((self.end - self.start).total_seconds() * 1000, 1)


@dataclass
class Row:
    """A step's bar, and under a loop step its chunks of iterations, in
    lanes: chunks that ran at the same time sit in different lanes."""

    bar: Bar
    lanes: list[list[Bar]] = field(default_factory=list)

    @property
    def chunk_count(self) -> int:
        return sum(len(lane) for lane in self.lanes)


@dataclass
class Timeline:
    rows: list[Row]
    start: datetime
    end: datetime

    @property
    def span_ms(self) -> float:
        return round((self.end - self.start).total_seconds() * 1000, 1)


# A parallel loop's chunks stack in at most this many lanes.
MAX_LANES = 16


def timeline(
    start: datetime,
    end: datetime,
    steps: list[dict[str, Any]],
    chunks: dict[str, list[dict[str, Any]]],
) -> Timeline:
    """Bars for ``steps`` (``step``, ``status``, ``started_at``, ``ended_at``;
    a step still running ends at ``end``) and under each loop step its
    chunks of iterations (``label``, ``status``, ``start``, ``end``)."""
    span = max((end - start).total_seconds(), 0.001)

    def place(label: str, status: str, begin: datetime, finish: datetime | None) -> Bar:
        left = max(0.0, (begin - start).total_seconds() / span * 100)
        right = ((finish or end) - start).total_seconds() / span * 100
        width = max(0.2, min(100.0, right) - left)
        return Bar(label, status, round(left, 2), round(width, 2), begin, finish)

    rows = []
    for step in steps:
        if step["started_at"] is None:
            continue
        bar = place(step["step"], step["status"], step["started_at"], step["ended_at"])
        spans = sorted(chunks.get(step["step"], []), key=lambda c: c["start"])
        bars = [place(c["label"], c["status"], c["start"], c["end"]) for c in spans]
        rows.append(Row(bar, _lanes(bars)))
    return Timeline(rows=rows, start=start, end=end)


def _lanes(bars: list[Bar]) -> list[list[Bar]]:
    """Each bar (by start) into the first lane free by then."""
    lanes: list[list[Bar]] = []
    for bar in bars:
        free = next(
            (lane for lane in lanes if lane[-1].left + lane[-1].width <= bar.left),
            None,
        )
        if free is None and len(lanes) < MAX_LANES:
            free = []
            lanes.append(free)
        (free if free is not None else lanes[-1]).append(bar)
    return lanes
