"""The ``secrets`` tool (DSL sections 5.8 and 8): fetch one secret.

Providers available offline:

- ``env``: ``name`` is an environment variable of the worker.
- ``credential``: ``name`` is a credential in the store; ``field`` picks one
  of its fields (without it the result's ``value`` is every field but
  ``type``).

Cloud secret managers (``gcp``, ``aws``, ``azure``) need their cloud and are
refused with a clear message. The value is returned as ``data.value`` so
the next tasks of the same step can use it, and registered with the
context so the report masks it: it never reaches an event.
"""

from __future__ import annotations

import os
from typing import Any

from workers.tools.base import CredentialError, Stopwatch, ToolContext, error, ok

PROVIDERS = ("env", "credential")
_CLOUD = ("gcp", "google", "aws", "azure", "vault")


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    provider = str(config.get("provider") or "env").strip().lower()
    name = config.get("name") or config.get("key") or config.get("secret")
    if not name:
        return error("config", "no secret named: set name")
    name = str(name)
    if provider in _CLOUD:
        return error(
            "config",
            f"secrets provider {provider!r} needs its cloud and is not available "
            f"in this installation (available: {', '.join(PROVIDERS)})",
        )
    try:
        if provider == "env":
            value = _from_env(name)
        elif provider in ("credential", "credentials", "store"):
            value = _from_store(name, config.get("field"), ctx)
        else:
            return error(
                "config",
                f"unknown secrets provider {provider!r} "
                f"(available: {', '.join(PROVIDERS)})",
            )
    except CredentialError as exc:
        return error("credential", str(exc))
    _register(value, ctx)
    return ok({"status": "success", "name": name, "provider": provider, "value": value})


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise CredentialError(f"environment variable {name!r} is not set on the worker")
    return value


def _from_store(name: str, field: Any, ctx: ToolContext) -> Any:
    fields = dict(ctx.credential(name))
    fields.pop("type", None)
    if field in (None, ""):
        return fields
    if str(field) not in fields:
        known = ", ".join(sorted(fields)) or "none"
        raise CredentialError(
            f"credential {name!r} has no field {field!r} (fields: {known})"
        )
    return fields[str(field)]


def _register(value: Any, ctx: ToolContext) -> None:
    """Every text inside the value is masked in the report (numbers such as
    a port are not secrets, and masking them would garble other values)."""
    if isinstance(value, dict):
        for item in value.values():
            _register(item, ctx)
    elif isinstance(value, list):
        for item in value:
            _register(item, ctx)
    elif isinstance(value, str):
        ctx.secret(value)
