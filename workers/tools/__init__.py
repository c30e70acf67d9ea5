"""The tool kinds a worker runs, one module each, looked up by ``kind``.

``playbook`` and ``workbook`` are not here: the engine runs sub-playbooks,
and the command runner resolves workbook tasks to the tool they wrap.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from workers.tools import registry
from workers.tools.base import Stopwatch, ToolContext, error

log = logging.getLogger("noetl.workers.tools")

# kind (or alias) -> module; registry.py is the one list of kinds.
KINDS = {name: spec.module for name, spec in registry.by_kind().items()}


def supported_kinds() -> frozenset[str]:
    """Every tool kind a playbook may use here, the engine's own included."""
    return frozenset(registry.by_kind(registry.listed()))


def run_tool(kind: str, config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    module_name = KINDS.get(kind)
    if module_name is None:
        return error(
            "unsupported_tool",
            f"tool kind {kind!r} is not supported by this NoETL version "
            f"(supported: {', '.join(sorted(KINDS))}, playbook, workbook)",
        )
    watch = Stopwatch()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return watch.stamp(_missing_dependency(kind, exc))
    try:
        outcome = module.run(config, ctx)
    except Exception as exc:  # a bug in a tool must not take the worker down
        log.exception("tool %s raised", kind)
        outcome = error(
            "internal",
            f"tool {kind!r} failed unexpectedly: {type(exc).__name__}: {exc}",
        )
    return watch.stamp(outcome)


def close_resources(resources: dict[str, Any]) -> None:
    """Close what tools kept open for one command (python children, ...)."""
    for name, resource in list(resources.items()):
        close = getattr(resource, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("closing %s failed", name)
    resources.clear()


def _missing_dependency(kind: str, exc: ImportError) -> dict[str, Any]:
    spec = registry.by_kind()[kind]
    hint = (
        f"; install it with: pip install 'noetl-django[{spec.extra}]'"
        if spec.extra
        else ""
    )
    return error(
        "unsupported_tool",
        f"tool kind {kind!r} needs a package that is not installed "
        f"({exc.name or exc}){hint}",
    )
