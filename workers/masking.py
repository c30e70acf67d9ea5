"""Keeping secret values out of everything a command produces.

A worker learns a secret when a tool reads a credential; from then on every
value of that command (results before they become blobs, the report with
its errors and captured output) passes through ``Masker`` and each secret
becomes ``***``. Tools and user code often echo a secret in another shape,
so each secret is also looked for JSON-escaped, URL-quoted and, when it is a
connection string, as the password inside it.

Secrets the worker has seen are also remembered process-wide (bounded) so
the process's own log lines are masked by ``LogMasker``.

Pure module: no Django.
"""

from __future__ import annotations

import base64
import collections
import functools
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from executions.engine.values import dumps, loads

MASK = "***"
# Shorter values are too likely to occur by chance (and to wreck output).
MIN_LENGTH = 4
SECRET_KEYS = {
    "password",
    "db_password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "client_secret",
    "private_key",
    "dsn",
    "connection_string",
    "authorization",
}
_SECRET_WORDS = ("secret", "password", "token", "key", "credential")
_DSN_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or any(word in lowered for word in _SECRET_WORDS)


def _dsn_passwords(text: str) -> set[str]:
    """Passwords inside a URL or key=value connection string."""
    found = set()
    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    if password:
        found.add(password)
    for match in _DSN_PASSWORD.finditer(text):
        found.add(match.group(1).strip("'"))
    return found


def secret_strings(fields: dict[str, Any]) -> set[str]:
    """The values of a credential that must never appear in output."""
    found: set[str] = set()
    for key, value in fields.items():
        if isinstance(value, dict):
            found |= secret_strings(value)
        elif isinstance(value, str) and _is_secret_key(str(key)):
            found.add(value)
            found |= _dsn_passwords(value)
    # The HTTP Basic header carries user and password together, encoded.
    user = fields.get("username", fields.get("user"))
    password = fields.get("password")
    if isinstance(password, str) and len(password) >= MIN_LENGTH:
        pair = f"{user or ''}:{password}".encode()
        found.add(base64.b64encode(pair).decode())
    return {value for value in found if len(value) >= MIN_LENGTH}


def shapes(secret: str) -> set[str]:
    """The ways ``secret`` may show up in text: as is, JSON-escaped and
    URL-quoted."""
    found = {
        secret,
        dumps(secret).decode()[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
    }
    return {shape for shape in found if len(shape) >= MIN_LENGTH}


def mask_text(text: str, secrets: set[str]) -> str:
    for shape in _ordered_shapes(frozenset(secrets)):
        text = text.replace(shape, MASK)
    return text


@functools.lru_cache(maxsize=256)
def _ordered_shapes(secrets: frozenset[str]) -> tuple[str, ...]:
    """Every shape of these secrets, longest first, worked out once per set
    of secrets rather than for every value and log line masked with it."""
    return tuple(sorted(
        {s for secret in secrets for s in shapes(secret)}, key=len, reverse=True
    ))


class Masker:
    """The secrets one command has read, and the masking of its values."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def learn(self, fields: dict[str, Any]) -> None:
        self.learn_strings(secret_strings(fields))

    def learn_strings(self, found: set[str]) -> None:
        """Mask these exact strings (and their encoded shapes) from now on."""
        self.secrets |= found
        remember(found)

    def value(self, value: Any) -> Any:
        """``value`` with every secret masked (JSON values only)."""
        if not self.secrets:
            return value
        text = dumps(value).decode()
        masked = mask_text(text, self.secrets)
        return value if masked == text else loads(masked)

    def text(self, text: str) -> str:
        return mask_text(text, self.secrets) if self.secrets else text


# -- the process's own logs ------------------------------------------------------

_KNOWN: collections.OrderedDict[str, None] = collections.OrderedDict()
_KNOWN_LOCK = threading.Lock()
KNOWN_LIMIT = 1000


def remember(secrets: set[str]) -> None:
    with _KNOWN_LOCK:
        for secret in secrets:
            _KNOWN[secret] = None
            _KNOWN.move_to_end(secret)
        while len(_KNOWN) > KNOWN_LIMIT:
            _KNOWN.popitem(last=False)


def known() -> set[str]:
    with _KNOWN_LOCK:
        return set(_KNOWN)


class LogMasker(logging.Filter):
    """Masks every secret this process has handed to a tool out of a log
    record (its message with arguments, and its exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known()
        if not secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = mask_text(message, secrets), None
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, secrets)
            record.exc_info = None
        return True
