"""Credential metadata over GraphQL; the secrets are written through REST
or the admin and never read back anywhere."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from credentials.graphql.types import CredentialType, KeychainEntryType
from credentials.models import Credential, KeychainEntry
from noetl_site import access
from noetl_site.graphql_tools import caller, page_size, require


@strawberry.type
class Query:
    @strawberry.field(description="Credentials by name (never their data).")
    def credentials(
        self, info: Info, type: str = "", after: str = "", limit: int | None = None
    ) -> list[CredentialType]:
        require(access.can_view_secrets_metadata(caller(info)), "view credentials")
        rows = Credential.objects.order_by("name")
        if type:
            rows = rows.filter(type=type)
        if after:
            rows = rows.filter(name__gt=after)
        return rows[: page_size(limit)]  # type: ignore[return-value]

    @strawberry.field(description="Keychain entries and their expiry (no values).")
    def keychain_entries(
        self,
        info: Info,
        execution_id: strawberry.ID | None = None,
        limit: int | None = None,
    ) -> list[KeychainEntryType]:
        require(access.can_view_secrets_metadata(caller(info)), "view the keychain")
        rows = KeychainEntry.objects.order_by("name", "id")
        if execution_id:
            rows = rows.filter(execution_id=execution_id)
        return rows[: page_size(limit)]  # type: ignore[return-value]
