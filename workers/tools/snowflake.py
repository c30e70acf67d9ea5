"""The ``snowflake`` tool (DSL sections 5.8, 8, 10.10) over
snowflake-connector-python.

The credential (type ``snowflake``) gives ``account``, ``user`` and either
``password`` or a key pair (``private_key``: the PEM text, with
``private_key_passphrase`` when it is encrypted), plus optional
``warehouse``, ``database``, ``schema``, ``role``. The SQL is split into
statements like the postgres tool's, run one after the other on one
connection, and the result is the last statement's in the postgres shape.

The task timeout bounds the login (``login_timeout``) and each statement
(``STATEMENT_TIMEOUT_IN_SECONDS``); a cancel aborts the running query.
A live run needs a Snowflake account: the tests cover everything up to the
network (credentials, connection parameters, statements, result shaping)
and the connector's own failure when no account answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from workers.tools.sqlsplit import (
    SqlConfigError,
    split_statements,
    sql_from_config,
)

LOGIN_TIMEOUT_S = 60
AUTH_ERRNOS = {390100, 390101, 390102, 390144, 390186, 390191, 394304}
_OPTIONAL = (
    "warehouse",
    "database",
    "schema",
    "role",
    "authenticator",
    "region",
    "host",
    "port",
    "protocol",
)


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        statements = split_statements(sql_from_config(config))
        params = connection_params(config, ctx)
    except CredentialError as exc:
        return error("credential", str(exc))
    except (SqlConfigError, ConfigError) as exc:
        return error("config", str(exc))
    if not statements:
        return error("config", "the SQL has no statements (only comments?)")
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before connecting")
    import snowflake.connector

    return execute(snowflake.connector.connect, params, statements, ctx)


# --- Connection parameters. ---------------------------------------------------------


def connection_params(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect``."""
    fields = credential_fields(config, ctx)
    for key in ("account", "user", *_OPTIONAL):
        if config.get(key) not in (None, ""):
            fields[key] = config[key]
    account = first_field(fields, "account", "sf_account", "account_identifier")
    user = first_field(fields, "user", "username", "sf_user")
    if not account or not user:
        raise ConfigError(
            "no Snowflake account or user: set auth to a snowflake credential "
            "(account, user, and password or private_key)"
        )
    params: dict[str, Any] = {"account": str(account), "user": str(user)}
    key = first_field(fields, "private_key", "private_key_pem", "sf_private_key")
    password = first_field(fields, "password", "sf_password")
    if key is not None:
        passphrase = first_field(fields, "private_key_passphrase", "passphrase")
        params["private_key"] = private_key_der(str(key), passphrase)
    elif password is not None:
        params["password"] = str(password)
    elif str(fields.get("authenticator") or "").lower() != "externalbrowser":
        raise CredentialError(
            "the snowflake credential has neither password nor private_key"
        )
    for name in _OPTIONAL:
        value = first_field(fields, name, f"sf_{name}")
        if value is not None:
            params[name] = int(value) if name == "port" else str(value)
    timeout = int(ctx.timeout) if ctx.timeout and ctx.timeout > 0 else 0
    params["login_timeout"] = (
        min(LOGIN_TIMEOUT_S, timeout) if timeout else LOGIN_TIMEOUT_S
    )
    params["application"] = "NoETL"
    # Log out on close: a task's session ends with the task.
    params["enable_server_session_keep_alive_auto_detection"] = False
    if timeout:
        params["session_parameters"] = {"STATEMENT_TIMEOUT_IN_SECONDS": timeout}
    return params


def private_key_der(pem: str, passphrase: Any = None) -> bytes:
    """The PEM private key as unencrypted PKCS#8 DER, what the connector takes."""
    from cryptography.hazmat.primitives import serialization

    secret = str(passphrase).encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=secret)
    except (ValueError, TypeError) as exc:
        raise CredentialError(
            f"the snowflake private_key cannot be read: {exc}"
        ) from exc
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def label(params: dict[str, Any]) -> str:
    where = params["account"]
    if params.get("database"):
        where += f"/{params['database']}"
    return f"{params['user']}@{where}"


# --- Running statements through the connector's cursor interface. -------------------


def execute(
    connect: Callable[..., Any],
    params: dict[str, Any],
    statements: list[str],
    ctx: ToolContext,
) -> dict[str, Any]:
    """Connect with ``connect(**params)`` and run the statements; the result
    is the last statement's."""
    from snowflake.connector import errors as sf_errors

    try:
        conn = connect(**params)
    except sf_errors.Error as exc:
        return _connect_error(params, exc)
    try:
        cur = conn.cursor()
        with Watchdog(ctx, ctx.timeout, lambda: _abort(cur)) as dog:
            try:
                return ok(_run_all(cur, statements, dog))
            except Stop as stop:
                return stop.outcome
    finally:
        conn.close()


def _abort(cur: Any) -> None:
    if getattr(cur, "sfqid", None):
        cur.abort_query(cur.sfqid)


def _run_all(cur: Any, statements: list[str], dog: Watchdog) -> dict[str, Any]:
    from snowflake.connector import errors as sf_errors

    result: dict[str, Any] = {}
    for index, statement in enumerate(statements, start=1):
        if dog.fired:
            raise Stop(_interrupted(dog, index))
        try:
            cur.execute(statement)
            result = shape_result(cur, len(statements))
        except sf_errors.Error as exc:
            raise Stop(_statement_error(exc, index, statement, dog)) from exc
    return result


def shape_result(cur: Any, count: int) -> dict[str, Any]:
    """Rows as maps (column names as Snowflake reports them), or a count."""
    description = cur.description or []
    names = [column[0] for column in description]
    if _is_status(names):
        return {
            "status": "success",
            "row_count": max(cur.rowcount or 0, 0),
            "message": _status_text(cur),
            "statement_count": count,
            "query_id": getattr(cur, "sfqid", None),
        }
    rows = [jsonable(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
    return {
        "status": "success",
        "rows": rows,
        "row_count": len(rows),
        "columns": names,
        "statement_count": count,
        "query_id": getattr(cur, "sfqid", None),
    }


_STATUS_COLUMNS = (
    [],
    ["status"],
    ["number of rows inserted"],
    ["number of rows updated"],
    ["number of rows deleted"],
    ["number of rows updated", "number of multi-joined rows updated"],
)


def _is_status(names: list[str]) -> bool:
    """DDL and DML answer with one status or count column, not data."""
    return [n.lower() for n in names] in _STATUS_COLUMNS


def _status_text(cur: Any) -> str:
    try:
        row = cur.fetchone()
    except Exception:  # noqa: BLE001 - a status row is a nicety
        return "OK"
    return str(row[0]) if row else "OK"


def _interrupted(dog: Watchdog, index: int) -> dict[str, Any]:
    if dog.fired == "cancelled":
        return error("cancelled", f"statement {index}: cancelled")
    return error(
        "timeout",
        f"statement {index}: timed out after {dog.seconds:g}s",
        retryable=True,
    )


def _connect_error(params: dict[str, Any], exc: Any) -> dict[str, Any]:
    text = " ".join(
        str(getattr(exc, "raw_msg", None) or getattr(exc, "msg", None) or exc).split()
    )
    where = f"snowflake {label(params)}"
    if getattr(exc, "errno", None) in AUTH_ERRNOS:
        return error("auth", f"{where} refused the login: {text}", code=exc.errno)
    return error(
        "connection",
        f"cannot connect to {where}: {text}",
        retryable=True,
        code=getattr(exc, "errno", None),
    )


def _statement_error(
    exc: Any, index: int, statement: str, dog: Watchdog
) -> dict[str, Any]:
    if dog.fired:
        return _interrupted(dog, index)
    from snowflake.connector import errors as sf_errors

    text = " ".join(
        str(getattr(exc, "raw_msg", None) or getattr(exc, "msg", None) or exc).split()
    )
    details = {
        "errno": getattr(exc, "errno", None),
        "sqlstate": getattr(exc, "sqlstate", None),
        "query_id": getattr(exc, "sfqid", None),
        "statement_index": index,
        "statement": statement[:500],
    }
    prefix = f"statement {index}: "
    if details["errno"] == 604 or "timeout" in text.lower():  # 604: cancelled
        return error("timeout", prefix + text, retryable=True, snowflake=details)
    if isinstance(exc, sf_errors.OperationalError):
        return error("connection", prefix + text, retryable=True, snowflake=details)
    return error("sql", prefix + text, code=details["sqlstate"], snowflake=details)
