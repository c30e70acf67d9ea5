#!/usr/bin/env python3
"""Database work per event as a run grows: the loop workload at n = 100 and
n = 10 000 (by default), counted statement by statement.

The runs go through ``executions.service``, the one writer both modes use,
driven by the embedded runtime in this process. Every SQL statement of every
connection is counted by an execute wrapper (statements, writes, bytes of
parameters sent); the counts are divided by the events and loop iterations
the run recorded. Flat numbers from n = 100 to n = 10 000 mean the control
plane never re-reads or re-writes a run's whole state or history per event.

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
        self.enabled = False

    def __call__(self, execute, sql, params, many, context):
        if self.enabled:
            verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
            rows = len(params) if many and params is not None else 1
            self.kinds[verb] += 1
            self.kinds["rows:" + verb] += rows
            self.bytes_sent += _size(params)
        return execute(sql, params, many, context)

    def snapshot(self) -> dict[str, Any]:
        statements = sum(v for k, v in self.kinds.items() if not k.startswith("rows:"))
        writes = sum(self.kinds[verb] for verb in WRITES)
        return {"statements": statements, "writes": writes,
                "bytes_sent": self.bytes_sent, "by_verb": {
                    k: v for k, v in sorted(self.kinds.items())
                    if not k.startswith("rows:")}}


def _size(params: Any) -> int:
    if params is None:
        return 0
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
        base64.urlsafe_b64encode(b"noetl-bench-key-0123456789abcdef").decode())
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


def measure(counter: StatementCounter, path: str, n: int) -> dict[str, Any]:
    from executions.embedded import EmbeddedRuntime
    from executions.models import Event, Execution

    with EmbeddedRuntime(workers=4) as runtime:
        counter.kinds.clear()
        counter.bytes_sent = 0
        counter.enabled = True
        started = time.perf_counter()
        execution_id = runtime.start_run(path, None, {"n": n})
        status = runtime.wait(execution_id, timeout=1800)
        elapsed = time.perf_counter() - started
        counter.enabled = False
        events = runtime.write(lambda: Event.objects.filter(
            execution_id=execution_id).count())
        state_bytes = runtime.write(lambda: len(json.dumps(
            Execution.objects.values_list("state", flat=True).get(id=execution_id))))
    counts = counter.snapshot()
    return {
        "n": n, "status": status, "seconds": round(elapsed, 3), "events": events,
        **counts,
        "statements_per_event": round(counts["statements"] / events, 2),
        "writes_per_event": round(counts["writes"] / events, 2),
        "bytes_per_event": round(counts["bytes_sent"] / events),
        "events_per_iteration": round(events / n, 4),
        "bytes_per_iteration": round(counts["bytes_sent"] / n),
        "state_row_bytes": state_bytes,
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

    version, _ = catalog.register((args.workloads_dir / "loop.yaml").read_text())
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        row = {"database": "postgresql" if args.database_url else "sqlite",
               **measure(counter, version.path, n)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = ["n", "status", "seconds", "events", "statements", "statements_per_event",
            "writes_per_event", "bytes_per_event", "events_per_iteration",
            "bytes_per_iteration", "state_row_bytes"]
    print("  ".join(keys), file=sys.stderr)
    for row in rows:
        print("  ".join(str(row[k]) for k in keys), file=sys.stderr)
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
