"""Credentials and keychain entries over GraphQL: metadata only.

No type here has a field for a secret: the encrypted columns and the key
id are simply not declared, so no query can select them.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from django.utils import timezone

from credentials.models import Credential, KeychainEntry


@strawberry_django.type(Credential, name="Credential")
class CredentialType:
    name: str
    type: str
    description: str
    allowed_paths: list[str] = strawberry_django.field(
        description="Catalog path patterns of the playbooks that may use it."
    )
    created_at: datetime
    updated_at: datetime


@strawberry_django.type(KeychainEntry, name="KeychainEntry")
class KeychainEntryType:
    id: strawberry.ID
    name: str
    scope: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry_django.field(only=["execution_id"])
    def execution(self, root: KeychainEntry) -> strawberry.ID | None:
        return root.execution_id  # type: ignore[return-value]

    @strawberry_django.field(only=["expires_at"])
    def expired(self, root: KeychainEntry) -> bool:
        return root.expires_at is not None and root.expires_at <= timezone.now()
