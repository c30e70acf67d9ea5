"""No size cliffs in embedded mode (DESIGN-NOTES R11, R3, R4): a 50 MB step
result and a 100 000-iteration loop aggregate run through, are stored once by
reference, and every event, the run's state row and every command stay small.

The runs go through the real CLI over SQLite; the rows are read straight from
the database file afterwards."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_cli import PLAYBOOKS, noetl

# Values above 32 KB go to a blob (R11); an event carries at most a few
# such references and their previews, and the state row is O(steps) (R3).
SMALL_ROW = 64 * 1024


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def row_sizes(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "noetl.db") as db:
        (events,) = db.execute("select max(length(payload)) from executions_event")
        (state,) = db.execute("select max(length(state)) from executions_execution")
        (commands,) = db.execute("select max(length(payload)) from executions_command")
    return {"event": events[0], "state": state[0], "command": commands[0]}


def blob_sizes(home: Path) -> list[int]:
    with sqlite3.connect(home / "noetl.db") as db:
        rows = db.execute("select size from executions_blob order by size desc")
        return [size for (size,) in rows]


def test_a_50_mb_step_result_is_stored_once_by_reference_and_read_back(
    home: Path,
) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / "large_result.yaml"), "--json")

    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["steps"]["measure"]["result"] == {
        "size": 50_000_003,
        "tail": "END",
        "n": 7,
    }
    sizes = row_sizes(home)
    assert max(sizes.values()) < SMALL_ROW, sizes
    big = [size for size in blob_sizes(home) if size >= 50_000_000]
    assert len(big) == 1, "the 50 MB value is stored exactly once"


def test_a_100000_iteration_loop_keeps_events_and_state_small(home: Path) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / "loop_100k.yaml"), "--json",
                 timeout=240)  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["steps"]["total"]["result"] == {"count": 100_000, "last_status": "ok"}
    sizes = row_sizes(home)
    assert max(sizes.values()) < SMALL_ROW, sizes
    with sqlite3.connect(home / "noetl.db") as db:
        (events,) = db.execute("select count(*) from executions_event")
    # Chunked commands (R4): a few hundred events, not one per iteration.
    assert events[0] < 5_000
