"""What every tool kind shares: its context, its outcome envelope, its errors.

A tool is a module in this package with a function ``run(config, ctx)``. The
config is already rendered (templates resolved); the tool does its work and
returns the outcome envelope of DSL section 5.0 as a plain, JSON-serialisable
dict. Tools never raise for a failure the user can cause: they return an
error envelope whose ``kind`` says what went wrong (DSL section 10.10).

No Django here: tools are tested without a database.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 600.0


class CredentialError(Exception):
    """A credential is missing, cannot be decrypted, or is not allowed here."""


class CredentialNotAllowed(CredentialError):
    """The credential exists but its scope does not cover this playbook."""


@dataclass
class ToolContext:
    """What a tool may use besides its config.

    ``credential(name)`` returns the decrypted fields of a stored credential or
    raises CredentialError. ``secret(value)`` asks for a value to be masked in
    everything the command reports. ``log(line)`` appends to the command's
    captured output. ``cancelled`` is set when the run is cancelled; a tool that blocks
    should watch it (or rely on ``interrupt`` being called from another thread).
    """

    execution_id: str = ""
    step: str = ""
    task: str = ""
    effect_key: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    credential: Callable[[str], dict[str, Any]] = field(
        default=lambda name: _no_credentials(name)
    )
    log: Callable[[str], None] = field(default=lambda line: None)
    # Registers a value the command's report must mask (a fetched secret).
    secret: Callable[[str], None] = field(default=lambda value: None)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Per-command resources a tool may keep between iterations of one command
    # (a forked python child, a DuckDB connection). Closed when the command ends.
    resources: dict[str, Any] = field(default_factory=dict)


def _no_credentials(name: str) -> dict[str, Any]:
    raise CredentialError(f"credential {name!r} is not available here")


def credential_fields(
    config: dict[str, Any], ctx: ToolContext, *, required: bool = False
) -> dict[str, Any]:
    """The fields ``auth`` (or the older ``credential``/``credentials``) names
    (DSL section 8): a credential name, ``{source: credential, key: name}``,
    or an inline map (``{fields: {...}}`` or the fields themselves).

    Raises CredentialError when the credential cannot be had, or when
    ``required`` and no auth is given."""
    ref = config.get("auth") or config.get("credential") or config.get("credentials")
    if not ref:
        if required:
            raise CredentialError("no credential given: set auth to a credential name")
        return {}
    if isinstance(ref, str):
        return dict(ctx.credential(ref))
    if not isinstance(ref, dict):
        raise CredentialError("auth must be a credential name or a map")
    name = ref.get("key") or ref.get("name") or ref.get("credential")
    if str(ref.get("source", "")).lower() == "credential" or (name and len(ref) == 1):
        if not name:
            raise CredentialError("auth source is credential but names none")
        return dict(ctx.credential(str(name)))
    inline = ref.get("fields") if isinstance(ref.get("fields"), dict) else ref
    return dict(inline)


def first_field(fields: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` that ``fields`` holds with a non-empty value."""
    for key in keys:
        if fields.get(key) not in (None, ""):
            return fields[key]
    return None


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "on", "1"}
    return bool(value)


def noetl_home() -> Path:
    """The installation's home (the same default as the Django settings)."""
    return Path(os.environ.get("NOETL_HOME") or Path.cwd() / ".noetl").resolve()


def encode_value(value: Any, encoding: str = "") -> bytes:
    """Bytes to store: maps and lists as JSON, text as UTF-8 (or base64)."""
    if isinstance(value, bytes):
        return value
    if encoding == "base64":
        try:
            return base64.b64decode(str(value), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"value is not valid base64: {exc}") from exc
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def decode_value(raw: bytes | None, form: str = "") -> Any:
    """A stored value read back: JSON when it is a JSON map or list (or when
    ``form`` is json), text when UTF-8, else base64."""
    if raw is None:
        return None
    if form == "base64":
        return base64.b64encode(raw).decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")
    if form == "text":
        return text
    if form == "json" or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError as exc:
            if form == "json":
                raise ValueError(f"the stored value is not JSON: {exc}") from exc
    return text


def ok(data: Any, **extra: Any) -> dict[str, Any]:
    return {"status": "ok", "data": data, **extra}


def error(
    kind: str,
    message: str,
    *,
    retryable: bool = False,
    code: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    err: dict[str, Any] = {"kind": kind, "message": message, "retryable": retryable}
    if code is not None:
        err["code"] = code
    return {"status": "error", "error": err, **extra}


class ConfigError(ValueError):
    """A task's config cannot be run as given; the message says why."""


class Stop(Exception):
    """Ends a tool's run early with a ready outcome envelope."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__((outcome.get("error") or {}).get("message") or "stopped")
        self.outcome = outcome


class Stopwatch:
    """Measures a tool call for ``meta.duration_ms``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def stamp(self, outcome: dict[str, Any]) -> dict[str, Any]:
        elapsed = (time.perf_counter() - self.started) * 1000.0
        outcome.setdefault("meta", {})["duration_ms"] = round(elapsed, 3)
        return outcome


# --- Helpers shared by tool kinds (added with the http/SQL tools). ---------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)


def parse_seconds(value: Any, default: float | None = None) -> float | None:
    """A duration as seconds: a number, or text such as ``"30"``, ``"30s"``,
    ``"500ms"``, ``"5m"``, ``"1h"``. ``None`` and ``""`` give ``default``.
    Raises ValueError for anything else."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * _UNITS[unit]


def jsonable(value: Any) -> Any:
    """Turn a driver value into plain JSON data: Decimal → float, date/time →
    ISO text, timedelta → seconds, UUID → text, bytes → hex text; containers
    recursively; anything else unknown → ``str(value)``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


class Watchdog:
    """Calls ``interrupt()`` from a helper thread when the run is cancelled
    (``ctx.cancelled``) or ``seconds`` have passed, whichever comes first
    (``seconds`` of None or <= 0: no deadline, only cancellation).

    Use as a context manager around blocking work; ``fired`` then says why it
    interrupted (``"cancelled"`` or ``"timeout"``), or is None.
    """

    POLL_S = 0.05

    def __init__(
        self,
        ctx: ToolContext,
        seconds: float | None,
        interrupt: Callable[[], Any],
    ) -> None:
        self.ctx = ctx
        self.seconds = seconds
        limited = seconds is not None and seconds > 0
        self.deadline = time.monotonic() + seconds if limited else math.inf
        self.interrupt = interrupt
        self.fired: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.ctx.cancelled.is_set():
                self._fire("cancelled")
                return
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._fire("timeout")
                return
            self._stop.wait(min(self.POLL_S, left))

    def _fire(self, reason: str) -> None:
        self.fired = reason
        with contextlib.suppress(Exception):  # best effort; the caller reports
            self.interrupt()
