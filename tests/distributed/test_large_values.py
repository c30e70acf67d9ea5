"""No size cliffs in distributed mode (DESIGN-NOTES R11, R3, R4): over the
REST API, gunicorn and two workers, a 50 MB step result and a 100 000-iteration
loop aggregate run through; the worker uploads the large values as blobs
before it reports, so the event log, the run's state row and the command rows
stay small, and the next step reads the values back by reference."""

from __future__ import annotations

import json

import pytest

from tests.distributed.conftest import REPO, Driver

pytestmark = pytest.mark.xdist_group("stack")
PLAYBOOKS = REPO / "tests" / "playbooks"
# Values above 32 KB go to a blob (R11); an event carries at most a few
# such references and their previews, and the state row is O(steps) (R3).
SMALL_ROW = 64 * 1024


def row_sizes(stack: Driver, execution_id: str) -> dict[str, int]:
    [(event, events)] = stack.sql(
        "select max(octet_length(payload::text)), count(*) from executions_event "
        "where execution_id = %s", execution_id)  # fmt: skip
    [(state,)] = stack.sql(
        "select octet_length(state::text) from executions_execution where id = %s",
        execution_id,
    )
    [(command,)] = stack.sql(
        "select max(octet_length(payload::text)) from executions_command "
        "where execution_id = %s", execution_id)  # fmt: skip
    return {"event": event, "state": state, "command": command, "events": events}


def error(stack: Driver, execution_id: str) -> object:
    [(value,)] = stack.sql(
        "select error from executions_execution where id = %s", execution_id
    )
    return value


def result(stack: Driver, execution_id: str) -> dict:
    [(value,)] = stack.sql(
        "select result from executions_execution where id = %s", execution_id
    )
    return value


def test_a_50_mb_step_result_is_stored_once_by_reference_and_read_back(
    stack: Driver,
) -> None:
    stack.register(PLAYBOOKS / "large_result.yaml")

    execution_id = stack.start("tests/large_result")

    status = stack.wait([execution_id], timeout=240)
    assert status == {execution_id: "completed"}, error(stack, execution_id)
    assert result(stack, execution_id) == {"size": 50_000_003, "tail": "END", "n": 7}
    sizes = row_sizes(stack, execution_id)
    assert max(sizes["event"], sizes["state"], sizes["command"]) < SMALL_ROW, sizes
    big = stack.sql("select count(*) from executions_blob where size >= 50000000")
    assert big == [(1,)], "the 50 MB value is stored exactly once"


def test_a_100000_iteration_loop_keeps_events_and_state_small(stack: Driver) -> None:
    stack.register(PLAYBOOKS / "loop_100k.yaml")

    execution_id = stack.start("tests/loop_100k")

    status = stack.wait([execution_id], timeout=300)
    assert status == {execution_id: "completed"}, error(stack, execution_id)
    assert result(stack, execution_id) == {"count": 100_000, "last_status": "ok"}
    sizes = row_sizes(stack, execution_id)
    assert max(sizes["event"], sizes["state"], sizes["command"]) < SMALL_ROW, sizes
    # Chunked commands (R4): a few hundred events, not one per iteration.
    assert sizes["events"] < 5_000
    stack.completions_once([execution_id])


def test_a_failed_loop_names_its_first_failing_iteration(stack: Driver) -> None:
    done = stack.noetl("run", str(PLAYBOOKS / "errors_loop.yaml"), "--json")

    assert done.returncode == 1, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert "1 of 4 iterations failed; first failing iteration 2: " in message
    assert "ZeroDivisionError: division by zero" in message
