"""Storing and reading credentials. Secret values never leave through here
except to a tool that needs them."""

from __future__ import annotations

from typing import Any

import orjson

from credentials import crypto
from credentials.models import Credential
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
