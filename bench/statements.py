#!/usr/bin/env python3
"""Database work per event as a run grows: hello and chain20 (work per step),
the loop workload at n = 100 and n = 10 000 (work per iteration, and whether
it stays flat), counted statement by statement.

The runs go through ``executions.service``, the one writer both modes use,
driven by the embedded runtime in this process. Every SQL statement of every
connection is counted by an execute wrapper (statements, writes, bytes of
parameters sent); the counts are divided by the events and loop iterations
the run recorded; per step and per iteration come from the difference of two
runs (chain20 - hello over 17 steps, loop10000 - loop100 over 9 900
iterations), so the fixed cost of a run drops out. Bytes written are the
parameters of INSERT and UPDATE statements. Flat numbers from n = 100 to
n = 10 000 mean the control plane never re-reads or re-writes a run's whole
state or history per event.

    python bench/statements.py                       # SQLite, as embedded mode
    python bench/statements.py --database-url postgres://postgres@127.0.0.1:5432/noetl_bench_sql

Prints one JSON line per run and a table on stderr. Run by hand, never by CI.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NOETL_SHARED_DIR") or REPO.parent / "shared")
WRITES = ("INSERT", "UPDATE", "DELETE")


class StatementCounter:
    """An execute wrapper that tallies what goes to the database."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_written = 0
        self.tables: Counter[str] = Counter()
        self.enabled = False

    def reset(self) -> None:
        self.kinds.clear()
        self.tables.clear()
        self.bytes_sent = self.bytes_written = 0

    def __call__(self, execute, sql, params, many, context):
        if self.enabled:
            verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
            rows = len(params) if many and params is not None else 1
            self.kinds[verb] += 1
            self.kinds["rows:" + verb] += rows
            size = _size(params)
            self.bytes_sent += size
            if verb in WRITES:
                self.bytes_written += size
                self.tables["bytes:" + _table(sql, verb)] += size
        return execute(sql, params, many, context)

    def snapshot(self) -> dict[str, Any]:
        statements = sum(v for k, v in self.kinds.items() if not k.startswith("rows:"))
        writes = sum(self.kinds[verb] for verb in WRITES)
        return {
            "statements": statements,
            "writes": writes,
            "bytes_sent": self.bytes_sent,
            "bytes_written": self.bytes_written,
            "bytes_written_by_table": dict(self.tables.most_common()),
            "by_verb": {
                k: v for k, v in sorted(self.kinds.items()) if not k.startswith("rows:")
            },
        }


def _table(sql: str, verb: str) -> str:
    """The table an INSERT, UPDATE or DELETE writes to."""
    words = sql.replace('"', " ").replace("`", " ").split()
    after = {"INSERT": "INTO", "DELETE": "FROM", "UPDATE": "UPDATE"}[verb]
    upper = [w.upper() for w in words]
    return words[upper.index(after) + 1] if after in upper else "?"


def _size(params: Any) -> int:
    if params is None:
        return 0
    if hasattr(params, "obj"):  # psycopg's Jsonb adapter around a value
        from executions.engine.values import dumps

        return len(dumps(params.obj))
    if isinstance(params, (bytes, bytearray, memoryview)):
        return len(params)
    if isinstance(params, str):
        return len(params.encode())
    if isinstance(params, dict):
        return sum(_size(v) for v in params.values())
    if isinstance(params, (list, tuple)):
        return sum(_size(v) for v in params)
    return 8


def setup(database_url: str | None, home: Path) -> StatementCounter:
    os.environ["NOETL_HOME"] = str(home)
    os.environ.setdefault(
        "NOETL_ENCRYPTION_KEY",
        base64.urlsafe_b64encode(b"noetl-bench-key-0123456789abcdef").decode(),
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "noetl_site.settings"
    os.environ.pop("NATS_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
        _fresh_pg(database_url)
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    from noetl_site.cli import setup_django

    setup_django()
    from django.db.backends.signals import connection_created

    counter = StatementCounter()

    def attach(sender, connection, **kwargs) -> None:
        if counter not in connection.execute_wrappers:
            connection.execute_wrappers.append(counter)

    connection_created.connect(attach, weak=False)
    return counter


def _fresh_pg(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def measure(
    counter: StatementCounter, path: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """One run, counted from its start request to its terminal commit."""
    from executions.embedded import EmbeddedRuntime
    from executions.engine.values import dumps
    from executions.models import Event, Execution

    with EmbeddedRuntime(workers=4) as runtime:
        counter.reset()
        counter.enabled = True
        started = time.perf_counter()
        execution_id = runtime.start_run(path, None, payload)
        status = runtime.wait(execution_id, timeout=1800)
        elapsed = time.perf_counter() - started
        counter.enabled = False

        def sizes() -> tuple[int, int, int]:
            rows = Event.objects.filter(execution_id=execution_id)
            payloads = [len(dumps(p)) for p in rows.values_list("payload", flat=True)]
            state = Execution.objects.values_list("state", flat=True).get(
                id=execution_id
            )
            return len(payloads), max(payloads), len(dumps(state))

        events, largest_event, state_bytes = runtime.write(sizes)
    counts = counter.snapshot()
    return {
        "status": status,
        "seconds": round(elapsed, 3),
        "events": events,
        **counts,
        "statements_per_event": round(counts["statements"] / events, 2),
        "writes_per_event": round(counts["writes"] / events, 2),
        "bytes_written_per_event": round(counts["bytes_written"] / events),
        "largest_event_payload_bytes": largest_event,
        "state_row_bytes": state_bytes,
    }


def _per(big: dict[str, Any], small: dict[str, Any], units: int) -> dict[str, float]:
    """What one more step (or iteration) costs: the difference of two runs,
    so the fixed cost of starting and ending a run drops out."""
    return {
        key: round((big[key] - small[key]) / units, 3)
        for key in ("events", "statements", "writes", "bytes_written")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL URL (recreated!)")
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--workloads-dir", type=Path, default=SHARED / "bench")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="noetl-bench-sql-"))
    counter = setup(args.database_url, home)
    from catalog import services as catalog

    def path_of(name: str) -> str:
        text = (args.workloads_dir / f"{name}.yaml").read_text()
        return catalog.register(text)[0].path

    database = "postgresql" if args.database_url else "sqlite"
    runs: dict[str, dict[str, Any]] = {}
    sizes = [int(x) for x in args.sizes.split(",")]
    plan = [("hello", "hello", {}), ("chain20", "chain20", {})]
    plan += [(f"loop{n}", "loop", {"n": n}) for n in sizes]
    for label, name, payload in plan:
        row = {
            "statements": True,
            "database": database,
            "workload": label,
            **measure(counter, path_of(name), payload),
        }
        if name == "loop":
            n = payload["n"]
            row.update(
                n=n,
                events_per_iteration=round(row["events"] / n, 4),
                bytes_written_per_iteration=round(row["bytes_written"] / n),
            )
        runs[label] = row
        print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {
        "statements_summary": True,
        "database": database,
        "per_step": _per(runs["chain20"], runs["hello"], 17),
    }
    if len(sizes) > 1:
        small, big = min(sizes), max(sizes)
        summary["per_iteration"] = _per(
            runs[f"loop{big}"], runs[f"loop{small}"], big - small
        )
    summary["statements_per_event"] = {
        label: row["statements_per_event"] for label, row in runs.items()
    }
    print(json.dumps(summary), flush=True)
    keys = [
        "workload",
        "status",
        "seconds",
        "events",
        "statements",
        "statements_per_event",
        "writes_per_event",
        "bytes_written_per_event",
        "largest_event_payload_bytes",
        "state_row_bytes",
    ]
    print("  ".join(keys), file=sys.stderr)
    for row in runs.values():
        print("  ".join(str(row[k]) for k in keys), file=sys.stderr)
    print(f"per step: {summary['per_step']}", file=sys.stderr)
    if "per_iteration" in summary:
        print(f"per iteration: {summary['per_iteration']}", file=sys.stderr)
    return 0 if all(r["status"] == "completed" for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
