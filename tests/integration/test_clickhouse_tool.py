"""The clickhouse tool against the real local ClickHouse server that
``scripts/clickhouse start`` runs on 127.0.0.1:9000 (``.ci/run`` starts it).
Each test module works in a database of its own and drops it."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_driver import Client

from tests.object_servers import ensure_clickhouse
from workers.tools import clickhouse, run_tool
from workers.tools.base import CredentialError, ToolContext

HOST = os.environ.get("NOETL_TEST_CLICKHOUSE_HOST", "127.0.0.1")
PORT = int(os.environ.get("NOETL_TEST_CLICKHOUSE_PORT", "9000"))
DATABASE = f"noetl_test_{uuid.uuid4().hex[:10]}"
# About 30 s of sleeping on the server, in half-second blocks.
SLOW_QUERY = (
    "SELECT sleepEachRow(0.5) FROM system.numbers LIMIT 60 SETTINGS max_block_size = 1"
)


@pytest.fixture(scope="module", autouse=True)
def database() -> Iterator[str]:
    ensure_clickhouse()
    client = Client(host=HOST, port=PORT)
    client.execute(f"CREATE DATABASE {DATABASE}")
    yield DATABASE
    client.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    client.disconnect()


def _ctx(**kwargs: Any) -> ToolContext:
    store = {
        "ch_local": {
            "type": "clickhouse",
            "host": HOST,
            "port": PORT,
            "user": "default",
            "database": DATABASE,
        },
        "ch_wrong_password": {
            "type": "clickhouse",
            "host": HOST,
            "port": PORT,
            "user": "default",
            "password": "not-the-one-831",
        },
        "ch_url": {
            "type": "clickhouse",
            "url": f"clickhouse://default@{HOST}:{PORT}/{DATABASE}",
        },
    }

    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    kwargs.setdefault("timeout", 30.0)
    return ToolContext(credential=credential, **kwargs)


def _run(config: dict[str, Any], ctx: ToolContext | None = None) -> dict[str, Any]:
    return clickhouse.run({"auth": "ch_local", **config}, ctx or _ctx())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_statements_run_in_order_and_the_last_query_gives_rows() -> None:
    outcome = _run(
        {
            "command": """
        CREATE TABLE cities (name String, pop UInt32, area Decimal(9, 2),
                             founded Date) ENGINE = MergeTree ORDER BY name;
        INSERT INTO cities
            SELECT 'Lisbon', 545000, toDecimal32(100.05, 2), toDate('2024-03-01')
            UNION ALL
            SELECT 'Oslo', 709000, toDecimal32(454, 2), toDate('2023-05-17');
        SELECT name, pop, area, founded FROM cities ORDER BY name
    """
        }
    )
    assert outcome["status"] == "ok", outcome
    data = outcome["data"]
    assert data["statement_count"] == 3
    assert data["columns"] == ["name", "pop", "area", "founded"]
    assert data["rows"] == [
        {"name": "Lisbon", "pop": 545000, "area": 100.05, "founded": "2024-03-01"},
        {"name": "Oslo", "pop": 709000, "area": 454.0, "founded": "2023-05-17"},
    ]
    assert data["row_count"] == 2


def test_insert_sends_rows_as_data_and_counts_them() -> None:
    _run(
        {
            "command": "CREATE TABLE events (id UInt32, note String, score "
            "Nullable(Float64)) ENGINE = MergeTree ORDER BY id"
        }
    )
    rows = [
        {"id": 1, "note": "it's quoted; fine", "score": 0.5},
        {"id": 2, "note": "two", "score": None},
    ]
    inserted = _run({"insert": {"table": "events", "rows": rows}})
    assert inserted["data"]["row_count"] == 2
    assert inserted["data"]["message"] == "INSERT 2"
    back = _run({"query": "SELECT id, note, score FROM events ORDER BY id"})
    assert back["data"]["rows"] == rows


def test_a_url_credential_works_like_separate_fields() -> None:
    outcome = clickhouse.run(
        {"auth": "ch_url", "query": "SELECT currentDatabase() AS db"}, _ctx()
    )
    assert outcome["data"]["rows"] == [{"db": DATABASE}]


def test_a_failed_statement_is_a_sql_error_naming_it_and_stops_the_rest() -> None:
    outcome = _run(
        {
            "command": "CREATE TABLE stop_here (x UInt8) ENGINE = Memory; "
            "SELEC 1; DROP TABLE stop_here"
        }
    )
    assert outcome["status"] == "error"
    assert outcome["error"]["kind"] == "sql"
    assert outcome["error"]["code"] == 62
    assert outcome["error"]["message"].startswith("statement 2: Syntax error")
    assert "Stack trace" not in outcome["error"]["message"]
    assert outcome["clickhouse"]["statement"] == "SELEC 1"
    still = _run({"query": "EXISTS TABLE stop_here"})
    assert still["data"]["rows"][0]["result"] == 1


def test_an_unknown_table_is_a_sql_error() -> None:
    outcome = _run({"query": "SELECT * FROM no_such_table"})
    assert outcome["error"]["kind"] == "sql"
    assert "no_such_table doesn't exist" in outcome["error"]["message"]


def test_a_wrong_password_is_refused_without_echoing_it() -> None:
    outcome = clickhouse.run({"auth": "ch_wrong_password", "query": "SELECT 1"}, _ctx())
    assert outcome["error"]["kind"] == "auth"
    assert outcome["error"]["retryable"] is False
    assert (
        "refused the login: Wrong password for user default"
        in (outcome["error"]["message"])
    )
    assert "not-the-one-831" not in str(outcome)


def test_a_missing_credential_is_a_credential_error() -> None:
    outcome = clickhouse.run({"auth": "ch_nobody", "query": "SELECT 1"}, _ctx())
    assert outcome["error"]["kind"] == "credential"


def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    port = _free_port()
    outcome = clickhouse.run(
        {"host": "127.0.0.1", "port": port, "query": "SELECT 1"}, _ctx()
    )
    assert outcome["error"]["kind"] == "connection"
    assert outcome["error"]["retryable"] is True
    assert (
        f"cannot connect to clickhouse default@127.0.0.1:{port}/default"
        in (outcome["error"]["message"])
    )
    assert "Connection refused" in outcome["error"]["message"]


def test_malformed_configs_are_config_errors() -> None:
    assert _run({})["error"]["kind"] == "config"
    bad_table = _run({"insert": {"table": "x; DROP TABLE y", "rows": []}})
    assert "is not a table name" in bad_table["error"]["message"]
    bad_rows = _run({"insert": {"table": "events", "rows": [1, 2]}})
    assert "insert.rows must be a list of maps" in bad_rows["error"]["message"]
    no_where = clickhouse.run({"query": "SELECT 1"}, _ctx())
    assert "no connection given" in no_where["error"]["message"]


def test_a_value_of_the_wrong_type_is_a_sql_error_about_the_value() -> None:
    _run({"command": "CREATE TABLE typed (n UInt32) ENGINE = Memory"})
    outcome = _run({"insert": {"table": "typed", "rows": [{"n": "many"}]}})
    assert outcome["error"]["kind"] == "sql"
    assert "insert into typed" in outcome["error"]["message"]


def test_a_cancel_interrupts_a_long_query() -> None:
    ctx = _ctx()
    threading.Timer(0.5, ctx.cancelled.set).start()
    started = time.monotonic()
    outcome = _run({"query": SLOW_QUERY}, ctx)
    assert time.monotonic() - started < 10
    assert outcome["error"]["kind"] == "cancelled", outcome


def test_it_runs_through_run_tool() -> None:
    outcome = run_tool(
        "clickhouse", {"auth": "ch_local", "query": "SELECT 1 AS one"}, _ctx()
    )
    assert outcome["data"]["rows"] == [{"one": 1}]


def test_a_timeout_interrupts_a_long_query() -> None:
    started = time.monotonic()
    outcome = _run({"query": SLOW_QUERY}, _ctx(timeout=1.0))
    assert time.monotonic() - started < 10
    assert outcome["error"]["kind"] == "timeout"
    assert outcome["error"]["retryable"] is True


def test_inline_insert_values_on_an_old_server_are_refused_at_once() -> None:
    client = Client(host=HOST, port=PORT)
    client.connection.force_connect()
    major = client.connection.server_info.version_major
    client.disconnect()
    _run({"command": "CREATE TABLE inline_values (x UInt8) ENGINE = Memory"})
    outcome = _run({"command": "INSERT INTO inline_values VALUES (1), (2)"})
    if major < clickhouse.FIRST_INLINE_VALUES_MAJOR:
        assert outcome["error"]["kind"] == "config"
        assert "use insert: {table, rows}" in outcome["error"]["message"]
    else:
        assert outcome["status"] == "ok", outcome
