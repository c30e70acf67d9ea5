"""The snowflake tool up to the wire. No Snowflake account is reachable
from here, so statements run through an in-test connection that speaks the
connector's cursor interface (execute, description, fetchall, rowcount,
sfqid); the real connector is used for the login that finds no server."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector import errors as sf_errors

from workers.tools import snowflake
from workers.tools.base import CredentialError, ToolContext

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
LOCKED_PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"open-sesame"),
).decode()
STORE = {
    "sf_password": {
        "type": "snowflake",
        "account": "xy12345.eu-west-1",
        "user": "LOADER",
        "password": "pw-39",
        "warehouse": "WH",
        "database": "ANALYTICS",
        "schema": "PUBLIC",
        "role": "ETL",
    },
    "sf_keypair": {
        "type": "snowflake",
        "account": "xy12345",
        "user": "LOADER",
        "private_key": LOCKED_PEM,
        "private_key_passphrase": "open-sesame",
    },
    "sf_plain_key": {
        "type": "snowflake",
        "account": "xy12345",
        "user": "LOADER",
        "private_key": PEM,
    },
    "sf_bad_pass": {
        "type": "snowflake",
        "account": "a",
        "user": "u",
        "private_key": LOCKED_PEM,
        "private_key_passphrase": "nope",
    },
    "sf_nothing": {"type": "snowflake", "account": "a", "user": "u"},
}


def _ctx(**kwargs: Any) -> ToolContext:
    def credential(name: str) -> dict[str, Any]:
        if name not in STORE:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(STORE[name])

    kwargs.setdefault("timeout", 120.0)
    return ToolContext(credential=credential, **kwargs)


class _Cursor:
    """Answers like the connector's cursor for a few canned statements."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self.sfqid: str | None = None
        self._rows: list[tuple] = []

    def execute(self, statement: str) -> _Cursor:
        self.log.append(statement)
        self.sfqid = f"01b2-{len(self.log)}"
        text = statement.upper()
        if text.startswith("SELEC "):
            raise sf_errors.ProgrammingError(
                msg="SQL compilation error: syntax error line 1 at position 0 "
                "unexpected 'SELEC'.",
                errno=1003,
                sqlstate="42000",
                sfqid=self.sfqid,
            )
        if text.startswith("CREATE"):
            self._answer([("status",)], [("Table T successfully created.",)], 1)
        elif text.startswith("INSERT"):
            self._answer([("number of rows inserted",)], [(3,)], 3)
        else:
            self._answer(
                [("ID",), ("NAME",), ("AMOUNT",)],
                [(1, "a", __import__("decimal").Decimal("2.50")), (2, "b", None)],
                2,
            )
        return self

    def _answer(self, description: list[tuple], rows: list[tuple], count: int) -> None:
        self.description, self._rows, self.rowcount = description, rows, count

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def abort_query(self, qid: str) -> bool:
        return True


class _Connection:
    def __init__(self, **params: Any) -> None:
        self.params = params
        self.log: list[str] = []
        self.closed = False

    def cursor(self) -> _Cursor:
        return _Cursor(self.log)

    def close(self) -> None:
        self.closed = True


def test_a_password_credential_maps_to_connection_parameters() -> None:
    params = snowflake.connection_params({"auth": "sf_password"}, _ctx(timeout=30))
    assert params == {
        "account": "xy12345.eu-west-1",
        "user": "LOADER",
        "password": "pw-39",
        "warehouse": "WH",
        "database": "ANALYTICS",
        "schema": "PUBLIC",
        "role": "ETL",
        "login_timeout": 30,
        "application": "NoETL",
        "enable_server_session_keep_alive_auto_detection": False,
        "session_parameters": {"STATEMENT_TIMEOUT_IN_SECONDS": 30},
    }


def test_inline_keys_override_the_credential() -> None:
    params = snowflake.connection_params(
        {"auth": "sf_password", "warehouse": "BIG_WH", "schema": "STAGING"}, _ctx()
    )
    assert (params["warehouse"], params["schema"]) == ("BIG_WH", "STAGING")


def test_a_key_pair_is_decrypted_to_pkcs8_der() -> None:
    for name in ("sf_keypair", "sf_plain_key"):
        params = snowflake.connection_params({"auth": name}, _ctx())
        assert "password" not in params
        loaded = serialization.load_der_private_key(params["private_key"], None)
        assert loaded.private_numbers() == KEY.private_numbers()


def test_unusable_credentials_are_credential_errors() -> None:
    wrong = snowflake.run({"auth": "sf_bad_pass", "query": "SELECT 1"}, _ctx())
    assert wrong["error"]["kind"] == "credential"
    assert "private_key cannot be read" in wrong["error"]["message"]
    empty = snowflake.run({"auth": "sf_nothing", "query": "SELECT 1"}, _ctx())
    assert "neither password nor private_key" in empty["error"]["message"]
    missing = snowflake.run({"auth": "sf_gone", "query": "SELECT 1"}, _ctx())
    assert missing["error"]["kind"] == "credential"
    nothing = snowflake.run({"query": "SELECT 1"}, _ctx())
    assert nothing["error"]["kind"] == "config"
    assert "no Snowflake account or user" in nothing["error"]["message"]


def test_statements_run_in_order_and_the_last_query_is_shaped_like_postgres() -> None:
    made: list[_Connection] = []

    def connect(**params: Any) -> _Connection:
        made.append(_Connection(**params))
        return made[-1]

    params = snowflake.connection_params({"auth": "sf_password"}, _ctx())
    sql = "CREATE TABLE t (id int); INSERT INTO t VALUES (1),(2),(3); SELECT * FROM t"
    outcome = snowflake.execute(
        connect, params, snowflake.split_statements(sql), _ctx()
    )
    assert outcome["status"] == "ok", outcome
    assert made[0].params["password"] == "pw-39"
    assert made[0].log == [
        "CREATE TABLE t (id int)",
        "INSERT INTO t VALUES (1),(2),(3)",
        "SELECT * FROM t",
    ]
    assert made[0].closed
    assert outcome["data"] == {
        "status": "success",
        "rows": [
            {"ID": 1, "NAME": "a", "AMOUNT": 2.5},
            {"ID": 2, "NAME": "b", "AMOUNT": None},
        ],
        "row_count": 2,
        "columns": ["ID", "NAME", "AMOUNT"],
        "statement_count": 3,
        "query_id": "01b2-3",
    }


def test_ddl_and_dml_report_their_status_and_count() -> None:
    conn = _Connection()
    created = snowflake.execute(
        lambda **p: conn,
        {"account": "a", "user": "u"},
        ["CREATE TABLE t (x int)"],
        _ctx(),
    )
    assert created["data"]["message"] == "Table T successfully created."
    inserted = snowflake.execute(
        lambda **p: conn,
        {"account": "a", "user": "u"},
        ["INSERT INTO t VALUES (1)"],
        _ctx(),
    )
    assert inserted["data"]["row_count"] == 3


def test_a_failed_statement_stops_the_rest_with_its_sqlstate() -> None:
    conn = _Connection()
    outcome = snowflake.execute(
        lambda **p: conn,
        {"account": "a", "user": "u"},
        ["SELECT 1", "SELEC 2", "SELECT 3"],
        _ctx(),
    )
    assert outcome["error"]["kind"] == "sql"
    assert outcome["error"]["code"] == "42000"
    assert outcome["error"]["message"].startswith("statement 2: SQL compilation error")
    assert outcome["snowflake"]["query_id"] == "01b2-2"
    assert conn.log == ["SELECT 1", "SELEC 2"]


def test_a_refused_login_is_an_auth_error() -> None:
    def refuse(**params: Any) -> None:
        raise sf_errors.DatabaseError(
            msg="Incorrect username or password was specified.",
            errno=390100,
            sqlstate="08004",
        )

    outcome = snowflake.execute(
        refuse, {"account": "a", "user": "u"}, ["SELECT 1"], _ctx()
    )
    assert outcome["error"]["kind"] == "auth"
    assert "u@a refused the login" in outcome["error"]["message"]


def test_the_real_connector_reports_an_account_that_does_not_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    outcome = snowflake.run(
        {
            "auth": "sf_password",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "query": "SELECT 1",
        },
        _ctx(timeout=2),
    )
    assert time.monotonic() - started < 30
    assert outcome["error"]["kind"] == "connection", outcome
    assert outcome["error"]["retryable"] is True
    assert (
        "cannot connect to snowflake LOADER@xy12345.eu-west-1/ANALYTICS"
        in (outcome["error"]["message"])
    )
    assert "pw-39" not in str(outcome)


@pytest.mark.parametrize("config", [{}, {"query": "-- nothing"}])
def test_no_sql_is_a_config_error(config: dict[str, Any]) -> None:
    outcome = snowflake.run({"auth": "sf_password", **config}, _ctx())
    assert outcome["error"]["kind"] == "config"
