"""The catalog's GraphQL types: playbook versions, and playbooks with them."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry.scalars import JSON

from catalog.models import PlaybookVersion


@strawberry_django.type(PlaybookVersion, name="PlaybookVersion")
class PlaybookVersionType:
    id: strawberry.ID
    path: str
    version: int
    name: str
    digest: str
    created_at: datetime
    content: str

    @strawberry_django.field(only=["parsed"])
    def warnings(self, root: PlaybookVersion) -> JSON:
        """What the validator noticed, each with its YAML path and line."""
        return list((root.parsed or {}).get("warnings") or [])


@strawberry.type
class Playbook:
    """One catalog path: its newest version and, when asked, all of them."""

    path: str
    latest: PlaybookVersionType
    versions: list[PlaybookVersionType]


@strawberry.type
class PlaybookPage:
    results: list[Playbook]
    next_after: str | None = strawberry.field(
        description="The last path of this page; pass it as `after`."
    )


@strawberry.type
class Registered:
    version: PlaybookVersionType
    created: bool
