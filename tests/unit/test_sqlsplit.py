"""split_statements and sql_from_config: pure, no database."""

from __future__ import annotations

import base64

import pytest

from workers.tools.sqlsplit import SqlConfigError, split_statements, sql_from_config


def test_plain_statements_are_split_and_stripped() -> None:
    assert split_statements("  SELECT 1 ;\nSELECT 2;  ") == ["SELECT 1", "SELECT 2"]


def test_last_statement_needs_no_semicolon() -> None:
    assert split_statements("SELECT 1; SELECT 2") == ["SELECT 1", "SELECT 2"]


def test_empty_and_blank_statements_are_dropped() -> None:
    assert split_statements(";;  ;\n") == []
    assert split_statements("") == []


def test_semicolon_inside_single_quotes() -> None:
    sql = "INSERT INTO t VALUES ('a;b'); SELECT 'it''s; fine'"
    assert split_statements(sql) == [
        "INSERT INTO t VALUES ('a;b')",
        "SELECT 'it''s; fine'",
    ]


def test_semicolon_inside_double_quoted_identifier() -> None:
    sql = 'SELECT 1 AS "a;""b"; SELECT 2'
    assert split_statements(sql) == ['SELECT 1 AS "a;""b"', "SELECT 2"]


def test_escape_string_with_backslash_quote() -> None:
    sql = r"SELECT E'it\'s; \\'; SELECT e'x\';y'; SELECT 3"
    assert split_statements(sql) == [
        r"SELECT E'it\'s; \\'",
        r"SELECT e'x\';y'",
        "SELECT 3",
    ]


def test_backslash_is_plain_in_standard_strings() -> None:
    # 'a\' is a complete standard string: the backslash does not escape.
    assert split_statements(r"SELECT 'a\'; SELECT 2") == [r"SELECT 'a\'", "SELECT 2"]


def test_identifier_ending_in_e_is_not_an_escape_string() -> None:
    sql = r"SELECT name'x\'; SELECT 2"
    assert split_statements(sql) == [r"SELECT name'x\'", "SELECT 2"]


def test_dollar_quotes() -> None:
    sql = 'SELECT $$a;b$$; SELECT $json${"k": "v;w"}$json$; SELECT 3'
    assert split_statements(sql) == [
        "SELECT $$a;b$$",
        'SELECT $json${"k": "v;w"}$json$',
        "SELECT 3",
    ]


def test_dollar_quote_tags_must_match() -> None:
    sql = "SELECT $a$ x $b$ ; $$ ; $a$; SELECT 2"
    assert split_statements(sql) == ["SELECT $a$ x $b$ ; $$ ; $a$", "SELECT 2"]


def test_positional_parameters_are_not_dollar_quotes() -> None:
    assert split_statements("SELECT $1; SELECT $2") == ["SELECT $1", "SELECT $2"]


def test_do_block_with_semicolons_is_one_statement() -> None:
    sql = """
    DO $$
    DECLARE n int;
    BEGIN
      n := 1;
      RAISE NOTICE 'n = %; done', n;
    END
    $$;
    SELECT 1;
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].startswith("DO $$") and statements[0].endswith("$$")
    assert statements[1] == "SELECT 1"


def test_function_body_with_tagged_dollar_quote() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\n"
        "BEGIN RETURN 1; END; $fn$; SELECT f()"
    )
    assert len(split_statements(sql)) == 2


def test_line_comments() -> None:
    sql = "SELECT 1; -- a comment; with semicolons\nSELECT 2 -- trailing;\n;"
    assert split_statements(sql) == [
        "SELECT 1",
        "-- a comment; with semicolons\nSELECT 2 -- trailing;",
    ]


def test_block_comments_nested() -> None:
    sql = "/* outer; /* inner; */ still; */ SELECT 1; SELECT /* ; */ 2"
    assert split_statements(sql) == [
        "/* outer; /* inner; */ still; */ SELECT 1",
        "SELECT /* ; */ 2",
    ]


def test_comment_only_statements_are_dropped() -> None:
    sql = "-- header\n; /* nothing */ ; SELECT 1; -- the end"
    assert split_statements(sql) == ["SELECT 1"]


def test_quote_characters_inside_comments_are_ignored() -> None:
    sql = "-- it's here\nSELECT 1; /* \" $$ ' */ SELECT 2"
    assert split_statements(sql) == ["-- it's here\nSELECT 1", "/* \" $$ ' */ SELECT 2"]


def test_unterminated_quote_keeps_the_rest() -> None:
    assert split_statements("SELECT 'oops; SELECT 2") == ["SELECT 'oops; SELECT 2"]


def test_sql_from_config_key_priority() -> None:
    assert sql_from_config({"query": "SELECT 2", "command": "SELECT 1"}) == "SELECT 1"
    assert sql_from_config({"sql": "SELECT 3"}) == "SELECT 3"


def test_sql_from_config_list_is_joined() -> None:
    text = sql_from_config({"commands": ["SELECT 1", "SELECT 2"]})
    assert split_statements(text) == ["SELECT 1", "SELECT 2"]


def test_sql_from_config_base64() -> None:
    encoded = base64.b64encode(b"SELECT 'b64'").decode()
    assert sql_from_config({"command_b64": encoded, "command": "x"}) == "SELECT 'b64'"


def test_sql_from_config_script_inline_and_file(tmp_path) -> None:
    inline = {"script": {"source": {"type": "inline", "code": "SELECT 1"}}}
    assert sql_from_config(inline) == "SELECT 1"
    path = tmp_path / "q.sql"
    path.write_text("SELECT 2;", encoding="utf-8")
    script = {"script": {"source": {"type": "file", "path": str(path)}}}
    assert sql_from_config(script) == "SELECT 2;"


def test_sql_from_config_errors(tmp_path) -> None:
    with pytest.raises(SqlConfigError, match="no SQL given"):
        sql_from_config({})
    missing = {"script": {"source": {"type": "file", "path": str(tmp_path / "x")}}}
    with pytest.raises(SqlConfigError, match="cannot read"):
        sql_from_config(missing)
    with pytest.raises(SqlConfigError, match="not supported"):
        sql_from_config({"script": {"source": {"type": "gcs", "uri": "gs://b/x"}}})
