"""The postgres tool against the real PostgreSQL on 127.0.0.1:5432 (trust auth,
user ``postgres``, database ``test``). Each test uses its own table names and
effect keys, and drops what it made."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from workers.tools import postgres
from workers.tools.base import CredentialError, ToolContext

PG = {
    "db_host": os.environ.get("NOETL_TEST_PG_HOST", "127.0.0.1"),
    "db_port": int(os.environ.get("NOETL_TEST_PG_PORT", "5432")),
    "db_user": os.environ.get("NOETL_TEST_PG_USER", "postgres"),
    "db_name": os.environ.get("NOETL_TEST_PG_DB", "test"),
}
PASSWORD = "s3cret-Pa55word"
DSN = (
    f"host={PG['db_host']} port={PG['db_port']} user={PG['db_user']}"
    f" dbname={PG['db_name']}"
)


def _lookup(store: dict[str, dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} is not available here")
        return dict(store[name])

    return credential


def _ctx(**kwargs: Any) -> ToolContext:
    kwargs.setdefault("step", "sql")
    kwargs.setdefault("timeout", 30.0)
    kwargs.setdefault("credential", _lookup({"pg_test": PG}))
    return ToolContext(**kwargs)


def _run(sql: str | list[str], ctx: ToolContext | None = None, **config: Any):
    return postgres.run({"auth": "pg_test", "command": sql, **config}, ctx or _ctx())


def _scalar(sql: str) -> Any:
    with psycopg.connect(DSN, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return None if row is None else row[0]


@pytest.fixture
def table() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name} CASCADE")


@pytest.fixture
def effect_key() -> Iterator[str]:
    key = f"test/{uuid.uuid4().hex}/step/0/0/task"
    yield key
    with psycopg.connect(DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('noetl_effect')").fetchone()[0]
        if exists:
            conn.execute("DELETE FROM noetl_effect WHERE effect_key = %s", (key,))


@pytest.fixture
def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --- Result shapes. ---------------------------------------------------------------


def test_result_is_the_last_query() -> None:
    out = _run("SELECT 1 AS one; SELECT 2 AS two")
    assert out["status"] == "ok"
    assert out["data"] == {
        "status": "success",
        "rows": [{"two": 2}],
        "row_count": 1,
        "columns": ["two"],
        "statement_count": 2,
    }
    assert "duration_ms" in out["meta"]


def test_dml_and_ddl_shapes(table: str) -> None:
    out = _run(
        f"CREATE TABLE {table} (id int PRIMARY KEY, name text);"
        f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')"
    )
    assert out["data"] == {
        "status": "success",
        "row_count": 3,
        "message": "INSERT 0 3",
        "statement_count": 2,
    }
    update = _run(f"UPDATE {table} SET name = 'z' WHERE id > 1")["data"]
    assert (update["row_count"], update["message"]) == (2, "UPDATE 2")
    ddl = _run(f"ALTER TABLE {table} ADD COLUMN extra int")["data"]
    assert ddl == {
        "status": "success",
        "row_count": 0,
        "message": "ALTER TABLE",
        "statement_count": 1,
    }


def test_returning_gives_rows(table: str) -> None:
    out = _run(
        f"CREATE TABLE {table} (id serial, v text);"
        f"INSERT INTO {table} (v) VALUES ('x'), ('y') RETURNING id, v"
    )
    assert out["data"]["rows"] == [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]
    assert out["data"]["columns"] == ["id", "v"]


def test_each_statement_commits_on_its_own(table: str) -> None:
    out = _run(
        f"CREATE TABLE {table} (n int); INSERT INTO {table} VALUES (1);SELECT 1/0"
    )
    assert out["error"]["kind"] == "sql"
    assert _scalar(f"SELECT count(*) FROM {table}") == 1


def test_values_become_json() -> None:
    out = _run(
        "SELECT 1.50::numeric AS n, DATE '2024-02-03' AS d,"
        " TIMESTAMP '2024-02-03 04:05:06' AS ts, TIME '10:11:12' AS t,"
        " '00000000-0000-0000-0000-00000000000a'::uuid AS id,"
        " '\\x01ff'::bytea AS raw, ARRAY[1, 2] AS arr, interval '90 seconds' AS i,"
        " NULL::text AS nothing, true AS yes"
    )
    assert out["data"]["rows"] == [
        {
            "n": 1.5,
            "d": "2024-02-03",
            "ts": "2024-02-03T04:05:06",
            "t": "10:11:12",
            "id": "00000000-0000-0000-0000-00000000000a",
            "raw": "01ff",
            "arr": [1, 2],
            "i": 90.0,
            "nothing": None,
            "yes": True,
        }
    ]


def test_jsonb_round_trip(table: str) -> None:
    doc = '{"a": [1, {"b": null}], "s": "x;y", "q": "it\'s"}'
    out = _run(
        f"CREATE TABLE {table} (id int, doc jsonb);"
        f"INSERT INTO {table} VALUES (1, $json${doc}$json$);"
        f'INSERT INTO {table} VALUES (2, \'{{"k": "semi;colon"}}\');'
        f"SELECT id, doc FROM {table} ORDER BY id"
    )
    rows = out["data"]["rows"]
    assert rows[0]["doc"] == {"a": [1, {"b": None}], "s": "x;y", "q": "it's"}
    assert rows[1]["doc"] == {"k": "semi;colon"}
    assert out["data"]["statement_count"] == 4


def test_quotes_comments_and_escape_strings(table: str) -> None:
    out = _run(
        f"-- set up; with a semicolon in the comment\n"
        f"CREATE TABLE {table} (s text); /* a; block */"
        f"INSERT INTO {table} VALUES ('a;b'), (E'it\\'s; ok'), ($$c;d$$);"
        f"SELECT s FROM {table} ORDER BY s"
    )
    assert [r["s"] for r in out["data"]["rows"]] == ["a;b", "c;d", "it's; ok"]


def test_do_block_with_semicolons(table: str) -> None:
    logged: list[str] = []
    out = _run(
        f"CREATE TABLE {table} (n int);"
        "DO $$\nDECLARE i int;\nBEGIN\n"
        f"  FOR i IN 1..3 LOOP INSERT INTO {table} VALUES (i); END LOOP;\n"
        "  RAISE NOTICE 'done; 3 rows';\nEND\n$$;"
        f"SELECT sum(n) AS total FROM {table}",
        _ctx(log=logged.append),
    )
    assert out["data"]["rows"] == [{"total": 6}]
    assert out["data"]["statement_count"] == 3
    assert "NOTICE: done; 3 rows" in logged


def test_call_and_create_database_run_in_autocommit(table: str) -> None:
    proc = f"p_{table}"
    out = _run(
        f"CREATE TABLE {table} (n int);"
        f"CREATE PROCEDURE {proc}() LANGUAGE sql"
        f" AS $$ INSERT INTO {table} VALUES (7) $$;"
        f"CALL {proc}(); DROP PROCEDURE {proc}; SELECT n FROM {table}"
    )
    assert out["data"]["rows"] == [{"n": 7}]
    db = f"noetl_{uuid.uuid4().hex[:10]}"
    out = _run(f"CREATE DATABASE {db}; DROP DATABASE {db}")
    assert out["status"] == "ok", out
    assert out["data"]["message"] == "DROP DATABASE"


def test_sql_sources() -> None:
    assert _run(["SELECT 1 AS a", "SELECT 2 AS b"])["data"]["rows"] == [{"b": 2}]
    out = postgres.run(
        {"credential": "pg_test", "query_b64": "U0VMRUNUIDMgQVMgYw=="}, _ctx()
    )
    assert out["data"]["rows"] == [{"c": 3}]
    script = {"source": {"type": "inline", "code": "SELECT 4 AS d"}}
    out = postgres.run({"credentials": "pg_test", "script": script}, _ctx())
    assert out["data"]["rows"] == [{"d": 4}]


def test_connection_forms() -> None:
    inline = postgres.run({**PG, "command": "SELECT current_user AS u"}, _ctx())
    assert inline["data"]["rows"] == [{"u": PG["db_user"]}]
    by_dsn = postgres.run({"auth": {"dsn": DSN}, "command": "SELECT 1 AS x"}, _ctx())
    assert by_dsn["data"]["rows"] == [{"x": 1}]
    store = {
        "alt": {
            "host": PG["db_host"],
            "port": PG["db_port"],
            "username": PG["db_user"],
            "database": PG["db_name"],
        }
    }
    ctx = _ctx(credential=_lookup(store))
    out = postgres.run({"auth": "alt", "command": "SELECT 2 AS y"}, ctx)
    assert out["data"]["rows"] == [{"y": 2}]


# --- Errors. ----------------------------------------------------------------------


def test_sql_error_names_the_statement() -> None:
    out = _run("SELECT 1; SELECT * FROM no_such_table_x; SELECT 3")
    assert out["status"] == "error"
    err = out["error"]
    assert err["kind"] == "sql" and err["retryable"] is False
    assert err["message"] == 'statement 2: relation "no_such_table_x" does not exist'
    assert out["pg"]["sqlstate"] == "42P01"
    assert out["pg"]["statement_index"] == 2


@pytest.mark.parametrize("errcode", ["serialization_failure", "deadlock_detected"])
def test_serialization_and_deadlock_are_retryable(errcode: str) -> None:
    out = _run(
        f"DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{errcode}'; END $$"
    )
    assert out["error"]["kind"] == "sql"
    assert out["error"]["retryable"] is True
    assert out["pg"]["sqlstate"] in {"40001", "40P01"}


def _assert_connection_error(out: dict[str, Any], *fragments: str) -> None:
    assert out["status"] == "error"
    assert out["error"]["kind"] == "connection"
    message = out["error"]["message"]
    assert PASSWORD not in message and PASSWORD not in repr(out)
    for fragment in fragments:
        assert fragment in message


def test_refused_port_is_a_clear_connection_error(free_port: int) -> None:
    config = {**PG, "db_port": free_port, "db_password": PASSWORD}
    out = postgres.run({**config, "command": "SELECT 1"}, _ctx())
    _assert_connection_error(out, f"127.0.0.1:{free_port}", "refused")
    assert out["error"]["retryable"] is True


def test_unknown_host_is_a_clear_connection_error() -> None:
    store = {"bad": {**PG, "db_host": "no-such-host.invalid", "db_password": PASSWORD}}
    ctx = _ctx(credential=_lookup(store))
    out = postgres.run({"auth": "bad", "command": "SELECT 1"}, ctx)
    _assert_connection_error(out, "no-such-host.invalid")


def test_unknown_database_hides_the_password_in_a_dsn(free_port: int) -> None:
    dsn = f"postgresql://{PG['db_user']}:{PASSWORD}@127.0.0.1:{PG['db_port']}/nodb_x"
    out = postgres.run({"auth": {"dsn": dsn}, "command": "SELECT 1"}, _ctx())
    _assert_connection_error(out, "nodb_x")
    bad = f"host=127.0.0.1 port={free_port} password={PASSWORD}"
    out = postgres.run({"dsn": bad, "command": "SELECT 1"}, _ctx())
    _assert_connection_error(out, f"127.0.0.1:{free_port}")


def test_unknown_role_with_a_password_hides_the_password() -> None:
    # The server trusts local users, so a wrong password cannot fail here; an
    # unknown role fails at the same (authentication) stage.
    store = {"bad": {**PG, "db_user": "no_such_role_x", "db_password": PASSWORD}}
    out = postgres.run(
        {"auth": "bad", "command": "SELECT 1"}, _ctx(credential=_lookup(store))
    )
    _assert_connection_error(out, "no_such_role_x", "does not exist")


def test_lost_connection_is_a_connection_error() -> None:
    out = _run("SELECT 1; SELECT pg_terminate_backend(pg_backend_pid())")
    assert out["error"]["kind"] == "connection"
    assert out["error"]["retryable"] is True
    assert out["error"]["message"].startswith("statement 2: connection lost")


def test_credential_and_config_errors() -> None:
    out = postgres.run({"auth": "missing", "command": "SELECT 1"}, _ctx())
    assert (out["error"]["kind"], out["error"]["retryable"]) == ("credential", False)
    assert postgres.run({"auth": "pg_test"}, _ctx())["error"]["kind"] == "config"
    out = postgres.run({"command": "SELECT 1"}, _ctx())
    assert out["error"]["kind"] == "config"


def test_timeout_cancels_the_statement() -> None:
    started = time.monotonic()
    out = _run("SELECT 1; SELECT pg_sleep(10)", _ctx(timeout=1))
    assert time.monotonic() - started < 5
    assert out["error"]["kind"] == "timeout"
    assert out["error"]["retryable"] is True
    assert out["error"]["message"].startswith("statement 2: ")


def test_cancel_interrupts_the_statement() -> None:
    ctx = _ctx()
    threading.Timer(0.3, ctx.cancelled.set).start()
    started = time.monotonic()
    out = _run("SELECT pg_sleep(10)", ctx)
    assert time.monotonic() - started < 5
    assert out["error"]["kind"] == "cancelled"


# --- exactly_once (DSL 10.25). ----------------------------------------------------


def test_exactly_once_executes_once(table: str, effect_key: str) -> None:
    _run(f"CREATE TABLE {table} (n int)")
    sql = f"INSERT INTO {table} VALUES (1); SELECT count(*) AS c FROM {table}"
    first = _run(sql, _ctx(effect_key=effect_key), exactly_once=True)
    second = _run(sql, _ctx(effect_key=effect_key), exactly_once=True)
    assert first["status"] == second["status"] == "ok"
    assert first["data"]["rows"] == [{"c": 1}]
    assert second["data"] == first["data"]
    assert first["effect"] == {"key": effect_key, "replayed": False}
    assert second["effect"] == {"key": effect_key, "replayed": True}
    assert _scalar(f"SELECT count(*) FROM {table}") == 1
    stored = "SELECT count(*) FROM noetl_effect WHERE effect_key = '{}'"
    assert _scalar(stored.format(effect_key)) == 1


def test_exactly_once_failure_leaves_nothing(table: str, effect_key: str) -> None:
    _run(f"CREATE TABLE {table} (n int)")
    bad = f"INSERT INTO {table} VALUES (1); SELECT * FROM no_such_table_y"
    out = _run(bad, _ctx(effect_key=effect_key), exactly_once=True)
    assert out["error"]["kind"] == "sql"
    assert out["pg"]["statement_index"] == 2
    assert _scalar(f"SELECT count(*) FROM {table}") == 0
    good = _run(
        f"INSERT INTO {table} VALUES (1)",
        _ctx(effect_key=effect_key),
        exactly_once=True,
    )
    assert good["status"] == "ok" and good["effect"]["replayed"] is False
    assert _scalar(f"SELECT count(*) FROM {table}") == 1


def test_exactly_once_concurrent_duplicates(table: str, effect_key: str) -> None:
    _run(f"CREATE TABLE {table} (n int)")
    sql = f"INSERT INTO {table} VALUES (1); SELECT pg_sleep(0.5); SELECT 'done' AS r"
    outcomes: list[dict[str, Any]] = []

    def deliver() -> None:
        outcomes.append(_run(sql, _ctx(effect_key=effect_key), exactly_once=True))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o["status"] for o in outcomes] == ["ok"] * 3
    assert sorted(o["effect"]["replayed"] for o in outcomes) == [False, True, True]
    assert all(o["data"]["rows"] == [{"r": "done"}] for o in outcomes)
    assert _scalar(f"SELECT count(*) FROM {table}") == 1


def test_exactly_once_needs_an_effect_key() -> None:
    out = _run("SELECT 1", exactly_once=True)
    assert out["error"]["kind"] == "config"
