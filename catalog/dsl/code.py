"""Syntax of the code a playbook carries: Jinja templates in its values and
the inline source of its `python` tasks.

A mistake here used to surface only when the step ran. It is reported at
registration as a warning, not an error, so playbooks that were accepted
before are still accepted; each warning names the step and the file line.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from catalog.dsl.paths import index_path, key_path
from catalog.dsl.report import Checker

# Only the grammar is checked (filters and names are the runtime's business),
# so a plain environment parses what the runtime's would.
_JINJA = jinja2.Environment()
_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# Sections whose values are rendered, and what a warning there names.
_SECTIONS = {"workload": None, "keychain": None, "workflow": "step", "workbook": "name"}
_FAILS = "it will fail when it runs"


def check_code(ck: Checker, data: dict[str, Any]) -> None:
    for section, name_key in _SECTIONS.items():
        raw = data.get(section)
        if name_key is None or not isinstance(raw, list):
            _walk(ck, raw, section)
            continue
        for index, entry in enumerate(raw):
            name = entry.get(name_key) if isinstance(entry, dict) else None
            owner = "step" if section == "workflow" else "workbook task"
            context = f"{owner} '{name}'" if isinstance(name, str) else None
            _walk(ck.within(context), entry, index_path(section, index))


def _walk(ck: Checker, value: Any, path: str) -> None:
    if isinstance(value, dict):
        if value.get("kind") == "python":
            _check_python(ck, value, path)
        for key, item in value.items():
            _walk(ck, item, key_path(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(ck, item, index_path(path, index))
    elif is_template(value):
        _check_template(ck, value, path)


def is_template(value: Any) -> bool:
    """Text the runtime renders with Jinja: it holds ``{{`` or ``{%``."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _parses(source: str) -> bool:
    try:
        _JINJA.parse(source)
    except jinja2.TemplateSyntaxError:
        return False
    return True


def _check_template(ck: Checker, source: str, path: str) -> None:
    try:
        _JINJA.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        problem = (exc.message or "invalid").rstrip(".")
        message = f"template syntax error: {problem}; {_FAILS}"
        ck.warn(path, message, _line(ck, path, exc.lineno))


def _check_python(ck: Checker, task: dict[str, Any], path: str) -> None:
    for code_path, code in _inline_code(task, path):
        if "{%" in code or (is_template(code) and not _parses(code)):
            continue  # the template decides what the source is
        # Each `{{ ... }}` becomes a name, keeping its line breaks.
        source = _EXPRESSION.sub(lambda m: "_" + "\n" * m.group().count("\n"), code)
        try:
            compile(source, "<python task>", "exec", dont_inherit=True)
        except SyntaxError as exc:
            message = f"python syntax error: {exc.msg.rstrip('.')}; {_FAILS}"
            ck.warn(code_path, message, _line(ck, code_path, exc.lineno))


def _inline_code(task: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """The task's inline Python source with its YAML path: `code`, and the
    `script` forms that hold the text (`script.code`, inline `script.source`)."""
    found = []
    if isinstance(task.get("code"), str):
        found.append((key_path(path, "code"), task["code"]))
    script = task.get("script")
    if isinstance(script, dict):
        script_path = key_path(path, "script")
        source = script.get("source")
        if isinstance(script.get("code"), str):
            found.append((key_path(script_path, "code"), script["code"]))
        if isinstance(source, dict) and source.get("type", "inline") == "inline" \
                and isinstance(source.get("code"), str):
            source_path = key_path(script_path, "source")
            found.append((key_path(source_path, "code"), source["code"]))
    return found


def _line(ck: Checker, path: str, offset: int | None) -> int | None:
    """The file line of line ``offset`` (1-based) of the text at ``path``."""
    start = ck.starts.get(path) or ck.line(path)
    if start is None or not offset:
        return start
    return start + offset - 1
