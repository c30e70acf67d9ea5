"""YAML paths such as `workflow[2].tool[1].spec.policy.rules[0]`."""

from __future__ import annotations

import json
import re

# Keys that can be written after a dot without ambiguity.
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]*\Z")
# The last segment of a path: `[3]`, `["ctx.a"]` or `.name` (no dot at the root).
_LAST_SEGMENT = re.compile(r'(?:\[\d+\]|\["(?:[^"\\]|\\.)*"\]|\.?[A-Za-z_][\w-]*)\Z')


def key_path(base: str, key: object) -> str:
    text = str(key)
    if not _PLAIN_KEY.match(text):
        # Keys like `ctx.a` would read as two segments, so they are quoted.
        return f"{base}[{json.dumps(text)}]"
    return f"{base}.{text}" if base else text


def index_path(base: str, index: int) -> str:
    return f"{base}[{index}]"


def parent_path(path: str) -> str | None:
    """The enclosing path, or None for the document root ("")."""
    if not path:
        return None
    last = _LAST_SEGMENT.search(path)
    return path[: last.start()] if last else ""
