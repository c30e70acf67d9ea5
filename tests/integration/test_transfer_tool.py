"""The transfer tool between the real local servers: PostgreSQL (database
``test``), ClickHouse (scripts/clickhouse), DuckDB files and a local HTTP
server."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import psycopg
import pytest
from clickhouse_driver import Client

from tests.object_servers import ensure_clickhouse, free_port
from workers.tools import run_tool, transfer
from workers.tools.base import CredentialError, ToolContext

PG = {
    "type": "postgres",
    "host": "127.0.0.1",
    "port": 5432,
    "user": "postgres",
    "database": "test",
}
CH = {"type": "clickhouse", "host": "127.0.0.1", "port": 9000}
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
ROWS = [{"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(1, 8)]


class _Api(BaseHTTPRequestHandler):
    received: ClassVar[list[Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"data": {"items": ROWS}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        _Api.received.append(json.loads(self.rfile.read(length)))
        self.send_response(201 if self.path == "/ok" else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    made = {"pg": f"transfer_{suffix}", "ch": f"default.transfer_{suffix}"}
    ensure_clickhouse()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {made['pg']} (id int, name text, price float8)")
    Client(host="127.0.0.1").execute(
        f"CREATE TABLE {made['ch']} (id UInt32, name String, price Float64) "
        "ENGINE = MergeTree ORDER BY id"
    )
    yield made
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {made['pg']}")
    Client(host="127.0.0.1").execute(f"DROP TABLE IF EXISTS {made['ch']}")


def _ctx() -> ToolContext:
    store = {
        "pg": PG,
        "ch": CH,
        "ch_wrong": {**CH, "password": "wrong-pw-4410"},
        "pg_down": {**PG, "port": free_port()},
    }

    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    return ToolContext(credential=credential, timeout=60.0)


def _pg_rows(table: str) -> list[tuple]:
    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(
            f"SELECT id, name, price FROM {table} ORDER BY id"
        ).fetchall()


def test_http_to_postgres_to_clickhouse_to_duckdb_in_batches(
    api: str, names: dict[str, str], tmp_path: Path
) -> None:
    ctx = _ctx()
    first = transfer.run(
        {
            "source": {
                "kind": "http",
                "url": f"{api}/items",
                "rows_path": "data.items",
            },
            "target": {"kind": "postgres", "auth": "pg", "table": names["pg"]},
            "batch_size": 3,
        },
        ctx,
    )
    assert first["status"] == "ok", first
    assert first["data"]["rows"] == 7
    assert first["data"]["batches"] == 3
    assert _pg_rows(names["pg"])[0] == (1, "item 1", 1.5)

    second = transfer.run(
        {
            "source": {
                "kind": "postgres",
                "auth": "pg",
                "query": f"SELECT id, name, price FROM {names['pg']}",
            },
            "target": {"kind": "clickhouse", "auth": "ch", "table": names["ch"]},
            "batch_size": 5,
        },
        ctx,
    )
    assert second["data"]["rows"] == 7 and second["data"]["batches"] == 2, second

    database = str(tmp_path / "copy.duckdb")
    duckdb.connect(database).execute(
        "CREATE TABLE items (id INTEGER, name VARCHAR, price DOUBLE)"
    ).close()
    third = run_tool(
        "transfer",
        {
            "source": {
                "kind": "clickhouse",
                "auth": "ch",
                "query": f"SELECT id, name, price FROM {names['ch']} ORDER BY id",
            },
            "target": {"kind": "duckdb", "database": database, "table": "items"},
            "batch_size": 4,
        },
        ctx,
    )
    assert third["data"]["rows"] == 7, third
    with duckdb.connect(database) as conn:
        assert conn.execute("SELECT sum(price) FROM items").fetchone()[0] == 42.0


def test_duckdb_to_http_posts_each_batch(api: str, tmp_path: Path) -> None:
    _Api.received.clear()
    outcome = transfer.run(
        {
            "source": {"kind": "duckdb", "query": "SELECT range AS n FROM range(5)"},
            "target": {"kind": "http", "url": f"{api}/ok"},
            "batch_size": 2,
        },
        _ctx(),
    )
    assert outcome["data"]["rows"] == 5
    assert _Api.received == [[{"n": 0}, {"n": 1}], [{"n": 2}, {"n": 3}], [{"n": 4}]]


def test_a_failing_target_reports_what_was_copied_before_it(api: str) -> None:
    outcome = transfer.run(
        {
            "source": {"kind": "duckdb", "query": "SELECT range AS n FROM range(3)"},
            "target": {"kind": "http", "url": f"{api}/broken"},
        },
        _ctx(),
    )
    assert outcome["error"]["kind"] == "server_error"
    assert outcome["error"]["message"].startswith("target http: POST")
    assert outcome["data"] == {"rows": 0}


def test_a_wrong_clickhouse_password_is_refused(names: dict[str, str]) -> None:
    outcome = transfer.run(
        {
            "source": {
                "kind": "duckdb",
                "query": "SELECT 1 AS id, 'a' AS name, 1.0 AS price",
            },
            "target": {"kind": "clickhouse", "auth": "ch_wrong", "table": names["ch"]},
        },
        _ctx(),
    )
    assert outcome["error"]["kind"] == "auth", outcome
    assert "wrong-pw-4410" not in str(outcome)


def test_an_unreachable_source_is_a_connection_error() -> None:
    outcome = transfer.run(
        {
            "source": {"kind": "postgres", "auth": "pg_down", "query": "SELECT 1"},
            "target": {"kind": "http", "url": "http://127.0.0.1:1/"},
        },
        _ctx(),
    )
    assert outcome["error"]["kind"] == "connection"
    assert outcome["error"]["retryable"] is True
    assert outcome["error"]["message"].startswith("source postgres postgres@127.0.0.1")


def test_a_row_that_does_not_fit_the_table_is_a_sql_error_with_the_count(
    names: dict[str, str],
) -> None:
    outcome = transfer.run(
        {
            "source": {
                "kind": "duckdb",
                "query": "SELECT range AS id, 'x' AS colour FROM range(3)",
            },
            "target": {"kind": "postgres", "auth": "pg", "table": names["pg"]},
        },
        _ctx(),
    )
    assert outcome["error"]["kind"] == "sql"
    assert "colour" in outcome["error"]["message"]


def test_malformed_requests_are_config_errors(tmp_path: Path) -> None:
    good_source = {"kind": "duckdb", "query": "SELECT 1 AS x"}
    cases = [
        ({"target": {"kind": "http", "url": "http://x"}}, "source must be a map"),
        (
            {"source": {"kind": "mysql"}, "target": {"kind": "http"}},
            "source.kind must be one of",
        ),
        (
            {
                "source": good_source,
                "target": {
                    "kind": "postgres",
                    "auth": "pg",
                    "table": "x; DROP TABLE y",
                },
            },
            "is not a table name",
        ),
        (
            {
                "source": {"kind": "duckdb"},
                "target": {"kind": "http", "url": "http://x"},
            },
            "source duckdb: query is required",
        ),
        (
            {
                "source": good_source,
                "target": {"kind": "http", "url": "http://x"},
                "batch_size": 0,
            },
            "batch_size must be a positive integer",
        ),
        (
            {"source": good_source, "target": {"kind": "duckdb", "table": "t"}},
            "database must be a file",
        ),
    ]
    for config, expected in cases:
        outcome = transfer.run(config, _ctx())
        assert outcome["error"]["kind"] == "config", (config, outcome)
        assert expected in outcome["error"]["message"], (config, outcome)
    missing = transfer.run(
        {
            "source": {**good_source, "auth": "nobody"},
            "target": {"kind": "http", "url": "http://x"},
        },
        _ctx(),
    )
    assert missing["error"]["kind"] == "credential"
