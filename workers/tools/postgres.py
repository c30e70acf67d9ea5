"""The ``postgres`` tool (DSL sections 5.3, 8, 10.10, 10.25; DESIGN-NOTES R8, R9).

One connection per call (no pool), always closed. The SQL is split into
statements and each runs on its own in autocommit mode, so each is its own
transaction; the result is the last statement's.

With ``exactly_once`` all statements run in one transaction together with a
row in ``noetl_effect`` keyed by ``ctx.effect_key``; a repeat finds the row and
returns its stored summary without running anything.

Cancellation and timeout: a Watchdog thread calls ``conn.cancel_safe()`` when
``ctx.cancelled`` is set or ``ctx.timeout`` has passed, and the loop also checks
between statements. ``statement_timeout`` bounds each statement on the server
too, so a query outlives a killed worker by at most the task timeout.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stop,
    Stopwatch,
    ToolContext,
    Watchdog,
    credential_fields,
    error,
    jsonable,
    ok,
)
from workers.tools.sqlsplit import SqlConfigError, split_statements, sql_from_config

CONNECT_TIMEOUT_S = 10
CANCEL_TIMEOUT_S = 5.0
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock
_FIELDS = {
    "host": ("db_host", "host", "hostname"),
    "port": ("db_port", "port"),
    "user": ("db_user", "user", "username"),
    "password": ("db_password", "password"),
    "dbname": ("db_name", "database", "dbname", "db"),
    "dsn": ("dsn", "connection_string", "db_dsn", "db_connection_string"),
}
_INLINE_KEYS = (
    "db_host",
    "db_port",
    "db_user",
    "db_password",
    "db_name",
    "dsn",
    "connection_string",
    "db_dsn",
)
_AUTH_FAILURES = ("password authentication failed", "no pg_hba.conf entry")
_EFFECT_TABLE = (
    "CREATE TABLE IF NOT EXISTS noetl_effect ("
    " effect_key text PRIMARY KEY,"
    " summary jsonb NOT NULL DEFAULT 'null',"
    " created_at timestamptz NOT NULL DEFAULT now())"
)


class _AlreadyClaimed(Exception):
    """Another delivery committed the same effect key first."""


@dataclass
class _Target:
    """Where to connect, and how to name it in messages without secrets."""

    conninfo: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    secret: str = ""

    def scrub(self, text: str) -> str:
        return scrub_secret(text, self.secret)


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        statements = split_statements(sql_from_config(config))
        target = connection_target(config, ctx)
    except SqlConfigError as exc:
        return error("config", str(exc))
    except ConfigError as exc:
        return error("config", str(exc))
    except CredentialError as exc:
        return error("credential", str(exc))
    if not statements:
        return error("config", "the SQL has no statements (only comments?)")
    once = _truthy(config.get("exactly_once"))
    if once and not ctx.effect_key:
        return error("config", "exactly_once needs an effect key; none was given")
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before connecting")
    return _connect_and_execute(target, statements, once, ctx)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1"}
    return bool(value)


# --- Connecting. ---------------------------------------------------------------


def connection_target(config: dict[str, Any], ctx: ToolContext) -> _Target:
    """The connection a config names (credential fields, then inline keys)."""
    fields = credential_fields(config, ctx)
    for key in _INLINE_KEYS:
        if config.get(key) not in (None, ""):
            fields[key] = config[key]
    values = {name: _first(fields, keys) for name, keys in _FIELDS.items()}
    if not any(values.values()):
        raise ConfigError(
            "no connection given: set auth to a credential name, or db_host, "
            "db_name, db_user (or dsn)"
        )
    dsn = str(values.pop("dsn") or "")
    params = {k: v for k, v in values.items() if v not in (None, "")}
    secret = str(params.get("password") or "") or _dsn_password(dsn)
    target = _Target(conninfo=dsn, params=params, secret=secret)
    target.label = _label(target)
    return target


def _first(fields: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if fields.get(key) not in (None, ""):
            return fields[key]
    return None


def _dsn_password(dsn: str) -> str:
    if not dsn:
        return ""
    try:
        return str(conninfo_to_dict(dsn).get("password") or "")
    except psycopg.Error:
        match = re.search(r"://[^:/@]*:([^@/]*)@", dsn)
        return match.group(1) if match else ""


def _label(target: _Target) -> str:
    """``user@host:port/db`` for messages; never the password."""
    merged: dict[str, Any] = {}
    if target.conninfo:
        with contextlib.suppress(psycopg.Error):
            merged.update(conninfo_to_dict(target.conninfo))
    merged.update(target.params)
    host = merged.get("host") or "localhost"
    port = merged.get("port") or 5432
    dbname = merged.get("dbname")
    where = f"{host}:{port}/{dbname}" if dbname else f"{host}:{port}"
    user = merged.get("user")
    return f"{user}@{where}" if user else where


def scrub_secret(text: str, secret: str) -> str:
    """``text`` without the password: the value itself and key=value forms."""
    if secret:
        text = text.replace(secret, "***")
    text = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.I)
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", text)


def _connect(target: _Target, ctx: ToolContext) -> psycopg.Connection[Any]:
    timeout = int(max(2, min(CONNECT_TIMEOUT_S, ctx.timeout)))
    conn = psycopg.connect(
        target.conninfo,
        autocommit=True,
        prepare_threshold=None,
        connect_timeout=timeout,
        application_name="noetl",
        **target.params,
    )
    conn.add_notice_handler(lambda diag: ctx.log(f"NOTICE: {diag.message_primary}"))
    try:
        if ctx.timeout and ctx.timeout > 0:
            conn.execute(f"SET statement_timeout = {int(ctx.timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_error(target: _Target, exc: Exception) -> dict[str, Any]:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.removeprefix("connection failed: ")
    message = target.scrub(f"cannot connect to postgres {target.label}: {text}")
    auth_failed = any(marker in text for marker in _AUTH_FAILURES)
    if isinstance(exc, psycopg.ProgrammingError):
        return error("config", message)
    return error("connection", message, retryable=not auth_failed)


# --- Running the statements. ----------------------------------------------------


def _connect_and_execute(
    target: _Target, statements: list[str], once: bool, ctx: ToolContext
) -> dict[str, Any]:
    try:
        conn = _connect(target, ctx)
    except psycopg.Error as exc:
        return _connect_error(target, exc)
    with conn:

        def interrupt() -> None:
            conn.cancel_safe(timeout=CANCEL_TIMEOUT_S)

        with Watchdog(ctx, ctx.timeout, interrupt) as dog:
            try:
                if once:
                    return _execute_once(conn, statements, ctx, dog)
                return _execute_each(conn, statements, dog)
            except Stop as stop:
                return stop.outcome
            except psycopg.Error as exc:  # bookkeeping or a broken connection
                return _statement_error(exc, 0, len(statements), dog, target)


def _execute_each(
    conn: psycopg.Connection[Any], statements: list[str], dog: Watchdog
) -> dict[str, Any]:
    """Run each statement on its own (autocommit); return the last result."""
    result: dict[str, Any] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for index, statement in enumerate(statements, start=1):
            result = _run_statement(cur, statement, index, len(statements), dog)
    return ok(result)


def _run_statement(
    cur: psycopg.Cursor[Any],
    statement: str,
    index: int,
    count: int,
    dog: Watchdog,
) -> dict[str, Any]:
    """Execute one statement; raise Stop with the error outcome if it fails."""
    if dog.fired:
        raise Stop(_interrupted(dog, index))
    try:
        cur.execute(statement)  # type: ignore[arg-type]  # no params: sent as is
        return _statement_result(cur, count)
    except psycopg.Error as exc:
        raise Stop(_statement_error(exc, index, count, dog, statement)) from exc


def _statement_result(cur: psycopg.Cursor[Any], count: int) -> dict[str, Any]:
    if cur.description is None:
        return {
            "status": "success",
            "row_count": max(cur.rowcount, 0),
            "message": cur.statusmessage,
            "statement_count": count,
        }
    rows = [jsonable(row) for row in cur.fetchall()]
    return {
        "status": "success",
        "rows": rows,
        "row_count": len(rows),
        "columns": [column.name for column in cur.description],
        "statement_count": count,
    }


def _interrupted(dog: Watchdog, index: int) -> dict[str, Any]:
    if dog.fired == "cancelled":
        return error("cancelled", f"statement {index}: cancelled")
    limit = dog.seconds
    return error(
        "timeout", f"statement {index}: timed out after {limit:g}s", retryable=True
    )


def _statement_error(
    exc: psycopg.Error, index: int, count: int, dog: Watchdog, where: Any
) -> dict[str, Any]:
    if dog.fired:
        return _interrupted(dog, index)
    diag = exc.diag
    sqlstate = getattr(exc, "sqlstate", None) or diag.sqlstate
    text = diag.message_primary or " ".join(str(exc).split())
    prefix = f"statement {index}: " if index else ""
    pg = _pg_details(exc, sqlstate, index, where)
    if sqlstate == "57014" and "statement timeout" in text:
        return error("timeout", f"{prefix}{text}", retryable=True, pg=pg)
    if _is_connection_loss(exc, sqlstate):
        message = f"{prefix}connection lost: {text}"
        return error("connection", message, retryable=True, pg=pg)
    retryable = sqlstate in RETRYABLE_SQLSTATES
    return error("sql", f"{prefix}{text}", retryable=retryable, code=sqlstate, pg=pg)


def _is_connection_loss(exc: psycopg.Error, sqlstate: str | None) -> bool:
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _pg_details(
    exc: psycopg.Error, sqlstate: str | None, index: int, where: Any
) -> dict[str, Any]:
    diag = exc.diag
    details: dict[str, Any] = {
        "sqlstate": sqlstate,
        "code": type(exc).__name__,
        "statement_index": index,
    }
    if isinstance(where, str):
        details["statement"] = where[:500]
    for name in ("message_detail", "message_hint", "statement_position"):
        value = getattr(diag, name, None)
        if value:
            details[name.removeprefix("message_")] = value
    return details


# --- Exactly once (DSL 10.25, DESIGN-NOTES R8). --------------------------------


def _execute_once(
    conn: psycopg.Connection[Any],
    statements: list[str],
    ctx: ToolContext,
    dog: Watchdog,
) -> dict[str, Any]:
    key = ctx.effect_key
    _ensure_effect_table(conn)
    stored = _stored_summary(conn, key)
    if stored is not None:
        return _replayed(stored, key)
    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            _claim(cur, key)
            result: dict[str, Any] = {}
            for index, statement in enumerate(statements, start=1):
                result = _run_statement(cur, statement, index, len(statements), dog)
            cur.execute(
                "UPDATE noetl_effect SET summary = %s WHERE effect_key = %s",
                (Jsonb(result), key),
            )
    except _AlreadyClaimed:
        return _replayed(_stored_summary(conn, key), key)
    return ok(result, effect={"key": key, "replayed": False})


def _ensure_effect_table(conn: psycopg.Connection[Any]) -> None:
    # A concurrent delivery may create it at the same moment.
    with contextlib.suppress(pg_errors.UniqueViolation, pg_errors.DuplicateTable):
        conn.execute(_EFFECT_TABLE)


def _stored_summary(conn: psycopg.Connection[Any], key: str) -> Any:
    row = conn.execute(
        "SELECT summary FROM noetl_effect WHERE effect_key = %s", (key,)
    ).fetchone()
    return None if row is None else row[0]


def _claim(cur: psycopg.Cursor[Any], key: str) -> None:
    """Insert the key first: a concurrent duplicate waits here on the primary
    key until this transaction ends, then fails (or claims it after a rollback)."""
    try:
        cur.execute("INSERT INTO noetl_effect (effect_key) VALUES (%s)", (key,))
    except pg_errors.UniqueViolation as exc:
        raise _AlreadyClaimed from exc


def _replayed(summary: Any, key: str) -> dict[str, Any]:
    return ok(summary, effect={"key": key, "replayed": True})
