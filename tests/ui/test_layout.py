"""Where the run page draws the step graph and the timeline's bars, and how
it writes durations (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executions.layout import MAX_LANES, step_graph, timeline
from executions.templatetags.runs import duration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def step(name: str, *targets: str, when: str | None = None, loop: bool = False) -> dict:
    arcs = [{"step": t, "when": when} for t in targets]
    return {"name": name, "next": {"arcs": arcs}, "loop": {"in": []} if loop else None}


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def test_steps_stand_in_columns_by_their_distance_from_the_entry() -> None:
    playbook = {
        "entry_step": "start",
        "steps": [
            step("start", "a", "b"),
            step("a", "end"),
            step("b", "end", when="{{ x }}", loop=True),
            step("end"),
            step("orphan"),
        ],
    }
    graph = step_graph(playbook, {"start": "completed", "a": "running"})
    x = {node.name: node.x for node in graph.nodes}
    assert x["start"] < x["a"] == x["b"] < x["end"] < x["orphan"]
    status = {node.name: node.status for node in graph.nodes}
    assert status == {
        "start": "completed",
        "a": "running",
        "b": "pending",
        "end": "pending",
        "orphan": "pending",
    }
    assert [n.loop for n in graph.nodes if n.name == "b"] == [True]
    conditional = {(e.source, e.target): e.conditional for e in graph.edges}
    assert conditional == {
        ("start", "a"): False,
        ("start", "b"): False,
        ("a", "end"): False,
        ("b", "end"): True,
    }
    assert graph.width > x["orphan"] and graph.height > 0


def test_an_arc_back_to_an_earlier_step_is_drawn_below_the_boxes() -> None:
    playbook = {"entry_step": "a", "steps": [step("a", "b"), step("b", "a")]}
    graph = step_graph(playbook, {})
    back = next(e for e in graph.edges if e.source == "b")
    forward = next(e for e in graph.edges if e.source == "a")
    assert forward.path.startswith("M172,32 C")
    # The curve's control points sit below both boxes (y > 12 + 40).
    controls = back.path.split("C", 1)[1].split()[:2]
    assert all(int(point.split(",")[1]) > 52 for point in controls)


def test_bars_are_placed_as_fractions_of_the_run() -> None:
    steps = [
        {"step": "a", "status": "completed", "started_at": at(0), "ended_at": at(250)},
        {"step": "b", "status": "running", "started_at": at(500), "ended_at": None},
        {"step": "c", "status": "pending", "started_at": None, "ended_at": None},
    ]
    drawn = timeline(T0, at(1000), steps, {})
    assert [(r.bar.label, r.bar.left, r.bar.width) for r in drawn.rows] == [
        ("a", 0.0, 25.0),
        ("b", 50.0, 50.0),
    ]
    assert drawn.rows[0].bar.duration_ms == 250.0
    assert drawn.rows[1].bar.duration_ms is None and drawn.span_ms == 1000.0


def test_chunks_that_overlap_go_to_separate_lanes() -> None:
    steps = [
        {
            "step": "loop",
            "status": "completed",
            "started_at": at(0),
            "ended_at": at(100),
        }
    ]
    chunks = {
        "loop": [
            {
                "label": f"iterations {i}",
                "status": "completed",
                "start": at(s),
                "end": at(e),
            }
            for i, (s, e) in enumerate([(0, 40), (10, 50), (40, 80), (60, 90)])
        ]
    }
    row = timeline(T0, at(100), steps, chunks).rows[0]
    lanes = [[bar.label for bar in lane] for lane in row.lanes]
    assert lanes == [["iterations 0", "iterations 2"], ["iterations 1", "iterations 3"]]
    assert row.chunk_count == 4


def test_lanes_stop_at_a_bound_however_parallel_the_loop() -> None:
    steps = [
        {"step": "loop", "status": "running", "started_at": at(0), "ended_at": None}
    ]
    chunks = {
        "loop": [
            {"label": str(i), "status": "completed", "start": at(1), "end": at(9)}
            for i in range(40)
        ]
    }
    row = timeline(T0, at(10), steps, chunks).rows[0]
    assert len(row.lanes) == MAX_LANES and row.chunk_count == 40


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, ""),
        (57.4, "57 ms"),
        (1840, "1.8 s"),
        (184_000, "3 min 4 s"),
        (7_500_000, "2 h 5 min"),
    ],
)
def test_durations_read_as_a_person_says_them(ms: float | None, text: str) -> None:
    assert duration(ms) == text
