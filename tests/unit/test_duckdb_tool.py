"""The duckdb tool on real DuckDB databases (in memory and in files)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from workers.tools import duckdb as duckdb_tool
from workers.tools.base import ToolContext

SLOW_QUERY = "SELECT count(*) FROM range(100000000000) a, range(10) b"


def _ctx(**kwargs: Any) -> ToolContext:
    kwargs.setdefault("step", "db")
    kwargs.setdefault("timeout", 30.0)
    return ToolContext(**kwargs)


def _run(command: str, **config: Any) -> dict[str, Any]:
    ctx = config.pop("ctx", None) or _ctx()
    return duckdb_tool.run({"command": command, **config}, ctx)


def test_memory_database_keeps_state_across_statements() -> None:
    out = _run(
        "CREATE TABLE t (a INT, b VARCHAR);"
        "INSERT INTO t VALUES (1, 'x'), (2, 'y');"
        "SELECT a, b FROM t ORDER BY a"
    )
    assert out["status"] == "ok"
    assert out["data"] == {
        "status": "success",
        "rows": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        "row_count": 2,
        "columns": ["a", "b"],
        "statement_count": 3,
    }


def test_each_call_gets_a_fresh_memory_database() -> None:
    _run("CREATE TABLE t (a INT)")
    assert _run("SELECT * FROM t")["error"]["kind"] == "sql"


def test_dml_and_ddl_shapes() -> None:
    out = _run("CREATE TABLE t (a INT); INSERT INTO t SELECT * FROM range(3)")
    assert out["data"] == {
        "status": "success",
        "row_count": 3,
        "message": "INSERT 3",
        "statement_count": 2,
    }
    ddl = _run("CREATE TABLE t (a INT)")["data"]
    assert ddl["row_count"] == 0 and "rows" not in ddl


def test_a_column_named_count_is_still_a_query() -> None:
    out = _run('SELECT 5 AS "Count"')
    assert out["data"]["rows"] == [{"Count": 5}]


def test_values_become_json() -> None:
    out = _run(
        "SELECT 1.25::DECIMAL(5,2) AS d, DATE '2024-02-03' AS day,"
        " TIMESTAMP '2024-02-03 04:05:06' AS ts,"
        " '00000000-0000-0000-0000-000000000001'::UUID AS id,"
        " '\\x01\\xff'::BLOB AS raw, [1, 2] AS list, {'k': 'v'} AS rec"
    )
    row = out["data"]["rows"][0]
    assert row == {
        "d": 1.25,
        "day": "2024-02-03",
        "ts": "2024-02-03T04:05:06",
        "id": "00000000-0000-0000-0000-000000000001",
        "raw": "01ff",
        "list": [1, 2],
        "rec": {"k": "v"},
    }


def test_quotes_and_comments_reach_duckdb_intact() -> None:
    out = _run(
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (s VARCHAR); /* block; */"
        "INSERT INTO t VALUES ('a;b'), ($$c;d$$), ($tag$e;f$tag$);"
        "SELECT s FROM t ORDER BY s"
    )
    assert [r["s"] for r in out["data"]["rows"]] == ["a;b", "c;d", "e;f"]
    assert out["data"]["statement_count"] == 3


def test_file_database_persists(tmp_path: Path) -> None:
    path = str(tmp_path / "x.duckdb")
    _run("CREATE TABLE t AS SELECT 42 AS n", database=path)
    out = _run("SELECT n FROM t", database=path)
    assert out["data"]["rows"] == [{"n": 42}]


def test_script_file_and_list_of_commands(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 1 AS a; SELECT 2 AS b;", encoding="utf-8")
    script = {"script": {"source": {"type": "file", "path": str(sql)}}}
    assert duckdb_tool.run(script, _ctx())["data"]["rows"] == [{"b": 2}]
    listed = {"commands": ["SELECT 1 AS a", "SELECT 3 AS c"]}
    assert duckdb_tool.run(listed, _ctx())["data"]["rows"] == [{"c": 3}]


def test_sql_error_names_the_statement() -> None:
    out = _run("SELECT 1; SELECT * FROM missing_table; SELECT 3")
    assert out["status"] == "error"
    err = out["error"]
    assert err["kind"] == "sql" and err["retryable"] is False
    assert err["message"].startswith("statement 2: Catalog Error")
    assert "missing_table" in err["message"]
    assert out["duckdb"]["statement_index"] == 2


def test_missing_sql_is_a_config_error() -> None:
    assert duckdb_tool.run({}, _ctx())["error"]["kind"] == "config"
    assert _run("-- only a comment")["error"]["kind"] == "config"


def test_timeout_interrupts_the_query() -> None:
    started = time.monotonic()
    out = _run(SLOW_QUERY, ctx=_ctx(timeout=0.5))
    assert time.monotonic() - started < 5
    assert out["error"]["kind"] == "timeout"
    assert out["error"]["retryable"] is True


def test_cancel_interrupts_the_query() -> None:
    ctx = _ctx()
    threading.Timer(0.3, ctx.cancelled.set).start()
    started = time.monotonic()
    out = _run(SLOW_QUERY, ctx=ctx)
    assert time.monotonic() - started < 5
    assert out["error"]["kind"] == "cancelled"


# --- exactly_once. ---------------------------------------------------------------


def _count(path: str, sql: str) -> int:
    with duckdb.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


def test_exactly_once_runs_once_per_effect_key(tmp_path: Path) -> None:
    path = str(tmp_path / "once.duckdb")
    _run("CREATE TABLE t (n INT)", database=path)
    key = f"exec/{uuid.uuid4().hex}/0/0/t"
    config = {
        "database": path,
        "command": "INSERT INTO t VALUES (1); SELECT count(*) AS c FROM t",
        "exactly_once": True,
    }
    first = duckdb_tool.run(config, _ctx(effect_key=key))
    second = duckdb_tool.run(config, _ctx(effect_key=key))
    assert first["status"] == second["status"] == "ok"
    assert first["effect"] == {"key": key, "replayed": False}
    assert second["effect"] == {"key": key, "replayed": True}
    assert second["data"] == first["data"]
    assert first["data"]["rows"] == [{"c": 1}]
    assert _count(path, "SELECT count(*) FROM t") == 1
    other = duckdb_tool.run(config, _ctx(effect_key=key + "-other"))
    assert other["effect"]["replayed"] is False
    assert _count(path, "SELECT count(*) FROM t") == 2
    assert _count(path, "SELECT count(*) FROM noetl_effect") == 2


def test_exactly_once_failure_rolls_everything_back(tmp_path: Path) -> None:
    path = str(tmp_path / "fail.duckdb")
    _run("CREATE TABLE t (n INT)", database=path)
    config = {
        "database": path,
        "command": "INSERT INTO t VALUES (1); SELECT * FROM missing",
        "exactly_once": True,
    }
    out = duckdb_tool.run(config, _ctx(effect_key="k1"))
    assert out["error"]["kind"] == "sql"
    assert _count(path, "SELECT count(*) FROM t") == 0
    assert _count(path, "SELECT count(*) FROM noetl_effect") == 0
    config["command"] = "INSERT INTO t VALUES (1)"
    assert duckdb_tool.run(config, _ctx(effect_key="k1"))["status"] == "ok"
    assert _count(path, "SELECT count(*) FROM t") == 1


def test_exactly_once_needs_an_effect_key() -> None:
    out = _run("SELECT 1", exactly_once=True)
    assert out["error"]["kind"] == "config"


@pytest.mark.parametrize("flag", ["true", "yes"])
def test_exactly_once_accepts_text_flags(tmp_path: Path, flag: str) -> None:
    path = str(tmp_path / "flag.duckdb")
    out = _run(
        "SELECT 1 AS one", database=path, exactly_once=flag, ctx=_ctx(effect_key="k")
    )
    assert out["effect"]["replayed"] is False
