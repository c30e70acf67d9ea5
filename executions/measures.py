"""The analysis fields events carry, computed the same way everywhere.

Workers measure a command (its wall-clock start and end, its duration, the
highest retry attempt, the bytes it received and returned) and send the
numbers with their report; the engine copies them onto the command's event;
the service stores them as columns. Errors are given one shape so every
consumer can rely on ``kind``, ``message`` and ``retryable``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from executions.engine.values import dumps, is_ref

MAX_ERROR_MESSAGE = 2000


def size_of(value: Any) -> int:
    """Bytes of a value as JSON; a blob reference counts the blob's size."""
    if is_ref(value) and isinstance(value.get("size"), int):
        return int(value["size"])
    return len(dumps(value))


def timestamp(seconds: float | None) -> datetime | None:
    """A UNIX time (as workers send it) as an aware datetime."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def error_fields(error: dict[str, Any]) -> dict[str, Any]:
    """An error with ``kind``, ``message`` (at most 2,000 characters) and
    ``retryable`` always present; other keys are kept."""
    if not isinstance(error, dict):
        return {
            "kind": "error",
            "message": str(error)[:MAX_ERROR_MESSAGE],
            "retryable": False,
        }
    message = error.get("message")
    return {
        **error,
        "kind": str(error.get("kind") or "error"),
        "message": str(message if message is not None else "")[:MAX_ERROR_MESSAGE],
        "retryable": bool(error.get("retryable", False)),
    }
