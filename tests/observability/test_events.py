"""Events carry what analysis needs: timings, worker, pool, attempt, tool
kind, sizes and error details, on the events a run writes anyway."""

from __future__ import annotations

from rest_framework.test import APIClient

from executions.models import Event
from tests.grants import grant
from tests.observability.conftest import Run

RETRIED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: retried, path: tests/obs/retried}
workload: {names: [a, b, c]}
workflow:
  - step: start
    tool:
      kind: python
      input: {attempt: "{{ _attempt }}"}
      code: |
        print("attempt", attempt)
        if attempt < 2:
            raise RuntimeError("flaky")
        result = {"text": "x" * 500}
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'error' }}"
              then: {do: retry, attempts: 3, delay: 0}
    next:
      arcs:
        - step: each
  - step: each
    loop: {in: "{{ names }}", iterator: name}
    tool:
      kind: python
      input: {name: "{{ iter.name }}"}
      code: |
        print("item", name)
        result = {"name": name}
"""

FAILING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: failing, path: tests/obs/failing}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        raise ValueError("the billing API said no")
"""


def test_a_step_event_carries_its_timing_worker_pool_attempt_tool_and_sizes(
    run: Run,
) -> None:
    execution_id = run(RETRIED)

    done = Event.objects.get(execution_id=execution_id, kind="call.done", step="start")
    assert done.started_at is not None and done.ended_at is not None
    assert done.started_at <= done.ended_at
    assert done.duration_ms is not None and done.duration_ms > 0
    assert done.worker_id == "embedded" and done.pool == "default"
    assert done.tool == "python" and done.attempt == 2
    assert done.input_bytes and done.input_bytes > 0
    assert done.result_bytes and done.result_bytes > 500
    tasks = done.payload["tasks"]
    assert [(t["kind"], t["attempt"], t["status"]) for t in tasks] == [
        ("python", 1, "error"),
        ("python", 2, "ok"),
    ]


def test_loop_chunk_and_command_events_carry_their_measures_too(run: Run) -> None:
    execution_id = run(RETRIED)

    chunks = Event.objects.filter(execution_id=execution_id, kind="loop.chunk.done")
    assert chunks and all(
        c.tool == "python" and c.duration_ms and c.started_at and c.worker_id
        for c in chunks
    )
    [loop] = Event.objects.filter(execution_id=execution_id, kind="loop.done")
    assert loop.started_at <= loop.ended_at and loop.duration_ms > 0
    assert loop.started_at <= chunks[0].started_at
    issued = Event.objects.filter(execution_id=execution_id, kind="command.issued")
    assert issued and all(e.pool == "default" and e.tool == "python" for e in issued)
    # Who ran a command is said by its finishing event, not the next issue.
    assert all(e.worker_id == "" for e in issued)


def test_the_event_count_stays_at_two_per_step(run: Run) -> None:
    execution_id = run(FAILING)

    kinds = list(
        Event.objects.filter(execution_id=execution_id)
        .order_by("seq")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "execution.started",
        "command.issued",
        "call.error",
        "workflow.failed",
    ]


def test_an_error_event_says_its_kind_message_and_whether_it_is_retryable(
    run: Run,
) -> None:
    execution_id = run(FAILING)

    error = Event.objects.get(execution_id=execution_id, kind="call.error").error
    assert error["kind"] and error["retryable"] is False
    assert "the billing API said no" in error["message"]


def test_the_api_returns_a_runs_captured_log_lines(run: Run, db: None) -> None:
    from django.contrib.auth.models import User

    from accounts import tokens

    execution_id = run(RETRIED)
    user = User.objects.create_user("reader", password="pw")
    grant(user)  # may view every path
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.mint(user, 't')[1]}")

    body = client.get(f"/api/executions/{execution_id}/logs/").json()
    by_step = {}
    for entry in body["results"]:
        by_step.setdefault(entry["step"], []).extend(entry["lines"])
    assert any("attempt 1" in line for line in by_step["start"])
    assert any("attempt 2" in line for line in by_step["start"])
    assert sorted(line.split()[-1] for line in by_step["each"]) == ["a", "b", "c"]

    only = client.get(f"/api/executions/{execution_id}/logs/?step=each").json()
    assert {entry["step"] for entry in only["results"]} == {"each"}
    assert client.get("/api/executions/nope/logs/").status_code == 404
