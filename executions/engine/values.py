"""JSON encoding and large values stored by reference (DESIGN-NOTES R11).

A value whose JSON encoding is larger than the inline limit is written once to
a content-addressed blob store and replaced by a small reference dict:
``{"$ref": "sha256:<hex>", "size": n, "preview": "..."}``. Everything that
reads a value (templates, the API, the CLI) resolves references first, so a
large value looks the same as a small one.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import uuid
from collections import OrderedDict
from typing import Any, Protocol

import orjson

INLINE_LIMIT = 32 * 1024
PREVIEW_CHARS = 200
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (dt.date, dt.time, uuid.UUID)):
        return str(value)
    return str(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def roundtrip(value: Any) -> Any:
    """The value as it will look after crossing the wire (plain JSON types)."""
    return loads(dumps(value))


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("$ref"), str)


class BlobStore(Protocol):
    def put_blob(self, sha256: str, data: bytes) -> None: ...

    def get_blob(self, sha256: str) -> bytes: ...


class MemoryBlobStore:
    """A blob store for tests and for the pure engine's own checks."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_blob(self, sha256: str, data: bytes) -> None:
        self.blobs[sha256] = data

    def get_blob(self, sha256: str) -> bytes:
        return self.blobs[sha256]


class Values:
    """Stores large values by reference and resolves references, with a cache."""

    def __init__(self, store: BlobStore, limit: int = INLINE_LIMIT) -> None:
        self.store = store
        self.limit = limit
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def externalize(self, value: Any, *, always: bool = False) -> Any:
        if is_ref(value):
            return value
        data = dumps(value)
        if len(data) <= self.limit and not always:
            return loads(data) if not isinstance(value, (str, int, float)) else value
        sha = hashlib.sha256(data).hexdigest()
        self.store.put_blob(sha, data)
        self._remember(sha, loads(data))
        preview = data[:PREVIEW_CHARS].decode("utf-8", "replace")
        return {"$ref": f"sha256:{sha}", "size": len(data), "preview": preview}

    def externalize_each(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """Externalize each value of a variable patch on its own."""
        return {name: self.externalize(value) for name, value in mapping.items()}

    def resolve(self, value: Any) -> Any:
        if not is_ref(value):
            return value
        sha = value["$ref"].split(":", 1)[1]
        if sha in self._cache:
            self._cache.move_to_end(sha)
            return self._cache[sha]
        resolved = loads(self.store.get_blob(sha))
        self._remember(sha, resolved)
        return resolved

    def _remember(self, sha: str, value: Any) -> None:
        self._cache[sha] = value
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
