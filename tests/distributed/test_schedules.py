"""Schedules on a real stack: ``runscheduler`` runs as its own process and
fires an interval schedule made with ``noetl --server``; workers run the
fires to completion, each fire time once. The one schedule test on the real
clock (the controlled-clock tests are in tests/schedules)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.api.conftest import playbook_yaml
from tests.distributed.conftest import Driver

PATH = "tests/distributed/scheduled"


def scheduled_runs(stack: Driver) -> list[tuple[str, str, str]]:
    return stack.sql(
        "select e.id::text, e.status, f.fire_time::text from schedules_schedulefire f "
        "join executions_execution e on e.id = f.execution_id order by f.fire_time"
    )


def test_the_scheduler_process_fires_each_time_once(
    stack: Driver, tmp_path: Path
) -> None:
    playbook = tmp_path / "scheduled.yaml"
    playbook.write_text(playbook_yaml(PATH))
    stack.register(playbook)
    added = stack.noetl(
        "schedule", "add", "every-second", "--path", PATH, "--every", "1"
    )
    assert added.returncode == 0, added.stderr

    deadline = time.monotonic() + 60
    while len(scheduled_runs(stack)) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    paused = stack.noetl("schedule", "pause", "every-second")
    assert paused.returncode == 0, paused.stderr

    runs = scheduled_runs(stack)
    assert len(runs) >= 3
    statuses = stack.wait([run_id for run_id, _, _ in runs])
    assert set(statuses.values()) == {"completed"}
    assert len({fire_time for _, _, fire_time in runs}) == len(runs)
    listed = stack.noetl("runs", "--limit", "100")
    assert listed.stdout.count("\tschedule every-second@") == len(runs)
