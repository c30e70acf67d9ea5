"""Authenticated encryption for credential data (AES-256-GCM).

The key comes from NOETL_ENCRYPTION_KEY (urlsafe base64 of 32 bytes). With no
key configured, a development key is generated once under NOETL_HOME and a
loud warning says so: fine on a laptop, never in production. Each ciphertext
records the key id, so keys can be rotated.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

log = logging.getLogger("noetl.credentials.crypto")
NONCE_BYTES = 12


class KeyError_(Exception):
    """The encryption key is missing, malformed or not the one data used."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@lru_cache(maxsize=1)
def current_key() -> tuple[str, bytes]:
    text = settings.NOETL_ENCRYPTION_KEY or _development_key()
    try:
        key = base64.urlsafe_b64decode(text.encode())
    except ValueError as exc:
        raise KeyError_("NOETL_ENCRYPTION_KEY is not valid base64") from exc
    if len(key) != 32:
        raise KeyError_("NOETL_ENCRYPTION_KEY must decode to 32 bytes")
    return hashlib.sha256(key).hexdigest()[:16], key


def _development_key() -> str:
    path = Path(settings.NOETL_HOME) / "encryption.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key())
    log.warning(
        "NOETL_ENCRYPTION_KEY is not set: credentials are encrypted with a "
        "development key stored in %s. Set NOETL_ENCRYPTION_KEY in production.",
        path,
    )
    return path.read_text().strip()


def encrypt(plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
    key_id, key = current_key()
    nonce = os.urandom(NONCE_BYTES)
    return key_id, nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt(key_id: str, blob: bytes, associated: bytes) -> bytes:
    current_id, key = current_key()
    if key_id != current_id:
        raise KeyError_(f"credential was encrypted with key {key_id}, not the current key")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
    except Exception as exc:
        raise KeyError_("credential data failed authentication (wrong key or tampered)") from exc
