"""Storing and reading credentials. Secret values never leave through here
except to a tool that needs them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from credentials import crypto
from credentials.models import Credential, KeychainEntry, KeychainScope
from workers.tools.base import CredentialError


def save_credential(name: str, type_: str, data: dict[str, Any], description: str = "") -> Credential:
    if not isinstance(data, dict) or not data:
        raise ValueError("credential data must be a non-empty JSON object")
    key_id, blob = crypto.encrypt(orjson.dumps(data), name.encode())
    credential, _ = Credential.objects.update_or_create(
        name=name,
        defaults={"type": type_, "data_encrypted": blob, "key_id": key_id,
                  "description": description},
    )
    return credential


def read_credential(name: str) -> dict[str, Any]:
    try:
        credential = Credential.objects.get(name=name)
    except Credential.DoesNotExist:
        raise CredentialError(f"credential {name!r} does not exist") from None
    try:
        data = crypto.decrypt(credential.key_id, bytes(credential.data_encrypted), name.encode())
    except crypto.KeyError_ as exc:
        raise CredentialError(f"credential {name!r} cannot be decrypted: {exc}") from None
    fields = orjson.loads(data)
    fields.setdefault("type", credential.type)
    return fields


def save_keychain_entry(name: str, value: Any, *, scope: str = KeychainScope.GLOBAL,
                        execution_id: str | None = None,
                        expires_at: datetime | None = None) -> KeychainEntry:
    """Create or replace a keychain entry; the value is encrypted at rest."""
    if scope == KeychainScope.EXECUTION and not execution_id:
        raise ValueError("an execution-scoped keychain entry needs an execution")
    if scope == KeychainScope.GLOBAL:
        execution_id = None
    key = {"name": name, "scope": scope, "execution_id": execution_id}
    entry = KeychainEntry.objects.filter(**key).first() or KeychainEntry(**key)
    entry.key_id, entry.value_encrypted = crypto.encrypt(
        orjson.dumps(value), entry.associated_data())
    entry.expires_at = expires_at
    entry.save()
    return entry


def read_keychain_entry(entry: KeychainEntry) -> Any:
    """The decrypted value, or None once the entry has expired."""
    if entry.expires_at is not None and entry.expires_at <= timezone.now():
        return None
    try:
        data = crypto.decrypt(entry.key_id, bytes(entry.value_encrypted),
                              entry.associated_data())
    except crypto.KeyError_ as exc:
        message = f"keychain entry {entry.name!r} cannot be decrypted: {exc}"
        raise CredentialError(message) from None
    return orjson.loads(data)
