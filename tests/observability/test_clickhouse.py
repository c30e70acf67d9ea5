"""The event export to a real ClickHouse server (Debian's clickhouse-server,
started by scripts/clickhouse): a table by month, exactly-once copies across
a crash, no gap for a transaction that commits late, ready queries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException
from django.db import connection

from catalog import services as catalog
from executions import clickhouse
from executions.models import Event, Execution

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: exported, path: tests/obs/exported}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
"""


@pytest.fixture(scope="module")
def server() -> Client:
    started = subprocess.run(
        [str(REPO / "scripts" / "clickhouse"), "start"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    return Client("127.0.0.1", port=9000)


@pytest.fixture
def target(server: Client) -> Iterator[clickhouse.Target]:
    database = f"noetl_test_{uuid.uuid4().hex[:10]}"
    yield clickhouse.parse_target(f"clickhouse://127.0.0.1:9000/{database}")
    server.execute(f"DROP DATABASE IF EXISTS {database}")


def make_events(runs: int, per_run: int, start: datetime) -> list[int]:
    """``runs`` runs of ``per_run`` events, their times a minute apart from
    ``start``; the events' row ids."""
    version, _ = catalog.register(PLAYBOOK)
    for r in range(runs):
        execution = Execution.objects.create(
            id=str(uuid.uuid4()),
            playbook=version,
            path=version.path,
            version=1,
        )
        Event.objects.bulk_create(
            Event(
                execution=execution,
                seq=s + 1,
                kind="call.done",
                step="start",
                tool="python",
                duration_ms=float(s),
                payload={},
            )
            for s in range(per_run)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE executions_event SET ts = %s + (%s + seq - 1) * "
                "interval '1 minute' WHERE execution_id = %s",
                [start, r * per_run, execution.id],
            )
    return list(Event.objects.order_by("id").values_list("id", flat=True))


def count(server: Client, target: clickhouse.Target) -> tuple[int, int]:
    """(rows, distinct (execution_id, seq)) in the export table."""
    return server.execute(
        f"SELECT count(), uniqExact(execution_id, seq) FROM {target.qualified}"
    )[0]


def export_command(target: clickhouse.Target, *options: str) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "export_events",
        "--to",
        f"clickhouse://127.0.0.1:9000/{target.database}",
        *options,
    ]


def command_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = (
        f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    )
    return env


def test_a_crashed_export_resumes_without_duplicates_or_gaps(
    transactional_db: None, server: Client, target: clickhouse.Target
) -> None:
    # 6,000 events across a month boundary, copied 20 at a time.
    total = 6000
    make_events(60, 100, datetime(2026, 11, 30, 20, 0, tzinfo=UTC))
    follow = subprocess.Popen(
        export_command(target, "--follow", "--batch", "20", "--interval", "0.1"),
        cwd=REPO,
        env=command_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    copied_at_kill = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            copied_at_kill = count(server, target)[0]
        except ServerException:  # the table is not created yet
            copied_at_kill = 0
        if copied_at_kill >= 200:
            break
        time.sleep(0.02)
    os.killpg(follow.pid, signal.SIGKILL)
    follow.wait(10)
    assert 0 < copied_at_kill < total, "the crash must come mid-copy"

    resumed = subprocess.run(
        export_command(target),
        cwd=REPO,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr

    assert count(server, target) == (total, total)
    parts = server.execute(
        "SELECT partition, sum(rows) FROM system.parts WHERE database = %(db)s "
        "AND table = %(table)s AND active GROUP BY partition ORDER BY partition",
        {"db": target.database, "table": target.table},
    )
    # 2026-11-30 20:00 + 6,000 minutes: 240 events in November.
    assert parts == [("202611", 240), ("202612", 5760)]


def test_an_event_that_commits_late_is_waited_for_not_skipped(
    transactional_db: None, server: Client, target: clickhouse.Target
) -> None:
    old = make_events(1, 5, datetime.now(UTC) - timedelta(hours=2))
    client = clickhouse.connect(target)
    clickhouse.create_table(client, target)
    exporter = clickhouse.Exporter(client, target, settle_s=60)
    assert exporter.run_once() == 5
    execution_id = Event.objects.get(id=old[0]).execution_id

    # A transaction takes the next id and holds it; a later one commits.
    late = psycopg.connect(
        f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    )
    late.execute(
        "INSERT INTO executions_event (execution_id, seq, ts, kind, step, "
        "command_id, status, worker_id, payload, pool, tool) VALUES "
        "(%s, 100, now(), 'warning', '', '', '', '', '{}', '', '')",
        (execution_id,),
    )
    Event.objects.create(execution_id=execution_id, seq=101, kind="warning")
    assert exporter.run_once() == 0
    late.commit()
    late.close()
    assert exporter.run_once() == 2
    assert count(server, target) == (7, 7)


def test_a_rolled_back_id_is_passed_once_it_has_settled(
    transactional_db: None, server: Client, target: clickhouse.Target
) -> None:
    make_events(1, 3, datetime.now(UTC) - timedelta(hours=2))
    client = clickhouse.connect(target)
    clickhouse.create_table(client, target)
    now = [time.time()]
    exporter = clickhouse.Exporter(client, target, settle_s=30, clock=lambda: now[0])
    assert exporter.run_once() == 3
    execution_id = Event.objects.order_by("id").last().execution_id

    with psycopg.connect(
        f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    ) as rolled_back:
        rolled_back.execute(
            "INSERT INTO executions_event (execution_id, seq, ts, kind, step, "
            "command_id, status, worker_id, payload, pool, tool) VALUES "
            "(%s, 50, now(), 'warning', '', '', '', '', '{}', '', '')",
            (execution_id,),
        )
        rolled_back.rollback()
    Event.objects.create(execution_id=execution_id, seq=51, kind="warning")

    assert exporter.run_once() == 0
    now[0] += 31
    assert exporter.run_once() == 1
    assert count(server, target) == (4, 4)


def test_the_ready_queries_answer_on_this_server(
    transactional_db: None, server: Client, target: clickhouse.Target
) -> None:
    make_events(2, 4, datetime.now(UTC) - timedelta(hours=1))
    failed = Event.objects.order_by("id").last()
    Event.objects.create(
        execution_id=failed.execution_id,
        seq=99,
        kind="workflow.failed",
        status="failed",
    )
    client = clickhouse.connect(target)
    clickhouse.create_table(client, target)
    clickhouse.Exporter(client, target, settle_s=0).run_once()

    slowest, columns = clickhouse.run_query(client, target, "slowest_steps")
    assert columns[:3] == ["playbook", "step", "tool"]
    assert slowest == [("tests/obs/exported", "start", "python", 8, 1.5, 3.0)]
    rate, _ = clickhouse.run_query(client, target, "failure_rate")
    assert rate == [("tests/obs/exported", 1, 1, 1.0)]
    p95, columns = clickhouse.run_query(client, target, "p95_by_tool")
    assert columns == ["tool", "commands", "p50_ms", "p95_ms"]
    assert p95[0][:2] == ("python", 8)


def test_a_bad_destination_is_refused_with_a_clear_message() -> None:
    with pytest.raises(clickhouse.ExportError, match="must look like clickhouse://"):
        clickhouse.parse_target("postgres://127.0.0.1/x")
    with pytest.raises(clickhouse.ExportError, match="not a plain identifier"):
        clickhouse.parse_target("clickhouse://127.0.0.1/a-b")
    with pytest.raises(clickhouse.ExportError, match="cannot reach ClickHouse"):
        clickhouse.connect(clickhouse.parse_target("clickhouse://127.0.0.1:1/x"))
