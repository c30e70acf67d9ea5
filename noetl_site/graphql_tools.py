"""Pieces every app's GraphQL schema shares: the caller, permission checks
as GraphQL errors, page sizes, and what a query selected."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from noetl_site import access
from noetl_site.api import MAX_PAGE


def caller(info: Info) -> access.Caller:
    return getattr(info.context.request, "user", None)


def require(allowed: bool, what: str) -> None:
    """A refused check as a GraphQL error with a stable code."""
    if not allowed:
        raise GraphQLError(
            f"permission denied: {what}", extensions={"code": "PERMISSION_DENIED"}
        )


def not_found(what: str) -> GraphQLError:
    return GraphQLError(f"{what} not found", extensions={"code": "NOT_FOUND"})


def page_size(limit: int | None, default: int = 50) -> int:
    """``limit`` bounded to 1..MAX_PAGE, as the REST API bounds it."""
    if limit is None:
        return default
    return max(1, min(limit, MAX_PAGE))


def selects(info: Info, *path: str) -> bool:
    """Whether the current field's selection reaches ``path`` (field names,
    outermost first), e.g. ``selects(info, "results", "versions")``."""
    fields: list[Any] = list(info.selected_fields)
    for name in path:
        fields = [
            child
            for field in fields
            for child in _children(field)
            if child.name == name
        ]
        if not fields:
            return False
    return True


def _children(field: Any) -> list[Any]:
    """The fields selected below ``field``, looking through fragments."""
    found = []
    for child in getattr(field, "selections", None) or []:
        if isinstance(child, SelectedField):
            found.append(child)
        else:
            found.extend(_children(child))
    return found
