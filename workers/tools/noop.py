"""The ``noop`` tool (DSL section 5.5): no side effects, always succeeds."""

from __future__ import annotations

from typing import Any

from workers.tools.base import Stopwatch, ToolContext, ok


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(ok({"status": "ok", "step": ctx.step}))
