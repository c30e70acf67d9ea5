"""The ``duckdb`` tool (DSL sections 5.4, 10.10, 10.25; DESIGN-NOTES R8, R9).

All statements of a call run on ONE connection (an in-memory database keeps
its state from one statement to the next); the connection is closed at the
end. The result has the postgres tool's shape: the last statement's rows (or
its affected-row count), ``columns`` and ``statement_count``.

A Watchdog thread calls ``conn.interrupt()`` when ``ctx.cancelled`` is set or
``ctx.timeout`` has passed; the loop also checks between statements.

``auth`` (or ``credentials``) names s3/gcs credentials for s3:// and gs://
URIs: one credential name, or a map of aliases to names. Each becomes a
temporary DuckDB secret (KEY_ID, SECRET, REGION, ENDPOINT, URL_STYLE,
USE_SSL, SCOPE from the credential's fields). Remote files need DuckDB's
httpfs extension; it is loaded from the ``duckdb-ext-httpfs`` package when
that is installed (the connectors extra), so nothing is downloaded at run
time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from workers.tools.base import (
    CredentialError,
    Stop,
    Stopwatch,
    ToolContext,
    Watchdog,
    error,
    first_field,
    jsonable,
    ok,
)
from workers.tools.sqlsplit import SqlConfigError, split_statements, sql_from_config

_STATUS_COLUMNS = (["Count"], ["Success"])
_EFFECT_TABLE = (
    "CREATE TABLE IF NOT EXISTS noetl_effect ("
    " effect_key VARCHAR PRIMARY KEY,"
    " summary VARCHAR NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
)


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        statements = split_statements(sql_from_config(config))
    except SqlConfigError as exc:
        return error("config", str(exc))
    if not statements:
        return error("config", "the SQL has no statements (only comments?)")
    once = _truthy(config.get("exactly_once"))
    if once and not ctx.effect_key:
        return error("config", "exactly_once needs an effect key; none was given")
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before opening the database")
    try:
        secrets = [
            secret_statement(alias, fields)
            for alias, fields in cloud_secrets(config, ctx).items()
        ]
    except CredentialError as exc:
        return error("credential", str(exc))
    database = str(config.get("database") or ":memory:")
    try:
        conn = duckdb.connect(database, config=connect_config())
    except duckdb.Error as exc:
        return error("connection", f"cannot open duckdb {database}: {exc}")
    try:
        if secrets:
            try:
                _create_secrets(conn, secrets)
            except duckdb.Error as exc:
                return error("credential", f"cannot use the credentials: {exc}")
        return _execute(conn, statements, once, ctx)
    finally:
        conn.close()


# --- Remote files: the httpfs extension and cloud secrets. ----------------------

_S3_TYPES = {"s3", "aws", "minio", "r2"}
_GCS_TYPES = {"gcs", "gcs_hmac", "gs", "google_storage"}
_SECRET_NAME = re.compile(r"[^A-Za-z0-9_]")


@cache
def httpfs_directory() -> str | None:
    """The extension directory the duckdb-ext-httpfs package installs, when it
    holds an httpfs build for this DuckDB version."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        root = Path(location) / "extensions"
        if list(root.glob(f"v{duckdb.__version__}/*/httpfs.duckdb_extension")):
            return str(root)
    return None


def connect_config() -> dict[str, Any]:
    directory = httpfs_directory()
    if directory is None:
        return {}
    # Load what is shipped; never reach the network for an extension.
    return {
        "extension_directory": directory,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": True,
    }


def cloud_secrets(config: dict[str, Any], ctx: ToolContext) -> dict[str, dict]:
    """alias -> credential fields, from ``auth``/``credentials``/``credential``."""
    ref = config.get("auth") or config.get("credentials") or config.get("credential")
    if not ref:
        return {}
    if isinstance(ref, str):
        return {ref: dict(ctx.credential(ref))}
    if not isinstance(ref, dict):
        raise CredentialError("auth must be a credential name or a map")
    if {"source", "key", "name", "fields"} & set(ref):
        name = ref.get("key") or ref.get("name")
        if isinstance(ref.get("fields"), dict):
            return {str(name or "inline"): dict(ref["fields"])}
        if not name:
            raise CredentialError("auth names no credential")
        return {str(name): dict(ctx.credential(str(name)))}
    found = {}
    for alias, item in ref.items():
        name = item.get("key") or item.get("name") if isinstance(item, dict) else item
        if not name:
            raise CredentialError(f"auth alias {alias!r} names no credential")
        found[str(alias)] = dict(ctx.credential(str(name)))
    return found


def secret_statement(alias: str, fields: dict[str, Any]) -> str:
    """``CREATE TEMPORARY SECRET`` for one s3 or gcs credential."""
    kind = str(fields.get("type") or "").lower()
    if kind in _S3_TYPES:
        secret_type = "s3"
    elif kind in _GCS_TYPES:
        secret_type = "gcs"
    else:
        raise CredentialError(
            f"credential for {alias!r} has type {kind or 'none'!r}; duckdb takes "
            "s3 or gcs credentials for remote files"
        )
    options = {
        "KEY_ID": first_field(
            fields, "key_id", "access_key_id", "aws_access_key_id", "hmac_key_id"
        ),
        "SECRET": first_field(
            fields,
            "secret",
            "secret_access_key",
            "aws_secret_access_key",
            "hmac_secret",
        ),
        "REGION": first_field(fields, "region", "aws_region"),
        "SESSION_TOKEN": first_field(fields, "session_token"),
        "SCOPE": first_field(fields, "scope"),
    }
    endpoint = first_field(fields, "endpoint", "endpoint_url")
    if endpoint:
        text = str(endpoint)
        options["ENDPOINT"] = re.sub(r"^https?://", "", text).rstrip("/")
        options["USE_SSL"] = not text.startswith("http://")
        options["URL_STYLE"] = first_field(fields, "url_style") or "path"
    listed = ", ".join(
        f"{key} {_literal(value)}"
        for key, value in options.items()
        if value is not None
    )
    name = _SECRET_NAME.sub("_", alias)
    return f'CREATE OR REPLACE TEMPORARY SECRET "{name}" (TYPE {secret_type}, {listed})'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


def _create_secrets(conn: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    if httpfs_directory() is not None:
        conn.execute("LOAD httpfs")
    for statement in statements:
        conn.execute(statement)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1"}
    return bool(value)


def _execute(
    conn: duckdb.DuckDBPyConnection,
    statements: list[str],
    once: bool,
    ctx: ToolContext,
) -> dict[str, Any]:
    with Watchdog(ctx, ctx.timeout, conn.interrupt) as dog:
        try:
            if once:
                return _execute_once(conn, statements, ctx.effect_key, dog)
            return ok(_run_all(conn, statements, dog))
        except Stop as stop:
            return stop.outcome


def _run_all(
    conn: duckdb.DuckDBPyConnection, statements: list[str], dog: Watchdog
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for index, statement in enumerate(statements, start=1):
        if dog.fired:
            raise Stop(_interrupted(dog, index))
        try:
            conn.execute(statement)
            result = _statement_result(conn, statement, len(statements))
        except duckdb.Error as exc:
            raise Stop(_statement_error(exc, index, statement, dog)) from exc
    return result


def _statement_result(
    conn: duckdb.DuckDBPyConnection, statement: str, count: int
) -> dict[str, Any]:
    columns = [column[0] for column in conn.description or []]
    values = conn.fetchall() if conn.description else []
    if columns in _STATUS_COLUMNS and not _is_query(conn, statement):
        verb = _verb(conn, statement)
        if values and columns == ["Count"]:
            affected = int(values[0][0] or 0)
            verb = f"{verb} {affected}"
        else:
            affected = 0
        return {
            "status": "success",
            "row_count": affected,
            "message": verb,
            "statement_count": count,
        }
    rows = [jsonable(dict(zip(columns, row, strict=True))) for row in values]
    return {
        "status": "success",
        "rows": rows,
        "row_count": len(rows),
        "columns": columns,
        "statement_count": count,
    }


def _statement_type(conn: duckdb.DuckDBPyConnection, statement: str) -> str:
    try:
        parsed = conn.extract_statements(statement)
        return parsed[0].type.name if parsed else ""
    except (duckdb.Error, AttributeError):
        return statement.split(None, 1)[0].upper() if statement.split() else ""


def _is_query(conn: duckdb.DuckDBPyConnection, statement: str) -> bool:
    """True when a ``Count``/``Success`` column is real data (a SELECT)."""
    return _statement_type(conn, statement) in {"SELECT", "PRAGMA", "EXPLAIN"}


def _verb(conn: duckdb.DuckDBPyConnection, statement: str) -> str:
    kind = _statement_type(conn, statement)
    return kind.removesuffix("_STATEMENT") or "OK"


def _interrupted(dog: Watchdog, index: int) -> dict[str, Any]:
    if dog.fired == "cancelled":
        return error("cancelled", f"statement {index}: cancelled")
    message = f"statement {index}: timed out after {dog.seconds:g}s"
    return error("timeout", message, retryable=True)


def _statement_error(
    exc: duckdb.Error, index: int, statement: str | None, dog: Watchdog
) -> dict[str, Any]:
    if dog.fired:
        return _interrupted(dog, index)
    text = _first_part(str(exc))
    details: dict[str, Any] = {"statement_index": index, "code": type(exc).__name__}
    if statement is not None:
        details["statement"] = statement[:500]
    prefix = f"statement {index}: " if index else ""
    kind, retryable = _remote_kind(exc, text)
    return error(
        kind,
        f"{prefix}{text}",
        retryable=retryable,
        code=type(exc).__name__,
        duckdb=details,
    )


def _remote_kind(exc: duckdb.Error, text: str) -> tuple[str, bool]:
    """``auth`` or ``connection`` for a remote file's failure; else ``sql``."""
    if isinstance(exc, duckdb.HTTPException):
        if "(HTTP 401)" in text or "(HTTP 403)" in text:
            return "auth", False
        if re.search(r"\(HTTP 5\d\d\)", text):
            return "server_error", True
    if isinstance(exc, duckdb.IOException) and "could not establish connection" in (
        text.lower()
    ):
        return "connection", True
    return "sql", False


def _first_part(text: str) -> str:
    """The error text without DuckDB's ``LINE n: ...`` pointer, on one line."""
    head = text.split("\nLINE ", 1)[0]
    return " ".join(head.split()) or text


# --- Exactly once (DSL 10.25, DESIGN-NOTES R8). --------------------------------


def _execute_once(
    conn: duckdb.DuckDBPyConnection,
    statements: list[str],
    key: str,
    dog: Watchdog,
) -> dict[str, Any]:
    """One transaction: the statements, then the effect row. A file holds one
    writer process at a time, so the key is simply checked, then inserted."""
    try:
        conn.execute(_EFFECT_TABLE)
        stored = _stored_summary(conn, key)
    except duckdb.Error as exc:
        raise Stop(_statement_error(exc, 0, None, dog)) from exc
    if stored is not None:
        return ok(stored, effect={"key": key, "replayed": True})
    conn.execute("BEGIN TRANSACTION")
    try:
        result = _run_all(conn, statements, dog)
        conn.execute(
            "INSERT INTO noetl_effect (effect_key, summary) VALUES (?, ?)",
            [key, json.dumps(result)],
        )
        conn.execute("COMMIT")
    except duckdb.ConstraintException:
        conn.execute("ROLLBACK")
        return ok(_stored_summary(conn, key), effect={"key": key, "replayed": True})
    except BaseException:
        _rollback(conn)
        raise
    return ok(result, effect={"key": key, "replayed": False})


def _stored_summary(conn: duckdb.DuckDBPyConnection, key: str) -> Any:
    row = conn.execute(
        "SELECT summary FROM noetl_effect WHERE effect_key = ?", [key]
    ).fetchone()
    return None if row is None else json.loads(row[0])


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # may have ended already
        conn.execute("ROLLBACK")
