"""The engine's incrementally maintained state always equals a fresh fold of
its event log, whatever the playbook shape and the order reports arrive in.

Playbooks are generated (random DAGs of noop steps, some failing by policy,
some looping in parallel or in sequence, some joining) and driven by a
simulated worker that completes outstanding commands in a random order,
with every event and state passing through JSON as they would in the
database.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executions.engine.decide import CHUNK_REFS_IN_STATE, Engine
from executions.engine.state import apply, fold, initial_state
from executions.engine.values import MemoryBlobStore, Values, roundtrip
from workers.runner import CommandRunner


def _task(label: str, fail: bool) -> dict:
    rules = [{"when": None, "do": "fail", "attempts": 3, "backoff": "none",
              "delay": 0.0, "to": None, "set": {}}] if fail else []
    return {"label": label, "kind": "noop", "config": {}, "rules": rules,
            "has_policy": fail, "set": {"ctx.seen_" + label: "{{ execution_id }}"},
            "timeout": None}


@st.composite
def playbooks(draw: st.DrawFn) -> dict:
    count = draw(st.integers(min_value=1, max_value=6))
    names = [f"s{i}" for i in range(count)]
    steps = []
    for i, name in enumerate(names):
        later = names[i + 1:]
        targets = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) \
            if later else []
        arcs = [{"step": t, "when": draw(st.sampled_from(
                    [None, "{{ true }}", "{{ false }}", "{{ event.name == 'call.error' }}"])),
                 "set": {}, "args": {}} for t in targets]
        loop = None
        if draw(st.booleans()):
            loop = {"in": list(range(draw(st.integers(0, 12)))), "iterator": "x",
                    "mode": draw(st.sampled_from(["sequential", "parallel"])),
                    "max_in_flight": draw(st.integers(1, 4)), "chunk": None}
        steps.append({
            "name": name, "desc": None, "line": i + 1, "single": True,
            "tasks": [_task(f"{name}_task", draw(st.booleans()) and i > 0)],
            "loop": loop, "input": {}, "set": {},
            "next": {"mode": draw(st.sampled_from(["exclusive", "inclusive"])),
                     "on_no_match": "complete", "arcs": arcs},
            "admit": None, "timeout": None,
        })
    return {"api_version": "noetl.io/v2", "name": "gen", "path": "gen", "version": None,
            "description": None, "workload": {"w": 1}, "entry_step": "s0",
            "final_step": None, "no_next_is_error": False, "steps": steps,
            "workbook": {}, "keychain": [], "warnings": []}


def drive(playbook: dict, seed: int, values: Values | None = None
          ) -> tuple[dict, list[dict]]:
    rng = random.Random(seed)
    values = values or Values(MemoryBlobStore())
    state = initial_state()
    events: list[dict] = []
    queue: list[dict] = []

    def absorb(engine: Engine) -> dict:
        events.extend(roundtrip(engine.decision.events))
        queue.extend(roundtrip(engine.decision.commands))
        return roundtrip(engine.state)

    engine = Engine(playbook, state, values, execution_id="run")
    engine.start({}, playbook_ref={"path": "gen"})
    state = absorb(engine)
    steps = {s["name"]: s for s in playbook["steps"]}
    for _ in range(5000):
        if not queue:
            break
        command = queue.pop(rng.randrange(len(queue)))
        task = {"command_id": command["id"], "delivery": 1, "execution_id": "run",
                "step_def": steps[command["step"]], "step_names": list(steps),
                **command["payload"]}
        report = CommandRunner(task, values, credential=lambda n: {},
                               new_id=lambda: "child").run()
        engine = Engine(playbook, state, values, execution_id="run")
        engine.on_report(roundtrip(report))
        state = absorb(engine)
    return state, events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(playbooks(), st.integers(0, 10_000))
def test_incremental_state_equals_fold_of_events(playbook: dict, seed: int) -> None:
    state, events = drive(playbook, seed)
    assert state == roundtrip(fold(events))
    assert state["status"] in ("completed", "failed")
    terminal = [e for e in events if e["kind"].startswith(("workflow.", "execution.c"))]
    assert len(terminal) == 1 and terminal[0] is events[-1]


@settings(max_examples=40, deadline=None)
@given(playbooks(), st.integers(0, 10_000))
def test_every_issued_command_is_finished_exactly_once(playbook: dict, seed: int) -> None:
    _, events = drive(playbook, seed)
    issued = [e["command_id"] for e in events if e["kind"] == "command.issued"]
    finished = [e["command_id"] for e in events
                if e["kind"] in ("call.done", "call.error", "loop.chunk.done")
                and e["command_id"]]
    assert sorted(issued) == sorted(finished)
    assert len(set(issued)) == len(issued)


def test_join_step_runs_once_after_both_branches() -> None:
    playbook = {
        "api_version": "noetl.io/v2", "name": "j", "path": "j", "version": None,
        "description": None, "workload": {}, "entry_step": "a", "final_step": None,
        "no_next_is_error": False, "workbook": {}, "keychain": [], "warnings": [],
        "steps": [
            {"name": n, "desc": None, "line": 1, "single": True,
             "tasks": [_task(f"{n}_t", False)], "loop": None, "input": {}, "set": {},
             "next": {"mode": "inclusive", "on_no_match": "complete",
                      "arcs": [{"step": t, "when": None, "set": {}, "args": {}}
                               for t in targets]},
             "admit": None, "timeout": None}
            for n, targets in [("a", ["b", "c"]), ("b", ["d"]), ("c", ["d"]), ("d", [])]
        ],
    }
    for seed in range(10):
        state, events = drive(playbook, seed)
        assert state["steps"]["d"]["runs"] == 1
        starts = [i for i, e in enumerate(events)
                  if e["kind"] == "command.issued" and e["step"] == "d"]
        ends = [i for i, e in enumerate(events)
                if e["kind"] == "call.done" and e["step"] in ("b", "c")]
        assert starts[0] > max(ends)


def test_a_loop_of_many_chunks_keeps_a_bounded_state_and_its_results_in_order() -> None:
    items = 300
    step = {
        "name": "fan", "desc": None, "line": 1, "single": True,
        "tasks": [{"label": "fan_task", "kind": "python", "rules": [],
                   "config": {"code": "result = x", "input": {"x": "{{ iter.x }}"}},
                   "has_policy": False, "set": {}, "timeout": None}],
        # One iteration per chunk: 300 chunks finishing in a random order.
        "loop": {"in": list(range(items)), "iterator": "x", "mode": "parallel",
                 "max_in_flight": 8, "chunk": 1},
        "input": {}, "set": {}, "admit": None, "timeout": None,
        "next": {"mode": "exclusive", "on_no_match": "complete", "arcs": []},
    }
    playbook = {
        "api_version": "noetl.io/v2", "name": "many", "path": "many", "version": None,
        "description": None, "workload": {}, "entry_step": "fan", "final_step": None,
        "no_next_is_error": False, "workbook": {}, "keychain": [], "warnings": [],
        "steps": [step],
    }
    values = Values(MemoryBlobStore())

    state, events = drive(playbook, 7, values)

    assert state == roundtrip(fold(events))
    assert state["status"] == "completed"
    folded, most = initial_state(), 0
    for ev in events:
        folded = apply(folded, ev)
        loop = folded["loops"].get("fan")
        most = max(most, len(loop["chunks"]) if loop else 0)
    assert most <= CHUNK_REFS_IN_STATE
    [done] = [e for e in events if e["kind"] == "loop.done"]
    assert values.resolve(done["payload"]["result"])["results"] == list(range(items))


def test_a_failed_loop_names_its_first_failing_iteration_and_why() -> None:
    step = {
        "name": "convert", "desc": None, "line": 1, "single": True,
        "tasks": [{"label": "convert_task", "kind": "python", "rules": [],
                   "config": {"code": "if x >= 2:\n    raise ValueError(f'bad {x}')\n"
                                      "result = x",
                              "input": {"x": "{{ iter.x }}"}},
                   "has_policy": False, "set": {}, "timeout": None}],
        "loop": {"in": [0, 1, 2, 3], "iterator": "x", "mode": "sequential",
                 "max_in_flight": 1, "chunk": None},
        "input": {}, "set": {}, "admit": None, "timeout": None,
        "next": {"mode": "exclusive", "on_no_match": "complete", "arcs": []},
    }
    playbook = {
        "api_version": "noetl.io/v2", "name": "conv", "path": "conv", "version": None,
        "description": None, "workload": {}, "entry_step": "convert",
        "final_step": None,
        "no_next_is_error": False, "workbook": {}, "keychain": [], "warnings": [],
        "steps": [step],
    }

    state, events = drive(playbook, 3)

    assert state["status"] == "failed"
    error = events[-1]["payload"]["error"]
    assert error["step"] == "convert"
    assert error["message"].startswith("2 of 4 iterations failed; first failing "
                                       "iteration 2: ")
    assert "ValueError: bad 2" in error["message"]
    assert error["first_index"] == 2
