"""Authenticated encryption for credential data (AES-256-GCM).

The key comes from NOETL_ENCRYPTION_KEY (urlsafe base64 of 32 bytes). With no
key configured, a development key is generated once under NOETL_HOME and a
loud warning says so: fine on a laptop, never in production.

Rotation: each ciphertext records the id of its key (a digest of the key, so
ids need no naming). New writes use NOETL_ENCRYPTION_KEY; keys listed in
NOETL_ENCRYPTION_OLD_KEYS (comma separated) still decrypt what they wrote.
``manage.py rotatekeys`` re-encrypts every credential and keychain entry
with the current key, after which the old keys can be dropped.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

log = logging.getLogger("noetl.credentials.crypto")
NONCE_BYTES = 12
# Worker threads ask for the key at the same moment when a run starts; the
# development key is made and warned about once per process, not per thread.
_DEV_KEY_LOCK = threading.Lock()
_warned_about: set[Path] = set()


class KeyError_(Exception):
    """The encryption key is missing, malformed or not the one data used."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _parse(text: str, setting: str) -> tuple[str, bytes]:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError as exc:
        raise KeyError_(f"{setting} is not valid base64") from exc
    if len(key) != 32:
        raise KeyError_(f"{setting} must decode to 32 bytes")
    return hashlib.sha256(key).hexdigest()[:16], key


@lru_cache(maxsize=1)
def current_key() -> tuple[str, bytes]:
    text = settings.NOETL_ENCRYPTION_KEY or _development_key()
    return _parse(text, "NOETL_ENCRYPTION_KEY")


@lru_cache(maxsize=8)
def _old_keys(texts: tuple[str, ...]) -> dict[str, bytes]:
    return dict(_parse(text, "NOETL_ENCRYPTION_OLD_KEYS") for text in texts if text)


def key_for(key_id: str) -> bytes:
    """The key that wrote ``key_id``: the current one or a listed old one."""
    current_id, key = current_key()
    if key_id == current_id:
        return key
    old = _old_keys(tuple(getattr(settings, "NOETL_ENCRYPTION_OLD_KEYS", ()) or ()))
    if key_id in old:
        return old[key_id]
    raise KeyError_(
        f"data was encrypted with key {key_id}, which is neither the current key "
        "nor one listed in NOETL_ENCRYPTION_OLD_KEYS"
    )


def _development_key() -> str:
    path = Path(settings.NOETL_HOME) / "encryption.key"
    with _DEV_KEY_LOCK:
        if not path.exists():
            _create_key_file(path)
        if path not in _warned_about:
            _warned_about.add(path)
            log.warning(
                "NOETL_ENCRYPTION_KEY is not set: credentials are encrypted with a "
                "development key stored in %s. Set NOETL_ENCRYPTION_KEY in "
                "production.",
                path,
            )
    return path.read_text().strip()


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key())


def encrypt(plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
    key_id, key = current_key()
    nonce = os.urandom(NONCE_BYTES)
    return key_id, nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt(key_id: str, blob: bytes, associated: bytes) -> bytes:
    key = key_for(key_id)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
    except Exception as exc:
        raise KeyError_(
            "credential data failed authentication (wrong key or tampered)"
        ) from exc
