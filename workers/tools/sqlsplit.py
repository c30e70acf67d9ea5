"""Split SQL text into statements, and read SQL text out of a tool config.

``split_statements`` cuts on ``;`` the way PostgreSQL's own lexer would:
semicolons inside quotes, dollar quotes and comments do not count. It is used
by the postgres and duckdb tools (DSL section 5.3).

Not handled (documented limits): psql backslash commands, and SQL-standard
function bodies (``BEGIN ATOMIC ... END``) whose inner semicolons do split.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_SQL_KEYS = ("command", "commands", "query", "queries", "cmd", "sql")


class SqlConfigError(ValueError):
    """The config names no usable SQL (missing key, bad base64, no file)."""


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, stripped, without empty or comment-only ones."""
    statements: list[str] = []
    start = 0
    has_code = False
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == ";":
            _keep(statements, sql[start:i], has_code)
            start, has_code, i = i + 1, False, i + 1
            continue
        end = _skip_comment(sql, i)
        if end is not None:
            i = end
            continue
        if not ch.isspace():
            has_code = True
        i = _skip_token(sql, i)
    _keep(statements, sql[start:], has_code)
    return statements


def _keep(statements: list[str], text: str, has_code: bool) -> None:
    if has_code:
        statements.append(text.strip())


def _skip_comment(sql: str, i: int) -> int | None:
    """The index after a comment starting at ``i``, or None if none starts."""
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        return _skip_block_comment(sql, i)
    return None


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i = 1, i + 2
    while i < len(sql) and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _skip_token(sql: str, i: int) -> int:
    """The index after the quoted token (or single character) at ``i``."""
    ch = sql[i]
    if ch == "'":
        return _skip_quoted(sql, i, "'", backslash=_is_escape_string(sql, i))
    if ch == '"':
        return _skip_quoted(sql, i, '"', backslash=False)
    if ch == "$" and not _in_identifier(sql, i):
        match = _DOLLAR_TAG.match(sql, i)
        if match:
            end = sql.find(match.group(0), match.end())
            return len(sql) if end < 0 else end + len(match.group(0))
    return i + 1


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    i += 1
    while i < len(sql):
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
        elif ch == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(sql)


def _is_escape_string(sql: str, i: int) -> bool:
    """True for ``E'...'`` (the E not being the end of a longer word)."""
    return i > 0 and sql[i - 1] in "eE" and not _in_identifier(sql, i - 1)


def _in_identifier(sql: str, i: int) -> bool:
    """True if the character before ``i`` continues an identifier or number."""
    if i == 0:
        return False
    prev = sql[i - 1]
    return prev.isalnum() or prev in "_$"


# --- Where the SQL text of a tool config comes from. -------------------------


def sql_from_config(config: dict[str, Any]) -> str:
    """The SQL text of a postgres/duckdb config (DSL 5.3), in priority order:
    ``script``, then a ``*_b64`` key, then ``command|commands|query|queries|
    cmd|sql``. A list value is joined with ``;``. Raises SqlConfigError."""
    script = config.get("script")
    if script:
        return _script_text(script)
    for key in _SQL_KEYS:
        value = config.get(f"{key}_b64")
        if value:
            return _join([_b64(v, f"{key}_b64") for v in _as_list(value)])
    for key in _SQL_KEYS:
        value = config.get(key)
        if value:
            return _join([str(v) for v in _as_list(value)])
    raise SqlConfigError(
        "no SQL given: set one of command, commands, query, queries, cmd, sql, "
        "a *_b64 variant, or script"
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _join(parts: list[str]) -> str:
    return ";\n".join(p for p in parts if p and p.strip())


def _b64(value: Any, key: str) -> str:
    try:
        return base64.b64decode(str(value), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SqlConfigError(f"{key} is not valid base64 UTF-8 text: {exc}") from exc


def _script_text(script: Any) -> str:
    if isinstance(script, str):
        return script
    if not isinstance(script, dict):
        raise SqlConfigError("script must be a map with a source")
    source = script.get("source") or {}
    if not source and script.get("code"):
        return str(script["code"])
    kind = str(source.get("type") or "inline").lower()
    if kind == "inline":
        code = source.get("code") or script.get("code")
        if not code:
            raise SqlConfigError("script source is inline but has no code")
        return str(code)
    if kind == "file":
        return _read_file(source.get("path") or script.get("path"))
    raise SqlConfigError(f"script source type {kind!r} is not supported here")


def _read_file(path: Any) -> str:
    if not path:
        raise SqlConfigError("script source is a file but has no path")
    try:
        return Path(str(path)).read_text(encoding="utf-8")
    except OSError as exc:
        raise SqlConfigError(f"cannot read SQL script {path}: {exc}") from exc
