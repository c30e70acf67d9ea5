"""Who may see, run and change what: the one place GraphQL and the admin ask.

Each check takes the caller and the catalog path it is about (DESIGN.md
section 7: view, execute, modify per path pattern). Today every active,
authenticated user may do everything, and NOETL_AUTH_DISABLED opens the
checks to anonymous callers too, as it does for the REST API. Path rules
will live here, so callers always pass the path they act on.
"""

from __future__ import annotations

from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

Caller = AbstractBaseUser | AnonymousUser | None
ModelT = TypeVar("ModelT")


class Denied(PermissionError):
    """The caller may not do this; the message says what was refused."""


def _signed_in(user: Caller) -> bool:
    if settings.NOETL_AUTH_DISABLED:
        return True
    return bool(
        user is not None and user.is_authenticated and getattr(user, "is_active", False)
    )


def can_view(user: Caller, path: str = "") -> bool:
    return _signed_in(user)


def can_execute(user: Caller, path: str) -> bool:
    return _signed_in(user)


def can_modify(user: Caller, path: str) -> bool:
    return _signed_in(user)


def can_view_secrets_metadata(user: Caller) -> bool:
    """Credential names and types (never their data)."""
    return _signed_in(user)


def require(allowed: bool, what: str) -> None:
    """Raise Denied unless ``allowed``; ``what`` names the refused action."""
    if not allowed:
        raise Denied(f"permission denied: {what}")


def viewable(user: Caller, rows: QuerySet[ModelT]) -> QuerySet[ModelT]:
    """``rows`` (anything with a ``path`` column) narrowed to what ``user``
    may view. Lists go through here so path rules can filter them later."""
    if not can_view(user):
        return rows.none()
    return rows
