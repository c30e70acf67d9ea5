"""Storing and reading credentials. Secret values never leave through here
except to a tool that needs them, and only for a playbook in the
credential's scope; every such read is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from accounts import audit
from credentials import crypto
from credentials.models import Credential, KeychainEntry, KeychainScope
from noetl_site.access import matches
from workers.tools.base import CredentialError, CredentialNotAllowed


def check_patterns(patterns: Any) -> list[str]:
    """``patterns`` as a clean list of path patterns, or ValueError."""
    if not isinstance(patterns, list) or not all(
        isinstance(p, str) and p.strip() for p in patterns
    ):
        raise ValueError("allowed_paths must be a list of path patterns")
    return [p.strip() for p in patterns]


def save_credential(
    name: str,
    type_: str,
    data: dict[str, Any],
    description: str = "",
    allowed_paths: list[str] | None = None,
) -> Credential:
    """Create or replace a credential. ``allowed_paths`` None keeps the
    stored scope (``*`` for a new credential)."""
    if not isinstance(data, dict) or not data:
        raise ValueError("credential data must be a non-empty JSON object")
    key_id, blob = crypto.encrypt(orjson.dumps(data), name.encode())
    defaults: dict[str, Any] = {
        "type": type_,
        "data_encrypted": blob,
        "key_id": key_id,
        "description": description,
    }
    if allowed_paths is not None:
        defaults["allowed_paths"] = check_patterns(allowed_paths)
    credential, _ = Credential.objects.update_or_create(name=name, defaults=defaults)
    return credential


def _decrypted(credential: Credential) -> dict[str, Any]:
    name = credential.name
    try:
        data = crypto.decrypt(
            credential.key_id, bytes(credential.data_encrypted), name.encode()
        )
    except crypto.KeyError_ as exc:
        raise CredentialError(
            f"credential {name!r} cannot be decrypted: {exc}"
        ) from None
    fields = orjson.loads(data)
    fields.setdefault("type", credential.type)
    return fields


def _get(name: str) -> Credential:
    try:
        return Credential.objects.get(name=name)
    except Credential.DoesNotExist:
        raise CredentialError(f"credential {name!r} does not exist") from None


def read_credential(name: str) -> dict[str, Any]:
    """The decrypted fields, for the store's own writers (the admin merging
    an edit). Tools go through ``credential_for_playbook``."""
    return _decrypted(_get(name))


def in_scope(credential: Credential, path: str) -> bool:
    return any(matches(pattern, path) for pattern in credential.allowed_paths or [])


def credential_for_playbook(
    name: str, path: str, *, actor: str, execution_id: str = ""
) -> dict[str, Any]:
    """The fields of ``name`` for a step of the playbook at ``path``.

    Refused with CredentialError unless the credential's scope covers the
    playbook. Every attempt, granted or refused, is recorded."""
    credential = Credential.objects.filter(name=name).first()
    allowed = credential is not None and in_scope(credential, path)
    audit.record(
        "credential.read",
        name,
        actor=actor,
        allowed=allowed,
        playbook=path,
        execution=execution_id,
    )
    if credential is None:
        raise CredentialError(f"credential {name!r} does not exist")
    if not allowed:
        raise CredentialNotAllowed(
            f"credential {name} is not available to playbook {path}"
        )
    return _decrypted(credential)


def save_keychain_entry(
    name: str,
    value: Any,
    *,
    scope: str = KeychainScope.GLOBAL,
    execution_id: str | None = None,
    expires_at: datetime | None = None,
) -> KeychainEntry:
    """Create or replace a keychain entry; the value is encrypted at rest."""
    if scope == KeychainScope.EXECUTION and not execution_id:
        raise ValueError("an execution-scoped keychain entry needs an execution")
    if scope == KeychainScope.GLOBAL:
        execution_id = None
    key = {"name": name, "scope": scope, "execution_id": execution_id}
    entry = KeychainEntry.objects.filter(**key).first() or KeychainEntry(**key)
    entry.key_id, entry.value_encrypted = crypto.encrypt(
        orjson.dumps(value), entry.associated_data()
    )
    entry.expires_at = expires_at
    entry.save()
    return entry


def read_keychain_entry(entry: KeychainEntry) -> Any:
    """The decrypted value, or None once the entry has expired."""
    if entry.expires_at is not None and entry.expires_at <= timezone.now():
        return None
    return orjson.loads(_keychain_plaintext(entry))


def _keychain_plaintext(entry: KeychainEntry) -> bytes:
    try:
        return crypto.decrypt(
            entry.key_id, bytes(entry.value_encrypted), entry.associated_data()
        )
    except crypto.KeyError_ as exc:
        message = f"keychain entry {entry.name!r} cannot be decrypted: {exc}"
        raise CredentialError(message) from None


def reencrypt_all() -> tuple[int, int]:
    """Re-encrypt every credential and keychain entry not yet under the
    current key. Returns how many of each were rewritten."""
    current_id, _ = crypto.current_key()
    credentials = _reencrypt(
        Credential, "data_encrypted", lambda row: row.name.encode(), current_id
    )
    entries = _reencrypt(
        KeychainEntry, "value_encrypted", KeychainEntry.associated_data, current_id
    )
    return credentials, entries


def _reencrypt(
    model: Any, column: str, associated: Callable[[Any], bytes], current_id: str
) -> int:
    # Each row in its own transaction under a row lock: a concurrent save is
    # neither lost nor overwritten with stale data.
    done = 0
    stale = model.objects.exclude(key_id=current_id).values_list("pk", flat=True)
    for pk in stale:
        with transaction.atomic():
            row = model.objects.select_for_update().get(pk=pk)
            if row.key_id == current_id:
                continue
            aad = associated(row)
            plain = crypto.decrypt(row.key_id, bytes(getattr(row, column)), aad)
            row.key_id, blob = crypto.encrypt(plain, aad)
            setattr(row, column, blob)
            row.save(update_fields=["key_id", column])
            done += 1
    return done
