"""The ``transfer`` tool (DSL section 5.8): copy rows from a source to a
target in batches, without holding them all in memory (except an http
source, which is one response).

```yaml
kind: transfer
source: {kind: postgres, auth: pg, query: "SELECT id, name FROM users"}
target: {kind: clickhouse, auth: ch, table: analytics.users}
batch_size: 1000
```

Sources: ``postgres``, ``duckdb``, ``clickhouse`` (a ``query``) and ``http``
(a GET whose JSON body holds the rows, at ``rows_path`` such as
``data.items``). Targets: ``postgres``, ``duckdb``, ``clickhouse`` (an
existing ``table``; the source's column names are its columns) and ``http``
(each batch POSTed as a JSON list to ``url``). Each batch is committed on
its own, so a failure leaves the batches before it in place: the error says
how many rows were copied (``data.rows``). The result: ``rows``,
``batches``, ``columns``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stop,
    Stopwatch,
    ToolContext,
    error,
    jsonable,
    ok,
)

SOURCES = ("postgres", "duckdb", "clickhouse", "http")
TARGETS = ("postgres", "duckdb", "clickhouse", "http")
DEFAULT_BATCH = 1000
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*$")


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        source = _side(config, "source", SOURCES)
        target = _side(config, "target", TARGETS)
        batch = _batch_size(config)
        reader = _READERS[source["kind"]](source, ctx, batch)
        writer = _WRITERS[target["kind"]](target, ctx)
    except CredentialError as exc:
        return error("credential", str(exc))
    except ConfigError as exc:
        return error("config", str(exc))
    except Stop as exc:
        return exc.outcome
    copied = batches = 0
    columns: list[str] = []
    try:
        with contextlib.closing(writer):
            for rows in reader:
                if ctx.cancelled.is_set():
                    return _with_count(error("cancelled", "transfer cancelled"), copied)
                if not rows:
                    continue
                columns = columns or list(rows[0])
                writer.write(rows)
                copied += len(rows)
                batches += 1
    except Stop as exc:
        return _with_count(exc.outcome, copied)
    finally:
        with contextlib.suppress(Exception):
            reader.close()
    return ok(
        {
            "status": "success",
            "rows": copied,
            "batches": batches,
            "columns": columns,
            "source": source["kind"],
            "target": target["kind"],
        }
    )


def _with_count(outcome: dict[str, Any], copied: int) -> dict[str, Any]:
    outcome["data"] = {"rows": copied}
    if copied:
        outcome["error"]["message"] += f" ({copied} rows were copied before this)"
    return outcome


def _side(config: dict[str, Any], name: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    side = config.get(name)
    if not isinstance(side, dict):
        raise ConfigError(f"{name} must be a map with kind ({', '.join(kinds)})")
    kind = str(side.get("kind") or side.get("type") or "").lower()
    if kind not in kinds:
        raise ConfigError(f"{name}.kind must be one of {', '.join(kinds)}")
    return {**side, "kind": kind}


def _batch_size(config: dict[str, Any]) -> int:
    raw = config.get("batch_size", config.get("chunk_size"))
    try:
        size = DEFAULT_BATCH if raw in (None, "") else int(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError("batch_size must be a positive integer") from exc
    if size <= 0:
        raise ConfigError("batch_size must be a positive integer")
    return size


def _query(side: dict[str, Any], label: str) -> str:
    query = side.get("query") or side.get("command") or side.get("sql")
    if not query:
        raise ConfigError(f"{label}: query is required")
    return str(query)


def _table(side: dict[str, Any], label: str) -> str:
    table = str(side.get("table") or "")
    if not _TABLE.match(table):
        raise ConfigError(
            f"{label}: table {table!r} is not a table name (schema.table)"
        )
    return table


def _checked_columns(rows: list[dict[str, Any]], label: str) -> list[str]:
    columns = list(rows[0])
    for column in columns:
        if not _COLUMN.match(column):
            raise Stop(
                error("config", f"{label}: column {column!r} is not a plain name")
            )
    return columns


def _fail(label: str, exc: Exception) -> Stop:
    """A driver exception as an error envelope (kinds as in DSL 10.10)."""
    text = " ".join(str(exc).split("Stack trace:", 1)[0].split())[:500]
    kind, retryable = _classify(exc)
    return Stop(error(kind, f"{label}: {text}", retryable=retryable))


def _classify(exc: Exception) -> tuple[str, bool]:
    name = type(exc).__name__
    module = type(exc).__module__
    code = getattr(exc, "code", None)
    text = str(exc).lower()
    if code in (192, 193, 516) or "password authentication failed" in text:
        return "auth", False
    if isinstance(exc, OSError | EOFError) or name in {
        "OperationalError",
        "NetworkError",
        "ConnectError",
        "ConnectTimeout",
    }:
        return "connection", True
    if "psycopg" in module or "duckdb" in module or "clickhouse" in module:
        return "sql", False
    return "internal", False


# --- Sources. ---------------------------------------------------------------------


class _Reader:
    def __init__(self) -> None:
        self.close_hooks: list[Any] = []

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        raise NotImplementedError

    def close(self) -> None:
        for hook in self.close_hooks:
            with contextlib.suppress(Exception):
                hook()


class _PostgresReader(_Reader):
    def __init__(self, side: dict[str, Any], ctx: ToolContext, batch: int) -> None:
        super().__init__()
        from workers.tools import postgres

        self.query = _query(side, "source postgres")
        try:
            self.target = postgres.connection_target(side, ctx)
        except ValueError as exc:
            raise ConfigError(f"source postgres: {exc}") from exc
        self.batch = batch

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        import psycopg
        from psycopg.rows import dict_row

        label = f"source postgres {self.target.label}"
        try:
            conn = psycopg.connect(
                self.target.conninfo, connect_timeout=10, **self.target.params
            )
        except psycopg.Error as exc:
            raise _fail(label, exc) from exc
        self.close_hooks.append(conn.close)
        try:
            with conn.cursor(name="noetl_transfer", row_factory=dict_row) as cur:
                cur.execute(self.query)  # type: ignore[arg-type]
                while rows := cur.fetchmany(self.batch):
                    yield [jsonable(row) for row in rows]
        except psycopg.Error as exc:
            raise _fail(label, exc) from exc


class _DuckdbReader(_Reader):
    def __init__(self, side: dict[str, Any], ctx: ToolContext, batch: int) -> None:
        super().__init__()
        from workers.tools import duckdb as duckdb_tool

        self.query = _query(side, "source duckdb")
        self.database = str(side.get("database") or ":memory:")
        self.secrets = [
            duckdb_tool.secret_statement(alias, fields)
            for alias, fields in duckdb_tool.cloud_secrets(side, ctx).items()
        ]
        self.batch = batch

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        import duckdb

        label = f"source duckdb {self.database}"
        try:
            conn = _duckdb_connect(self.database, self.secrets)
            self.close_hooks.append(conn.close)
            conn.execute(self.query)
            names = [column[0] for column in conn.description or []]
            while rows := conn.fetchmany(self.batch):
                yield [jsonable(dict(zip(names, row, strict=True))) for row in rows]
        except duckdb.Error as exc:
            raise _fail(label, exc) from exc


def _duckdb_connect(database: str, secrets: list[str]) -> Any:
    import duckdb

    from workers.tools import duckdb as duckdb_tool

    conn = duckdb.connect(database, config=duckdb_tool.connect_config())
    if secrets:
        if duckdb_tool.httpfs_directory() is not None:
            conn.execute("LOAD httpfs")
        for statement in secrets:
            conn.execute(statement)
    return conn


class _ClickhouseReader(_Reader):
    def __init__(self, side: dict[str, Any], ctx: ToolContext, batch: int) -> None:
        super().__init__()
        from workers.tools import clickhouse

        self.query = _query(side, "source clickhouse")
        try:
            self.target = clickhouse.connection_target(side, ctx)
        except ValueError as exc:
            raise ConfigError(f"source clickhouse: {exc}") from exc
        self.batch = batch

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        from clickhouse_driver import Client
        from clickhouse_driver import errors as ch_errors

        label = f"source clickhouse {self.target.label}"
        client = Client(**self.target.params, connect_timeout=10)
        self.close_hooks.append(client.disconnect)
        try:
            stream = client.execute_iter(
                self.query,
                with_column_types=True,
                settings={"max_block_size": self.batch},
            )
            names = [column[0] for column in next(stream)]
            rows: list[dict[str, Any]] = []
            for row in stream:
                rows.append(jsonable(dict(zip(names, row, strict=True))))
                if len(rows) >= self.batch:
                    yield rows
                    rows = []
            if rows:
                yield rows
        except StopIteration:
            return
        except (ch_errors.Error, OSError, EOFError) as exc:
            raise _fail(label, exc) from exc


class _HttpReader(_Reader):
    def __init__(self, side: dict[str, Any], ctx: ToolContext, batch: int) -> None:
        super().__init__()
        self.side = {k: v for k, v in side.items() if k not in ("kind", "rows_path")}
        self.path = str(side.get("rows_path") or side.get("path") or "")
        self.ctx = ctx
        self.batch = batch

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        from workers.tools import http

        self.side.pop("path", None)
        outcome = http.run({"method": "GET", **self.side}, self.ctx)
        if outcome["status"] != "ok":
            message = f"source http: {outcome['error']['message']}"
            outcome["error"]["message"] = message
            raise Stop(error(**_plain(outcome["error"]), message=message))
        rows = _dig(outcome["data"]["data"], self.path)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            where = f"at {self.path!r}" if self.path else "(set rows_path)"
            raise Stop(
                error(
                    "config", f"source http: the response has no list of rows {where}"
                )
            )
        for start in range(0, len(rows), self.batch):
            yield rows[start : start + self.batch]


def _plain(err: dict[str, Any]) -> dict[str, Any]:
    return {"kind": err["kind"], "retryable": err.get("retryable", False)}


def _dig(value: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


_READERS = {
    "postgres": _PostgresReader,
    "duckdb": _DuckdbReader,
    "clickhouse": _ClickhouseReader,
    "http": _HttpReader,
}


# --- Targets. -----------------------------------------------------------------------


class _PostgresWriter:
    def __init__(self, side: dict[str, Any], ctx: ToolContext) -> None:
        import psycopg

        from workers.tools import postgres

        self.table = _table(side, "target postgres")
        try:
            target = postgres.connection_target(side, ctx)
        except ValueError as exc:
            raise ConfigError(f"target postgres: {exc}") from exc
        self.label = f"target postgres {target.label}"
        try:
            self.conn = psycopg.connect(
                target.conninfo, connect_timeout=10, autocommit=False, **target.params
            )
        except psycopg.Error as exc:
            raise _fail(self.label, exc) from exc

    def write(self, rows: list[dict[str, Any]]) -> None:
        import psycopg
        from psycopg import sql

        columns = _checked_columns(rows, self.label)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(*self.table.split(".")),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        )
        try:
            with self.conn.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row([_flat(row.get(c)) for c in columns])
            self.conn.commit()
        except psycopg.Error as exc:
            self.conn.rollback()
            raise _fail(self.label, exc) from exc

    def close(self) -> None:
        self.conn.close()


def _flat(value: Any) -> Any:
    """Maps and lists travel as JSON text (a json/jsonb column takes it)."""
    return json.dumps(value) if isinstance(value, dict | list) else value


class _DuckdbWriter:
    def __init__(self, side: dict[str, Any], ctx: ToolContext) -> None:
        import duckdb

        from workers.tools import duckdb as duckdb_tool

        self.table = _table(side, "target duckdb")
        database = str(side.get("database") or "")
        if not database or database == ":memory:":
            raise ConfigError("target duckdb: database must be a file (not :memory:)")
        self.label = f"target duckdb {database}"
        secrets = [
            duckdb_tool.secret_statement(alias, fields)
            for alias, fields in duckdb_tool.cloud_secrets(side, ctx).items()
        ]
        try:
            self.conn = _duckdb_connect(database, secrets)
        except duckdb.Error as exc:
            raise _fail(self.label, exc) from exc

    def write(self, rows: list[dict[str, Any]]) -> None:
        import duckdb

        columns = _checked_columns(rows, self.label)
        listed = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {self.table} ({listed}) VALUES ({marks})"
        try:
            self.conn.execute("BEGIN TRANSACTION")
            self.conn.executemany(
                statement, [[_flat(row.get(c)) for c in columns] for row in rows]
            )
            self.conn.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                self.conn.execute("ROLLBACK")
            raise _fail(self.label, exc) from exc

    def close(self) -> None:
        self.conn.close()


class _ClickhouseWriter:
    def __init__(self, side: dict[str, Any], ctx: ToolContext) -> None:
        from clickhouse_driver import Client

        from workers.tools import clickhouse

        self.table = _table(side, "target clickhouse")
        try:
            target = clickhouse.connection_target(side, ctx)
        except ValueError as exc:
            raise ConfigError(f"target clickhouse: {exc}") from exc
        self.label = f"target clickhouse {target.label}"
        self.client = Client(**target.params, connect_timeout=10)

    def write(self, rows: list[dict[str, Any]]) -> None:
        from clickhouse_driver import errors as ch_errors

        columns = _checked_columns(rows, self.label)
        listed = ", ".join(f"`{c}`" for c in columns)
        try:
            self.client.execute(
                f"INSERT INTO {self.table} ({listed}) VALUES",
                [[row.get(c) for c in columns] for row in rows],
            )
        except (ch_errors.Error, OSError, EOFError) as exc:
            raise _fail(self.label, exc) from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise Stop(
                error("sql", f"{self.label}: a value does not fit {self.table}: {exc}")
            ) from exc

    def close(self) -> None:
        self.client.disconnect()


class _HttpWriter:
    def __init__(self, side: dict[str, Any], ctx: ToolContext) -> None:
        if not (side.get("url") or side.get("endpoint")):
            raise ConfigError("target http: url is required")
        self.side = {k: v for k, v in side.items() if k != "kind"}
        self.ctx = ctx

    def write(self, rows: list[dict[str, Any]]) -> None:
        from workers.tools import http

        outcome = http.run(
            {"method": "POST", **self.side, "json": rows, "idempotency_key": False},
            self.ctx,
        )
        if outcome["status"] != "ok":
            message = f"target http: {outcome['error']['message']}"
            raise Stop(error(**_plain(outcome["error"]), message=message))

    def close(self) -> None:
        pass


_WRITERS = {
    "postgres": _PostgresWriter,
    "duckdb": _DuckdbWriter,
    "clickhouse": _ClickhouseWriter,
    "http": _HttpWriter,
}
