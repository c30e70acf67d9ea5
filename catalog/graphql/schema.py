"""The catalog over GraphQL: list and read playbooks, register one."""

from __future__ import annotations

from collections import defaultdict

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from catalog import services as catalog
from catalog.api.serializers import issue_data
from catalog.graphql.types import (
    Playbook,
    PlaybookPage,
    PlaybookVersionType,
    Registered,
)
from catalog.models import PlaybookVersion
from noetl_site import access
from noetl_site.graphql_tools import caller, page_size, require, selects


def _versions_by_path(paths: list[str]) -> dict[str, list[PlaybookVersion]]:
    found: dict[str, list[PlaybookVersion]] = defaultdict(list)
    rows = PlaybookVersion.objects.filter(path__in=paths).order_by("path", "-version")
    for row in rows:
        found[row.path].append(row)
    return found


@strawberry.type
class Query:
    @strawberry.field(description="The newest version of each path, in path order.")
    def playbooks(
        self,
        info: Info,
        path_prefix: str = "",
        after: str = "",
        limit: int | None = None,
    ) -> PlaybookPage:
        require(access.can_view(caller(info), path_prefix), "view the catalog")
        size = page_size(limit)
        user = caller(info)
        rows = catalog.latest_versions(
            path_prefix, after, size, narrow=lambda rows: access.viewable(user, rows)
        )

        # Every page's versions in one query, and only when they are asked for.
        versions: dict[str, list[PlaybookVersion]] = {}
        if selects(info, "results", "versions"):
            versions = _versions_by_path([row.path for row in rows])
        results = [
            Playbook(
                path=row.path,
                latest=row,  # type: ignore[arg-type]
                versions=versions.get(row.path, []),  # type: ignore[arg-type]
            )
            for row in rows
        ]
        next_after = rows[-1].path if len(rows) == size else None
        return PlaybookPage(results=results, next_after=next_after)

    @strawberry.field(description="One version of a path (default: the latest).")
    def playbook(
        self, info: Info, path: str, version: int | None = None
    ) -> PlaybookVersionType | None:
        require(access.can_view(caller(info), path), f"view {path}")
        try:
            return catalog.resolve(path, version)  # type: ignore[return-value]
        except catalog.PlaybookNotFound:
            return None


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Validate and store a playbook; identical content returns "
        "the existing version. An invalid playbook is refused with every "
        "issue (YAML path and line) in the error's extensions."
    )
    def register_playbook(self, info: Info, content: str) -> Registered:
        # Parsed once here for its path, so the check precedes any write;
        # register parses again, which costs milliseconds on a rare call.
        try:
            path = catalog.path_of(content)
        except catalog.PlaybookError as exc:
            raise _invalid(exc) from None
        require(access.can_modify(caller(info), path), f"modify {path}")

        try:
            version, created = catalog.register(content)
        except catalog.PlaybookError as exc:
            raise _invalid(exc) from None
        return Registered(version=version, created=created)  # type: ignore[arg-type]


def _invalid(exc: catalog.PlaybookError) -> GraphQLError:
    return GraphQLError(
        "the playbook is not valid",
        extensions={
            "code": "INVALID_PLAYBOOK",
            "issues": [issue_data(issue) for issue in exc.issues],
            "warnings": [issue_data(issue) for issue in exc.warnings],
        },
    )
