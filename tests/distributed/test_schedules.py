"""Schedules on a real stack: ``runscheduler`` runs as its own process and
fires an interval schedule made with ``noetl --server``; workers run the
fires to completion, each fire time once. The one schedule test on the real
clock (the controlled-clock tests are in tests/schedules). On the same stack,
/metrics in multiprocess mode: both gunicorn processes and the scheduler
write their samples to PROMETHEUS_MULTIPROC_DIR, and a scrape answered by
either web process adds them all up."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

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


CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: metrics_chain, path: tests/metrics/chain}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'n': 1}"}
    next: {arcs: [{step: second}]}
  - step: second
    tool: {kind: python, code: "result = {'n': 2}"}
"""
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(stack: Driver) -> Samples:
    response = stack.http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_add_up_every_process_after_a_known_sequence_of_runs(
    stack: Driver,
) -> None:
    runs = 6
    registered = stack.http.post(
        "/api/catalog/", content=CHAIN, headers={"Content-Type": "application/yaml"}
    )
    assert registered.status_code in (200, 201), registered.text
    before = scrape(stack)
    ids = [stack.start("tests/metrics/chain", {"i": i}) for i in range(runs)]
    assert set(stack.wait(ids).values()) == {"completed"}

    # Several scrapes, so both gunicorn processes answer some of them.
    for after in [scrape(stack) for _ in range(4)]:
        def delta(name: str, after: Samples = after, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        chain = {"playbook": "tests/metrics/chain"}
        assert value(after, "noetl_executions_started_total", **chain) == runs
        finished = "noetl_executions_finished_total"
        assert value(after, finished, status="completed", **chain) == runs
        assert delta("noetl_commands_issued_total", pool="default") == 2 * runs
        assert delta("noetl_commands_claimed_total", pool="default") == 2 * runs
        steps = "noetl_step_duration_seconds_count"
        assert delta(steps, tool="python", status="ok") == 2 * runs
        post = {"method": "POST", "route": "/api/executions/", "status": "201"}
        assert delta("noetl_http_requests_total", **post) == runs
        assert value(after, "noetl_commands_in_flight", pool="default") == 0
        assert value(after, "noetl_nats_consumer_pending", pool="default") == 0
        ages = [v for (name, _), v in after.items()
                if name == "noetl_worker_heartbeat_age_seconds"]
        assert len(ages) == 2 and all(0 <= age < 30 for age in ages)
        # Fires are recorded by the scheduler process, another process.
        fires = stack.sql("select count(*) from schedules_schedulefire "
                          "where kind = 'schedule'")[0][0]
        assert value(after, "noetl_scheduler_fire_lag_seconds_count") == fires

    files = list(Path(stack.stack.env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"))
    assert len({f.stem.rsplit("_", 1)[-1] for f in files}) >= 3
