"""Copying the event log into ClickHouse, for analysis over months of runs.

The exporter reads events in the order of their row id and inserts them into
one ClickHouse table, partitioned by month, over the native protocol
(clickhouse-driver: it speaks to current servers and to the 18.16 server
Debian ships).

Exactly once, across crashes. The checkpoint is the data itself: each pass
starts after ``max(source_id)`` of the ClickHouse table, and each batch is one
INSERT of rows from a single month, which ClickHouse writes as one part, all
or nothing. So a crash can never leave rows copied without the checkpoint
knowing, or the reverse: there is no second place to keep in step. (The table
is also a ReplacingMergeTree on ``(execution_id, seq)``, so rows copied twice
by two exporters run by mistake collapse when parts merge.)

No gaps. Row ids are handed out when a row is inserted, but transactions
commit in any order: id 41 may become visible after id 42. A missing id is
therefore waited for, and nothing after it is copied, until it appears or
the row after it is older than ``settle_s`` (then the insert was rolled back
and the id will never appear).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from executions.models import Event

log = logging.getLogger("noetl.executions.clickhouse")

DEFAULT_TABLE = "noetl_events"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
COLUMNS = (
    ("source_id", "UInt64"),
    ("execution_id", "String"),
    ("seq", "UInt32"),
    ("ts", "DateTime('UTC')"),
    ("kind", "String"),
    ("playbook", "String"),
    ("step", "String"),
    ("command_id", "String"),
    ("status", "String"),
    ("delivery", "Nullable(UInt32)"),
    ("worker_id", "String"),
    ("pool", "String"),
    ("attempt", "Nullable(UInt32)"),
    ("tool", "String"),
    ("duration_ms", "Nullable(Float64)"),
    ("started_at", "Nullable(DateTime('UTC'))"),
    ("ended_at", "Nullable(DateTime('UTC'))"),
    ("input_bytes", "Nullable(UInt64)"),
    ("result_bytes", "Nullable(UInt64)"),
    ("error_kind", "String"),
    ("error_message", "String"),
    ("error_retryable", "UInt8"),
)
SOURCE_FIELDS = (
    "id", "execution_id", "seq", "ts", "kind", "execution__path", "step",
    "command_id", "status", "delivery", "worker_id", "pool", "attempt", "tool",
    "duration_ms", "started_at", "ended_at", "input_bytes", "result_bytes", "error",
)  # fmt: skip

# Ready queries; ``{table}`` is the events table. They run on 18.16 and later.
QUERIES = {
    "slowest_steps": """
SELECT playbook, step, tool, count() AS runs,
       round(avg(duration_ms), 1) AS avg_ms, round(max(duration_ms), 1) AS max_ms
FROM {table}
WHERE kind IN ('call.done', 'call.error') AND duration_ms IS NOT NULL
  AND ts >= now() - INTERVAL 7 DAY
GROUP BY playbook, step, tool
ORDER BY max_ms DESC
LIMIT 20""",
    "failure_rate": """
SELECT playbook,
       count() AS finished,
       countIf(kind = 'workflow.failed') AS failed,
       round(failed / finished, 3) AS failure_rate
FROM {table}
WHERE kind IN ('workflow.completed', 'workflow.failed', 'execution.cancelled')
  AND ts >= now() - INTERVAL 30 DAY
GROUP BY playbook
ORDER BY failure_rate DESC, finished DESC""",
    "p95_by_tool": """
SELECT tool, count() AS commands,
       round(quantile(0.5)(duration_ms), 1) AS p50_ms,
       round(quantile(0.95)(duration_ms), 1) AS p95_ms
FROM {table}
WHERE kind IN ('call.done', 'call.error', 'loop.chunk.done')
  AND duration_ms IS NOT NULL AND ts >= now() - INTERVAL 7 DAY
GROUP BY tool
ORDER BY p95_ms DESC""",
}


class ExportError(Exception):
    """A destination the exporter cannot use, said so a person can fix it."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    database: str
    user: str
    password: str
    table: str

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.table}"


def parse_target(url: str, table: str = DEFAULT_TABLE) -> Target:
    """``clickhouse://[user[:password]@]host[:port][/database]``."""
    parts = urlsplit(url)
    if parts.scheme != "clickhouse" or not parts.hostname:
        raise ExportError(
            f"--to must look like clickhouse://[user[:password]@]host[:port]"
            f"[/database], got {url!r}"
        )
    database = parts.path.strip("/") or "default"
    for name, value in (("database", database), ("table", table)):
        if not NAME.match(value):
            raise ExportError(f"the {name} name {value!r} is not a plain identifier")
    return Target(
        host=parts.hostname,
        port=parts.port or 9000,
        database=database,
        user=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        table=table,
    )


def connect(target: Target) -> Client:
    client = Client(
        target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        connect_timeout=5,
        send_receive_timeout=60,
    )
    try:
        client.execute("SELECT 1")
    except (ClickHouseError, OSError, EOFError) as exc:
        raise ExportError(
            f"cannot reach ClickHouse at {target.host}:{target.port}: {exc}"
        ) from None
    return client


def create_table(client: Client, target: Target) -> None:
    columns = ",\n  ".join(f"{name} {kind}" for name, kind in COLUMNS)
    client.execute(f"CREATE DATABASE IF NOT EXISTS {target.database}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {target.qualified} (\n  {columns}\n)\n"
        "ENGINE = ReplacingMergeTree(source_id)\n"
        "PARTITION BY toYYYYMM(ts)\n"
        "ORDER BY (execution_id, seq)"
    )


def checkpoint(client: Client, target: Target) -> int:
    """The last source row id copied: read from the copied rows themselves."""
    return int(client.execute(f"SELECT max(source_id) FROM {target.qualified}")[0][0])


# -- one pass -----------------------------------------------------------------------


@dataclass
class Exporter:
    client: Client
    target: Target
    batch: int = 10_000
    settle_s: float = 60.0
    clock: Callable[[], float] = time.time
    last_id: int | None = None

    def run_once(self) -> int:
        """Copy every event that can be copied now; the number of rows."""
        if self.last_id is None:
            self.last_id = checkpoint(self.client, self.target)
        copied = 0
        while True:
            rows = self._next_rows()
            if not rows:
                return copied
            self._insert(rows)
            self.last_id = rows[-1][0]
            copied += len(rows)

    def _next_rows(self) -> list[tuple[Any, ...]]:
        source = list(
            Event.objects.filter(id__gt=self.last_id)
            .order_by("id")
            .values_list(*SOURCE_FIELDS)[: self.batch]
        )
        ready = settled(source, self.last_id or 0, self.settle_s, self.clock())
        return [as_row(row) for row in one_month(ready)]

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        names = ", ".join(name for name, _ in COLUMNS)
        self.client.execute(
            f"INSERT INTO {self.target.qualified} ({names}) VALUES", rows
        )
        log.info("copied %d events up to id %d", len(rows), rows[-1][0])


def settled(
    rows: Sequence[tuple[Any, ...]], after: int, settle_s: float, now: float
) -> list[tuple[Any, ...]]:
    """The rows (ordered by id) up to the first missing id that may still
    appear: a gap is passed only once the row after it is ``settle_s`` old."""
    ready = []
    expected = after + 1
    for row in rows:
        if row[0] != expected and now - row[3].timestamp() < settle_s:
            break
        ready.append(row)
        expected = row[0] + 1
    return ready


def one_month(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The leading rows that share the first row's month, so one INSERT is
    one part of one partition (atomic)."""
    if not rows:
        return rows
    month = _month(rows[0][3])
    for i, row in enumerate(rows):
        if _month(row[3]) != month:
            return rows[:i]
    return rows


def _month(ts: datetime) -> tuple[int, int]:
    utc = ts.astimezone(UTC)
    return utc.year, utc.month


def _naive_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


def as_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A source row as the ClickHouse columns, in order."""
    error = row[19] if isinstance(row[19], dict) else {}
    return (
        *row[:3], _naive_utc(row[3]), *row[4:15],
        _naive_utc(row[15]), _naive_utc(row[16]), row[17], row[18],
        str(error.get("kind") or ""), str(error.get("message") or ""),
        1 if error.get("retryable") else 0,
    )  # fmt: skip


def run_query(client: Client, target: Target, name: str) -> tuple[list, list[str]]:
    """One of the ready queries: (rows, column names)."""
    if name not in QUERIES:
        raise ExportError(f"no query {name!r}; one of: {', '.join(sorted(QUERIES))}")
    rows, types = client.execute(
        QUERIES[name].format(table=target.qualified), with_column_types=True
    )
    return rows, [column for column, _ in types]
