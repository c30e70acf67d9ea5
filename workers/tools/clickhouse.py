"""The ``clickhouse`` tool (DSL sections 5.8, 8, 10.10) over the native
protocol (clickhouse-driver).

SQL is split into statements like the postgres tool's and run one after
the other on one connection; the result is the last statement's, in the
postgres shape (``rows``, ``row_count``, ``columns``, ``statement_count``).
``insert: {table, rows}`` (or ``table`` with ``rows``) sends rows as data
(no SQL quoting involved), after any statements.

A Watchdog disconnects the client when the run is cancelled or the task
times out; ``max_execution_time`` bounds each query on the server too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stop,
    Stopwatch,
    ToolContext,
    Watchdog,
    credential_fields,
    error,
    first_field,
    jsonable,
    ok,
)
from workers.masking import mask_text
from workers.tools.sqlsplit import SqlConfigError, split_statements, sql_from_config

DEFAULT_PORT = 9000
CONNECT_TIMEOUT_S = 10
AUTH_CODES = {192, 193, 194, 516}  # unknown user, wrong password, ..., auth failed
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_INLINE_VALUES = re.compile(r"^\s*INSERT\b.*?\bVALUES\s*\(", re.IGNORECASE | re.DOTALL)
# Servers before 19 wait for a data block after an INSERT whose values are in
# the query text, so the statement would hang until the socket times out.
FIRST_INLINE_VALUES_MAJOR = 19


@dataclass
class _Target:
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    secret: str = ""


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        statements = _statements(config)
        insert = _insert(config)
        target = connection_target(config, ctx)
    except CredentialError as exc:
        return error("credential", str(exc))
    except (SqlConfigError, ConfigError) as exc:
        return error("config", str(exc))
    if not statements and insert is None:
        return error("config", "nothing to run: give SQL (command/query) or insert")
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before connecting")
    client = _client(target, ctx)
    try:
        with Watchdog(ctx, ctx.timeout, client.disconnect) as dog:
            try:
                return ok(_execute(client, statements, insert, dog, target))
            except Stop as stop:
                return stop.outcome
            except (ch_errors.Error, OSError, EOFError) as exc:
                return _failure(exc, 0, None, dog, target)
    finally:
        client.disconnect()


def _statements(config: dict[str, Any]) -> list[str]:
    if not any(
        config.get(k) not in (None, "", [])
        for k in (
            "command",
            "commands",
            "query",
            "queries",
            "cmd",
            "script",
            "command_b64",
            "commands_b64",
            "query_b64",
        )
    ):
        return []
    return split_statements(sql_from_config(config))


def _insert(config: dict[str, Any]) -> dict[str, Any] | None:
    spec = config.get("insert")
    if spec is None and config.get("table") and "rows" in config:
        spec = {"table": config["table"], "rows": config["rows"]}
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError("insert must be a map with table and rows")
    table = str(spec.get("table") or "")
    if not _IDENTIFIER.match(table):
        raise ConfigError(f"insert.table {table!r} is not a table name (db.table)")
    rows = spec.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError("insert.rows must be a list of maps (column: value)")
    return {"table": table, "rows": rows}


# --- Connecting. ---------------------------------------------------------------------


def connection_target(config: dict[str, Any], ctx: ToolContext) -> _Target:
    """Client parameters from the credential, then inline keys."""
    fields = credential_fields(config, ctx)
    for key in ("host", "port", "user", "password", "database", "url"):
        if config.get(key) not in (None, ""):
            fields[key] = config[key]
    url = first_field(fields, "url", "dsn")
    params: dict[str, Any] = {}
    if url:
        params.update(_from_url(str(url)))
    host = first_field(fields, "host", "db_host", "hostname")
    if host is None and not params:
        raise ConfigError(
            "no connection given: set auth to a credential name (host, port, "
            "user, password, database) or host"
        )
    if host is not None:
        params["host"] = str(host)
    port = first_field(fields, "port", "db_port")
    params["port"] = int(port) if port is not None else params.get("port", DEFAULT_PORT)
    params["user"] = str(
        first_field(fields, "user", "username", "db_user")
        or params.get("user")
        or "default"
    )
    password = first_field(fields, "password", "db_password")
    params["password"] = str(
        password if password is not None else params.get("password", "")
    )
    database = first_field(fields, "database", "db_name", "dbname", "db")
    params["database"] = str(database or params.get("database") or "default")
    if first_field(fields, "secure") is not None:
        params["secure"] = str(fields["secure"]).lower() in {"true", "1", "yes"}
    label = f"{params['user']}@{params['host']}:{params['port']}/{params['database']}"
    return _Target(params=params, label=label, secret=params["password"])


def _from_url(url: str) -> dict[str, Any]:
    match = re.match(
        r"^clickhouse://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?"
        r"(?P<host>[^:/?]+)(?::(?P<port>\d+))?(?:/(?P<database>[^?]*))?",
        url,
    )
    if not match:
        raise ConfigError("url must look like clickhouse://user:password@host:9000/db")
    parts = {k: v for k, v in match.groupdict().items() if v}
    if "port" in parts:
        parts["port"] = int(parts["port"])
    return parts


def _client(target: _Target, ctx: ToolContext) -> Client:
    settings: dict[str, Any] = {}
    if ctx.timeout and ctx.timeout > 0:
        settings["max_execution_time"] = max(1, int(ctx.timeout))
    timeout = max(2, min(CONNECT_TIMEOUT_S, int(ctx.timeout or CONNECT_TIMEOUT_S)))
    return Client(
        **target.params,
        connect_timeout=timeout,
        send_receive_timeout=max(timeout, int(ctx.timeout or 0) + 5),
        settings=settings,
        client_name="noetl",
    )


# --- Running. ---------------------------------------------------------------------


def _execute(
    client: Client,
    statements: list[str],
    insert: dict[str, Any] | None,
    dog: Watchdog,
    target: _Target,
) -> dict[str, Any]:
    count = len(statements) + (1 if insert else 0)
    result: dict[str, Any] = {}
    for index, statement in enumerate(statements, start=1):
        if dog.fired:
            raise Stop(_interrupted(dog, index))
        try:
            _refuse_inline_values(client, statement, index)
            rows, columns = client.execute(statement, with_column_types=True)
        except (ch_errors.Error, OSError, EOFError) as exc:
            raise Stop(_failure(exc, index, statement, dog, target)) from exc
        result = _statement_result(client, statement, rows, columns, count)
    if insert is not None:
        result = _insert_rows(client, insert, count, dog, target)
    return result


def _refuse_inline_values(client: Client, statement: str, index: int) -> None:
    if not _INLINE_VALUES.match(statement):
        return
    client.connection.force_connect()
    info = client.connection.server_info
    if info.version_major < FIRST_INLINE_VALUES_MAJOR:
        version = f"{info.version_major}.{info.version_minor}"
        raise Stop(
            error(
                "config",
                f"statement {index}: this ClickHouse server ({version}) does not "
                "take INSERT ... VALUES with the values in the SQL over the "
                "native protocol; use insert: {table, rows} or INSERT ... SELECT",
            )
        )


def _statement_result(
    client: Client, statement: str, rows: list[Any], columns: list[Any], count: int
) -> dict[str, Any]:
    if not columns:
        progress = getattr(client.last_query, "progress", None)
        written = getattr(progress, "written_rows", 0) or 0
        verb = statement.split(None, 1)[0].upper() if statement.split() else "OK"
        return {
            "status": "success",
            "row_count": written,
            "message": verb,
            "statement_count": count,
        }
    names = [column[0] for column in columns]
    shaped = [jsonable(dict(zip(names, row, strict=True))) for row in rows]
    return {
        "status": "success",
        "rows": shaped,
        "row_count": len(shaped),
        "columns": names,
        "statement_count": count,
    }


def _insert_rows(
    client: Client,
    insert: dict[str, Any],
    count: int,
    dog: Watchdog,
    target: _Target,
) -> dict[str, Any]:
    rows = insert["rows"]
    if dog.fired:
        raise Stop(_interrupted(dog, count))
    if rows:
        columns = list(rows[0])
        listed = ", ".join(f"`{c}`" for c in columns)
        statement = f"INSERT INTO {insert['table']} ({listed}) VALUES"
        try:
            client.execute(statement, [[row.get(c) for c in columns] for row in rows])
        except (ch_errors.Error, OSError, EOFError) as exc:
            outcome = _failure(exc, count, statement, dog, target)
            message = outcome["error"]["message"].split(": ", 1)[-1]
            outcome["error"]["message"] = f"insert into {insert['table']}: {message}"
            raise Stop(outcome) from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            message = f"insert into {insert['table']}: a value does not fit: {exc}"
            raise Stop(error("sql", message, code="value")) from exc
    return {
        "status": "success",
        "row_count": len(rows),
        "message": f"INSERT {len(rows)}",
        "table": insert["table"],
        "statement_count": count,
    }


# --- Errors. ----------------------------------------------------------------------


def _interrupted(dog: Watchdog, index: int) -> dict[str, Any]:
    if dog.fired == "cancelled":
        return error("cancelled", f"statement {index}: cancelled")
    return error(
        "timeout",
        f"statement {index}: timed out after {dog.seconds:g}s",
        retryable=True,
    )


def _failure(
    exc: Exception,
    index: int,
    statement: str | None,
    dog: Watchdog,
    target: _Target,
) -> dict[str, Any]:
    if dog.fired:
        return _interrupted(dog, index)
    code = getattr(exc, "code", None)
    text = mask_text(server_message(exc), {target.secret} if target.secret else set())
    prefix = f"statement {index}: " if index else ""
    details: dict[str, Any] = {"code": code, "statement_index": index}
    if statement is not None:
        details["statement"] = statement[:500]
    if isinstance(exc, ch_errors.ServerException) and code in AUTH_CODES:
        message = f"clickhouse {target.label} refused the login: {text}"
        return error("auth", message, code=code)
    if isinstance(exc, ch_errors.SocketTimeoutError):
        return error("timeout", f"{prefix}{text}", retryable=True, clickhouse=details)
    if isinstance(
        exc, ch_errors.NetworkError | ch_errors.UnexpectedPacketFromServerError
    ):
        message = f"cannot connect to clickhouse {target.label}: {text}"
        return error("connection", message, retryable=True, clickhouse=details)
    if code == 159:  # TIMEOUT_EXCEEDED (max_execution_time)
        return error("timeout", f"{prefix}{text}", retryable=True, clickhouse=details)
    return error("sql", f"{prefix}{text}", code=code, clickhouse=details)


def server_message(exc: Exception) -> str:
    """The server's message on one line, without its stack trace."""
    text = getattr(exc, "message", None) or str(exc)
    text = text.split("Stack trace:", 1)[0]
    text = text.replace("DB::Exception: ", "")
    return " ".join(text.split()).rstrip(".") or type(exc).__name__
