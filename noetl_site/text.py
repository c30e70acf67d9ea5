"""Counts in words for what people read: ``1 item``, ``2 items``.

Plain Python (no Django), so the engine's messages can use it too.
"""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, the noun in the plural unless it is one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
