"""Jinja rendering of playbook values (DSL §2, §5.0, §6.4, §10.1, §10.2, §10.13).

Pure module: no Django. The engine (server side, strict) and the workers (tool
config, lenient) both render through here, so a template means the same thing
wherever it is evaluated.

Typed rendering in short:

* ``"{{ a.b }}"`` (one plain path, nothing else) returns the object itself,
  read without Jinja, so a dict stays a dict and the string ``"01234"`` stays a
  string.
* Anything else is rendered to text by Jinja and the text is typed: JSON or
  Python literals for ``[...]``/``{...}``, then bools, ints, floats and null.
  Text produced with ``| tojson`` always stays a string.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta

__all__ = [
    "OutputDict",
    "ResultDict",
    "ResultList",
    "TemplateError",
    "is_template",
    "plain",
    "referenced_names",
    "render_condition",
    "render_text",
    "render_value",
    "wrap_output",
    "wrap_result",
]

_CACHE_SIZE = 2048
_SNIPPET_CHARS = 120

# Sentinel for "lookup found nothing"; None is a legitimate stored value.
_MISSING: Any = object()


# --------------------------------------------------------------------------
# Errors


class TemplateError(Exception):
    """A template failed to parse or render; ``str()`` is one readable line."""

    def __init__(self, template: str, reason: str) -> None:
        self.template = template
        self.reason = reason
        super().__init__(f"cannot render template {_snippet(template)!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the exception picklable (it may cross process boundaries).
        return (type(self), (self.template, self.reason))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _snippet(template: str) -> str:
    text = _one_line(template)
    if len(text) > _SNIPPET_CHARS:
        text = text[: _SNIPPET_CHARS - 3] + "..."
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplateAssertionError):  # e.g. an unknown filter
        return f"{_one_line(exc.message or str(exc))} (line {exc.lineno})"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        message = _one_line(exc.message or str(exc))
        return f"syntax error on line {exc.lineno}: {message}"
    if isinstance(exc, jinja2.UndefinedError):
        return _one_line(str(exc))
    return f"{type(exc).__name__}: {_one_line(str(exc))}"


# --------------------------------------------------------------------------
# Wrapped results


class ResultDict(dict):
    """A step result; ``.data``/``.result`` return the dict itself (DSL §6.4)."""

    __slots__ = ()


class ResultList(list):
    """A list-valued step result; ``.data``/``.result`` return the list itself."""

    __slots__ = ()


class OutputDict(dict):
    """A tool outcome envelope (DSL §5.0) as seen by ``output``/``outcome``.

    ``.result``/``.response`` alias ``data``, and a name the envelope lacks
    falls through to ``data[name]``.
    """

    __slots__ = ()


_RESULT_ALIASES = ("data", "result")
_OUTPUT_ALIASES = ("result", "response")


def wrap_result(value: Any) -> Any:
    """Wrap a step result (shallowly) so the ``.data``/``.result`` aliases work."""
    if isinstance(value, (ResultDict, ResultList, OutputDict)):
        return value
    if isinstance(value, dict):
        return ResultDict(value)
    if isinstance(value, list):
        return ResultList(value)
    return value


def wrap_output(envelope: dict) -> Any:
    """Wrap a tool outcome envelope for ``output`` (and its alias ``outcome``)."""
    if isinstance(envelope, OutputDict) or not isinstance(envelope, Mapping):
        return envelope
    return OutputDict(envelope)


def plain(value: Any) -> Any:
    """Turn wrappers and tuples back into plain dicts/lists, recursively.

    Returns the very same object when nothing inside needed converting, so
    calling it on already-plain data is cheap in memory.
    """
    if isinstance(value, Mapping):
        converted = {key: plain(item) for key, item in value.items()}
        if type(value) is dict and _same_items(value, converted):
            return value
        return converted
    if isinstance(value, (list, tuple)):
        items = [plain(item) for item in value]
        if type(value) is list and all(
            a is b for a, b in zip(value, items, strict=True)
        ):
            return value
        return items
    return value


def _same_items(original: dict, converted: dict) -> bool:
    return all(converted[key] is item for key, item in original.items())


# --------------------------------------------------------------------------
# Lookup rules shared by the fast path and the Jinja environment


def _mapping_key(obj: Mapping, key: Any) -> Any:
    try:
        if key in obj:
            return obj[key]
    except TypeError:  # unhashable key, e.g. a list used as a subscript
        return _MISSING
    # YAML/JSON keys are strings, so `a.0` / `a[0]` also finds the key "0".
    if type(key) is int and str(key) in obj:
        return obj[str(key)]
    return _MISSING


def _output_alias(envelope: OutputDict, key: Any) -> Any:
    data = envelope.get("data")
    if key in _OUTPUT_ALIASES:
        return data
    if isinstance(data, Mapping):
        return _mapping_key(data, key)
    return _MISSING


def _lookup(obj: Any, key: Any) -> Any:
    """Resolve ``obj.key`` / ``obj[key]`` by the DSL rules, or ``_MISSING``.

    Mapping keys win over everything (DSL §10.1), then the wrapper aliases,
    then list indexing.
    """
    if isinstance(obj, Mapping):
        found = _mapping_key(obj, key)
        if found is not _MISSING:
            return found
    if isinstance(obj, OutputDict):
        return _output_alias(obj, key)
    if isinstance(obj, (ResultDict, ResultList)) and key in _RESULT_ALIASES:
        return obj
    if isinstance(obj, (list, tuple, str)) and type(key) is int:
        try:
            return obj[key]
        except IndexError:
            return _MISSING
    return _MISSING


# --------------------------------------------------------------------------
# Jinja environment


class _Environment(jinja2.Environment):
    """Jinja environment whose ``a.b`` and ``a['b']`` try mapping keys first."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        found = _lookup(obj, attribute)
        if found is not _MISSING:
            return found
        # Falls back to Python attributes, so `d.get('k', 'x')` still works.
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        found = _lookup(obj, argument)
        if found is not _MISSING:
            return found
        return super().getitem(obj, argument)


def _tojson_filter(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson HTML-escapes and sorts keys; playbooks want plain JSON
    # in the original key order, with wrappers unwrapped.
    if isinstance(value, jinja2.StrictUndefined):
        value._fail_with_undefined_error()
    if isinstance(value, jinja2.Undefined):
        value = None
    return json.dumps(plain(value), default=str, ensure_ascii=False, indent=indent)


def _b64encode_filter(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _b64decode_filter(value: Any) -> str:
    return base64.b64decode(value).decode("utf-8")


def _fromjson_filter(value: Any) -> Any:
    return json.loads(value)


_FILTERS = {
    "tojson": _tojson_filter,
    "b64encode": _b64encode_filter,
    "b64decode": _b64decode_filter,
    "fromjson": _fromjson_filter,
}


@functools.cache
def _environment(strict: bool) -> _Environment:
    undefined = jinja2.StrictUndefined if strict else jinja2.ChainableUndefined
    env = _Environment(
        undefined=undefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters.update(_FILTERS)
    return env


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str, strict: bool) -> jinja2.Template:
    return _environment(strict).from_string(source)


def _render(source: str, context: Mapping[str, Any], strict: bool) -> str:
    try:
        return _compile(source, strict).render(context)
    except Exception as exc:  # any failure is reported, never swallowed
        raise TemplateError(source, _describe(exc)) from exc


# --------------------------------------------------------------------------
# Single-path fast path: "{{ a.b['c'].0 }}" returns the object itself

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SEGMENT = rf"""\.{_IDENT}|\.[0-9]+|\[\s*(?:'[^'\\]*'|"[^"\\]*"|[0-9]+)\s*\]"""
_SINGLE_PATH_RE = re.compile(rf"\{{\{{-?\s*({_IDENT}(?:{_SEGMENT})*)\s*-?\}}\}}")
_SEGMENT_RE = re.compile(_SEGMENT)
# Jinja reads these as literals or operators, never as variable names.
_NOT_NAMES = frozenset(
    "true false none True False None and or not in is if else".split()
)

_Path = tuple[str, tuple[str | int, ...]]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _single_path(source: str) -> _Path | None:
    match = _SINGLE_PATH_RE.fullmatch(source.strip())
    if match is None:
        return None
    expression = match.group(1)
    root = re.match(_IDENT, expression).group(0)  # type: ignore[union-attr]
    if root in _NOT_NAMES:
        return None
    rest = expression[len(root) :]
    segments = tuple(_segment_key(m.group(0)) for m in _SEGMENT_RE.finditer(rest))
    return root, segments


def _segment_key(segment: str) -> str | int:
    # ".name", ".0", "['key']", '["key"]' or "[0]", as matched by _SEGMENT.
    text = segment[1:] if segment.startswith(".") else segment[1:-1].strip()
    if text[0] in "'\"":
        return text[1:-1]
    return int(text) if text.isdigit() else text


def _step(obj: Any, key: str | int) -> Any:
    found = _lookup(obj, key)
    if found is not _MISSING or isinstance(key, int) or key.startswith("_"):
        return found
    # Containers expose only their data here (a dict's methods are not values);
    # other objects (dates, custom types) may offer plain attributes.
    if isinstance(obj, (Mapping, list, tuple, str)):
        return _MISSING
    return getattr(obj, key, _MISSING)


def _resolve_path(
    source: str, path: _Path, context: Mapping[str, Any], strict: bool
) -> Any:
    root, segments = path
    value = context[root] if root in context else _MISSING
    walked = root
    for key in segments:
        if value is _MISSING:
            break
        walked += f"[{key}]" if isinstance(key, int) else f".{key}"
        value = _step(value, key)
    if value is not _MISSING:
        return value
    if strict:
        raise TemplateError(source, f"'{walked}' is undefined")
    return None


# --------------------------------------------------------------------------
# Typing of rendered text

_TOJSON_RE = re.compile(r"\|\s*tojson\b")
# A leading zero followed by digits is an identifier (zip code), not a number.
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_NULL_WORDS = ("none", "null")


def _type_text(text: str, source: str) -> Any:
    if _TOJSON_RE.search(source):
        return text
    stripped = text.strip()
    if _is_container_text(stripped):
        return _parse_container(stripped, text)
    return _parse_scalar(stripped, text)


def _is_container_text(text: str) -> bool:
    return (text.startswith("[") and text.endswith("]")) or (
        text.startswith("{") and text.endswith("}")
    )


def _parse_container(stripped: str, text: str) -> Any:
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    # "{1, 2}" evaluates to a set, which is not data; keep the text then.
    if isinstance(value, (dict, list)):
        return plain(value)
    return text


def _parse_scalar(stripped: str, text: str) -> Any:
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in _NULL_WORDS:
        return None
    if _INT_RE.fullmatch(stripped):
        return int(stripped)
    if _FLOAT_RE.fullmatch(stripped):
        return float(stripped)
    return text


# --------------------------------------------------------------------------
# Public rendering API


def is_template(value: Any) -> bool:
    """True for a string that contains Jinja markup (``{{`` or ``{%``)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render_value(
    value: Any, context: Mapping[str, Any], *, strict: bool = False
) -> Any:
    """Render a config value with typed results (DSL §2.2, §10.13).

    Dicts (values only) and lists are rendered element by element. Lenient
    mode reads undefined names as None (single path) or '' (inside text);
    strict mode raises :class:`TemplateError` for them.
    """
    if isinstance(value, dict):
        return {
            key: render_value(item, context, strict=strict)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [render_value(item, context, strict=strict) for item in value]
    if not is_template(value):
        return value
    path = _single_path(value)
    if path is not None:
        return _resolve_path(value, path, context, strict)
    return _type_text(_render(value, context, strict), value)


def render_text(
    template: str, context: Mapping[str, Any], *, strict: bool = False
) -> str:
    """Render a template to plain text, untyped (python code, SQL)."""
    if not is_template(template):
        return template
    return _render(template, context, strict)


_FALSE_WORDS = frozenset(("false", "0", "no", "none", "null", ""))


def render_condition(value: Any, context: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Evaluate a ``when`` (DSL §10.2): ``(result, error message or None)``.

    A render error makes the condition false; the caller records the message
    as a warning.
    """
    if not isinstance(value, str):
        return bool(value), None
    try:
        result = render_value(value, context, strict=True)
    except TemplateError as exc:
        return False, str(exc)
    if isinstance(result, str):
        return result.strip().lower() not in _FALSE_WORDS, None
    return bool(result), None


def referenced_names(value: Any) -> set[str]:
    """Root names the templates in ``value`` read (``{{ a.b }}`` gives ``a``)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        names: set[str] = set()
        for item in value:
            names |= referenced_names(item)
        return names
    if is_template(value):
        return set(_names_in(value))
    return set()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _names_in(source: str) -> frozenset[str]:
    try:
        tree = _environment(False).parse(source)
        # Compiling the tree also checks filter and test names.
        return frozenset(meta.find_undeclared_variables(tree))
    except jinja2.TemplateError:
        # Rendering reports the error with context; analysis just skips it.
        return frozenset()
