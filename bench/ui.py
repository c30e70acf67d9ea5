#!/usr/bin/env python3
"""How fast the browser UI's pages render over a long history: 10 000 runs
and 1 000 000 events in a scratch PostgreSQL database, one of the runs with
5 000 events (a loop of 2 000 chunks among them).

The history is written straight into the tables with server-side SQL (the
engine would take hours to make a million events); the rows have the
shapes the engine writes. Each page is then requested through Django's test
client by a logged-in user (the whole stack: middleware, session, views,
templates) several times after a warm-up, and the median is reported.

    python bench/ui.py                      # load (once) and measure
    python bench/ui.py --reload             # drop the scratch database first
    python bench/ui.py --repeat 25 --pg postgres://postgres@127.0.0.1:5432

Prints one JSON line per page and a table on stderr. Target: under 300 ms
per page. Run by hand, never by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUNS = 10_000
EVENTS = 1_000_000
BIG_RUN_EVENTS = 5_000
BIG_RUN_CHUNKS = 2_000
STEPS = ["start", "fetch", "transform", "load", "report"]
PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bench, path: bench/ui}
workload: {n: 10}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: [{step: fetch}]
  - step: fetch
    loop: {in: '{{ range(n) | list }}', iterator: i, mode: parallel}
    tool: {kind: python, code: "result = i"}
    next: [{step: transform}]
  - step: transform
    tool: {kind: python, code: "result = 2"}
    next: [{step: load, when: '{{ true }}'}, {step: report}]
  - step: load
    tool: {kind: python, code: "result = 3"}
  - step: report
    tool: {kind: python, code: "result = 4"}
"""


def uuid7(ms: int) -> str:
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (
        (ms << 80)
        | (0x7 << 76)
        | ((rand >> 62) << 64)
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


# -- loading ---------------------------------------------------------------------


def prepare(pg: str, name: str, reload: bool) -> bool:
    """Create the scratch database; True when it needs loading."""
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", [name]
        ).fetchone()
        if exists and not reload:
            return False
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return True


def load() -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from catalog import services as catalog

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    version, _ = catalog.register(PLAYBOOK)
    User.objects.create_user("bench", password="bench")

    # Runs one minute apart, newest now; ids are UUIDv7 of their start.
    now = datetime.now(UTC)
    first = now - timedelta(minutes=RUNS)
    statuses = ["completed"] * 7 + ["failed", "cancelled", "running"]
    rows = []
    for i in range(RUNS):
        created = first + timedelta(minutes=i)
        status = statuses[i % len(statuses)]
        ended = None if status == "running" else created + timedelta(seconds=3)
        rows.append((uuid7(int(created.timestamp() * 1000)), created, ended, status))
    big_id = next(row[0] for row in reversed(rows) if row[3] == "completed")

    with connection.cursor() as cursor:
        cursor.execute(
            "create temporary table bench_runs (id varchar(36), created timestamptz, "
            "ended timestamptz, status varchar(16), n int)"
        )
        with cursor.copy(
            "copy bench_runs (id, created, ended, status, n) from stdin"
        ) as copy:
            # The other runs share the rest of the million evenly.
            per_run, extra = divmod(EVENTS - BIG_RUN_EVENTS, RUNS - 1)
            for index, (run_id, created, ended, status) in enumerate(rows):
                n = per_run + (index < extra)
                if run_id == big_id:
                    n = BIG_RUN_EVENTS
                copy.write_row((run_id, created, ended, status, n))
        _insert_runs(cursor, version.id)
        _insert_events(cursor, big_id)
        _insert_step_runs(cursor)
        cursor.execute("analyze")
    log(f"loaded in {time.monotonic() - started:.0f} s")


def _insert_runs(cursor: Any, playbook_id: int) -> None:
    cursor.execute(
        """
        insert into executions_execution (id, playbook_id, path, version, status,
            parent_command, created_at, ended_at, result, error, state, next_seq,
            owner)
        select id, %s, 'bench/ui', 1, status, '', created, ended,
            case when status = 'completed' then '{"rows": 10}'::jsonb end,
            case when status = 'failed' then jsonb_build_object('kind', 'python',
                'step', 'transform', 'message', 'ZeroDivisionError: division by zero')
            when status = 'cancelled' then '{"kind": "cancelled",
                "message": "cancelled by bench"}'::jsonb end,
            jsonb_build_object('status', status, 'vars', jsonb_build_object(
                'start', 1, 'fetch', jsonb_build_object('results', '[1, 2, 3]'::jsonb),
                'transform', 2, 'load', 3, 'report', 4)),
            n + 1, ''
        from bench_runs
        """,
        [playbook_id],
    )


def _insert_events(cursor: Any, big_id: str) -> None:
    """Each run: its start, then commands issued and done in turn, through
    the five steps; the big run's middle is a loop of many chunks."""
    cursor.execute(
        """
        insert into executions_event (execution_id, seq, ts, kind, step,
            command_id, status, delivery, worker_id, duration_ms, payload, error)
        select r.id, s.seq, r.created + s.seq * interval '1 millisecond',
            case
              when s.seq = 1 then 'execution.started'
              when r.id = %(big)s and s.seq between 10 and 9 + %(chunks)s
                then 'loop.chunk.done'
              when s.seq %% 2 = 0 then 'command.issued'
              else 'call.done' end,
            (array['start', 'fetch', 'transform', 'load', 'report'])[
              case when r.id = %(big)s and s.seq between 10 and 9 + %(chunks)s
                then 2 else 1 + (s.seq / 2) %% 5 end],
            r.id || '/step/1/' || s.seq, case when s.seq %% 2 = 1 then 'ok' else '' end,
            1, 'bench-worker', 3.5,
            case
              when s.seq = 1 then jsonb_build_object(
                'trigger', jsonb_build_object('kind', 'api', 'user', 'bench',
                  'input', jsonb_build_object('n', 10)),
                'workload', jsonb_build_object('n', 10),
                'playbook', jsonb_build_object('path', 'bench/ui', 'version', 1))
              when r.id = %(big)s and s.seq between 10 and 9 + %(chunks)s
                then jsonb_build_object('from', (s.seq - 10) * 4,
                  'to', (s.seq - 10) * 4 + 4, 'ms_per_iter', 0.5,
                  'counts', jsonb_build_object('success', 4, 'failed', 0))
              when s.seq %% 2 = 0 then '{"epoch": 1, "reason": "route"}'::jsonb
              else '{"result": {"rows": 10}, "routed": ["next"]}'::jsonb end,
            null
        from bench_runs r, generate_series(1, r.n) as s(seq)
        """,
        {"big": big_id, "chunks": BIG_RUN_CHUNKS},
    )


def _insert_step_runs(cursor: Any) -> None:
    cursor.execute(
        """
        insert into executions_steprun (execution_id, step, status, runs,
            started_at, ended_at, iterations, failed_iterations, error)
        select r.id, s.step, case when r.status = 'running' and s.i = 5
            then 'running' else 'completed' end, 1,
            r.created + s.i * interval '500 milliseconds',
            r.created + s.i * interval '500 milliseconds' + interval '400 milliseconds',
            case when s.step = 'fetch' then 10 else 0 end, 0, null
        from bench_runs r,
            unnest(array['start', 'fetch', 'transform', 'load', 'report'])
              with ordinality as s(step, i)
        """
    )


# -- measuring -------------------------------------------------------------------


def measure(repeat: int) -> list[dict[str, Any]]:
    from django.contrib.auth.models import User
    from django.test import Client

    from executions.models import Event, Execution

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    big = (
        Event.objects.filter(seq=BIG_RUN_EVENTS)
        .values_list("execution_id", flat=True)
        .get()
    )
    middle = Execution.objects.order_by("-id").values_list("id", flat=True)[RUNS // 2]
    pages = {
        "runs list": "/runs/",
        "runs list, failed": "/runs/?status=failed",
        "runs list, by playbook, last 7d": "/runs/?path=bench/ui&since=7d",
        "runs list, a page deep in history": f"/runs/?before={middle}",
        "runs list poll": f"/runs/live/?ids={big}&newest={big}",
        "run page (5000 events)": f"/runs/{big}/",
        "run poll": f"/runs/{big}/live/?after_seq=4990",
        "run events, last page": f"/runs/{big}/events/?after_seq=4900",
        "step panel": f"/runs/{big}/steps/fetch/?partial=1",
        "dashboard": "/",
        "catalog": "/catalog/",
    }
    results = []
    for name, url in pages.items():
        for _ in range(3):  # warm-up: caches, compiled templates, plans
            assert client.get(url).status_code == 200, url
        times = []
        for _ in range(repeat):
            begin = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200, url
        result = {
            "page": name,
            "url": url,
            "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1),
            "bytes": len(response.content),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="noetl_bench_ui")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()

    fresh = prepare(args.pg, args.database, args.reload)
    os.environ["DATABASE_URL"] = f"{args.pg}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noetl_site.settings")
    import django

    django.setup()
    if fresh:
        log(f"loading {RUNS} runs and {EVENTS} events into {args.database} ...")
        load()
    results = measure(args.repeat)

    log(f"\n{'page':40} {'median ms':>10} {'min':>8} {'max':>8}")
    for r in results:
        flag = "" if r["median_ms"] < 300 else "  over 300 ms"
        log(
            f"{r['page']:40} {r['median_ms']:>10} {r['min_ms']:>8} "
            f"{r['max_ms']:>8}{flag}"
        )


if __name__ == "__main__":
    main()
