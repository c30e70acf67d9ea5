"""Log records as one JSON object per line, with the run they concern.

Every process (gunicorn, ``runworker``, ``runscheduler``, the ``noetl`` CLI)
logs through the ``noetl`` logger tree with these formatters, chosen by
``NOETL_LOG_FORMAT``: ``json`` (one object per line, for log shippers),
``text`` (for people), or ``auto`` (the default: text on a terminal, JSON
otherwise). Code that works on a run binds its identifiers once with
``bound(...)``; every record logged inside, by any module, carries them.
No Django here: workers and pure modules use it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

CONTEXT_FIELDS = ("execution_id", "step", "command_id", "worker_id", "schedule")
# Never mutated: each change sets a new dict, so the shared default is safe.
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "noetl_log_context", default=MappingProxyType({})
)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Within this block, records carry these fields (empty ones are left out)."""
    token = _context.set(
        {**_context.get(), **{k: str(v) for k, v in fields.items() if v}}
    )
    try:
        yield
    finally:
        _context.reset(token)


def add(**fields: Any) -> None:
    """Add fields to the current context until it is reset (a request's
    middleware resets it when the response is done)."""
    _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v}})


def context() -> dict[str, str]:
    return dict(_context.get())


class RequestContextMiddleware:
    """A request's records carry the run it is about (``execution_id`` in
    the URL) and nothing from the previous request on the same thread."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        token = _context.set({})
        try:
            return self.get_response(request)
        finally:
            _context.reset(token)

    def process_view(
        self, request: Any, view: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        add(execution_id=kwargs.get("execution_id"))


def process_name(argv: list[str] | None = None) -> str:
    """web, runworker, runscheduler, cli, or the management command run."""
    args = sys.argv if argv is None else argv
    program = os.path.basename(args[0]) if args else ""
    if "gunicorn" in program or any("gunicorn" in a for a in args[:3]):
        return "web"
    if program == "manage.py" and len(args) > 1:
        return args[1]
    if program in ("noetl", "cli.py") or "noetl_site.cli" in args[:3]:
        return "cli"
    return program or "python"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(_context.get())
    for name in CONTEXT_FIELDS:
        value = record.__dict__.get(name)
        if value:
            fields[name] = str(value)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, process, message,
    the run's identifiers and, for an exception, its traceback as a string."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process = process_name()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "pid": record.process,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message [execution=... step=...]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if not fields:
            return text
        tags = " ".join(f"{k.removesuffix('_id')}={v}" for k, v in fields.items())
        head, newline, rest = text.partition("\n")
        return f"{head} [{tags}]{newline}{rest}"


def formatter_class(choice: str, stream: Any = None) -> str:
    """The dotted path of the formatter for ``NOETL_LOG_FORMAT``."""
    choice = (choice or "auto").lower()
    if choice not in ("auto", "json", "text"):
        raise ValueError(f"NOETL_LOG_FORMAT must be auto, json or text, got {choice!r}")
    if choice == "auto":
        stream = stream or sys.stderr
        choice = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    return f"noetl_site.logs.{'Json' if choice == 'json' else 'Text'}Formatter"


def gunicorn_logging_config(choice: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access logs through the
    formatter ``NOETL_LOG_FORMAT`` picks, to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "noetl"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"noetl": {"()": formatter_class(choice)}},
        "handlers": {"stderr": handler},
        # gunicorn merges this over its defaults, whose root names a handler
        # of its own: name ours instead.
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "gunicorn.error": {
                "handlers": ["stderr"],
                "level": "INFO",
                "propagate": False,
            },
            "gunicorn.access": {
                "handlers": ["stderr"],
                "level": "INFO",
                "propagate": False,
            },
        },
    }


def _at_most_info(level: str) -> str:
    return "INFO" if level.upper() == "WARNING" else level


def logging_config(choice: str, level: str) -> dict[str, Any]:
    """The LOGGING setting: the noetl tree at ``level``, everything else
    (Django, libraries) at WARNING, all through one formatter to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"noetl": {"()": formatter_class(choice)}},
        # Secrets a worker handed to a tool are masked out of every line.
        "filters": {"mask_secrets": {"()": "workers.masking.LogMasker"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "noetl",
                "filters": ["mask_secrets"],
            }
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "noetl": {"handlers": ["stderr"], "level": level, "propagate": False},
            # A process's start and stop lines show at the default WARNING
            # level too; only ERROR or CRITICAL silence them.
            "noetl.lifecycle": {"level": _at_most_info(level)},
            # It logs a traceback per refused connection; the caller says why.
            "clickhouse_driver": {"level": "CRITICAL"},
        },
    }
