"""Safe YAML loading that remembers the line of every path."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from catalog.dsl.errors import Issue, PlaybookError
from catalog.dsl.paths import index_path, key_path


class _Loader(yaml.SafeLoader):
    """SafeLoader whose output is always JSON-serialisable."""


def _timestamp_as_text(loader: _Loader, node: ScalarNode) -> str:
    return str(loader.construct_scalar(node))


# A date-looking scalar (`version: 2024-01-01`) stays a string: the normalised
# playbook is stored as JSON, and no part of the language wants a date object.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_yaml(
    text: str | bytes, starts: dict[str, int] | None = None
) -> tuple[Any, dict[str, int]]:
    """Parse one YAML document; return the data and {yaml path: 1-based line}.

    ``starts``, when given, is filled with the line each scalar's text begins
    on: the line after the key for a ``|`` or ``>`` block, so a line inside
    a template or a script can be mapped to the file."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        lines: dict[str, int] = {}
        if node is not None:
            _record_lines(loader, node, "", lines, set(), starts)
    except yaml.MarkedYAMLError as exc:
        raise PlaybookError([_syntax_issue(exc)]) from exc
    except yaml.YAMLError as exc:
        raise PlaybookError([Issue("", None, f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    return data, lines


def _syntax_issue(exc: yaml.MarkedYAMLError) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "syntax error"
    if exc.context:
        # The construct that is left open often starts lines before where
        # the parser notices: name both places.
        started = exc.context_mark
        if started is not None and exc.problem_mark is not None and \
                started.line != exc.problem_mark.line:
            problem = f"{exc.context} started on line {started.line + 1}, {problem}"
        else:
            problem = f"{exc.context}, {problem}"
    return Issue("", line, f"invalid YAML: {problem}")


def _record_lines(
    loader: _Loader,
    node: Node,
    path: str,
    lines: dict[str, int],
    open_nodes: set[int],
    starts: dict[str, int] | None = None,
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if starts is not None and isinstance(node, ScalarNode):
        block = node.style in ("|", ">")
        starts.setdefault(path, node.start_mark.line + (2 if block else 1))
    # An alias may point back at one of its own ancestors; stop there.
    if id(node) in open_nodes:
        return
    open_nodes.add(id(node))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child = key_path(path, key)
            # A mapping entry is reported at its key, where the reader looks.
            lines.setdefault(child, key_node.start_mark.line + 1)
            _record_lines(loader, value_node, child, lines, open_nodes, starts)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(
                loader, item, index_path(path, index), lines, open_nodes, starts
            )
    open_nodes.discard(id(node))
