"""Who may see, run and change what: the one place REST, GraphQL, the admin
and the UI ask (DESIGN.md section 7).

Playbooks and everything hanging off them (runs, events, results, schedules)
are guarded by their catalog path. A group is granted view, execute or
modify on a path pattern (``accounts.PathGrant``); a user may do what any
grant of any of their groups allows, and nothing else.

Two callers pass every check:

- a superuser, who administers the whole installation;
- anyone at all when NOETL_AUTH_DISABLED is set. That is the laptop and
  embedded mode, where the only user is the person at the keyboard; never
  set it on a shared server.

Credentials and the keychain are not under a path: reading their metadata
and writing them follow Django's model permissions (``view_credential``,
``change_credential``...), which groups receive in the admin as usual. Which
playbooks may *use* a credential is the credential's own scope, checked in
``credentials.store``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

Caller = AbstractBaseUser | AnonymousUser | None
ModelT = TypeVar("ModelT")
ACTIONS = ("view", "execute", "modify")
# Grants are read once per user object, so a request asking many questions
# costs one query; a new request gets a new user object.
_CACHE = "_noetl_path_grants"


class Denied(PermissionError):
    """The caller may not do this; the message says what was refused."""


def signed_in(user: Caller) -> bool:
    if settings.NOETL_AUTH_DISABLED:
        return True
    return bool(
        user is not None and user.is_authenticated and getattr(user, "is_active", False)
    )


def unrestricted(user: Caller) -> bool:
    """Whether every check passes for ``user`` (superuser, or auth disabled)."""
    if settings.NOETL_AUTH_DISABLED:
        return True
    return signed_in(user) and bool(getattr(user, "is_superuser", False))


@lru_cache(maxsize=1024)
def pattern_regex(pattern: str) -> str:
    """A path pattern as an anchored regular expression (``*`` spans ``/``)."""
    parts = [".*" if ch == "*" else re.escape(ch) for ch in pattern]
    return "^" + "".join(parts) + "$"


def matches(pattern: str, path: str) -> bool:
    return re.match(pattern_regex(pattern), path) is not None


def _grants(user: Caller) -> list[tuple[str, frozenset[str]]]:
    cached = getattr(user, _CACHE, None)
    if cached is not None:
        return cached
    from accounts.models import PathGrant

    rows = PathGrant.objects.filter(group__user=user).values_list(
        "pattern", "can_view", "can_execute", "can_modify"
    )
    grants = [
        (pattern, frozenset(a for a, on in zip(ACTIONS, flags, strict=True) if on))
        for pattern, *flags in rows
    ]
    if user is not None:
        setattr(user, _CACHE, grants)
    return grants


def allows(user: Caller, action: str, path: str) -> bool:
    """Whether ``user`` may ``action`` (view, execute, modify) ``path``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if unrestricted(user):
        return True
    if not signed_in(user):
        return False
    return any(
        action in granted and matches(pattern, path)
        for pattern, granted in _grants(user)
    )


def can_view(user: Caller, path: str = "") -> bool:
    """View ``path``. With no path: whether ``user`` may open lists at all;
    the lists themselves are narrowed by ``viewable``."""
    if not path:
        return signed_in(user)
    return allows(user, "view", path)


def can_execute(user: Caller, path: str) -> bool:
    return allows(user, "execute", path)


def can_modify(user: Caller, path: str) -> bool:
    return allows(user, "modify", path)


def _model_perm(user: Caller, codename: str) -> bool:
    if unrestricted(user):
        return True
    return signed_in(user) and bool(user.has_perm(codename))  # type: ignore[union-attr]


def can_view_secrets_metadata(user: Caller) -> bool:
    """Credential and keychain names, types and scopes (never their data)."""
    return _model_perm(user, "credentials.view_credential")


def can_manage_secrets(user: Caller) -> bool:
    """Create, replace and delete credentials and keychain entries."""
    return _model_perm(user, "credentials.change_credential")


def require(allowed: bool, what: str) -> None:
    """Raise Denied unless ``allowed``; ``what`` names the refused action."""
    if not allowed:
        raise Denied(f"permission denied: {what}")


def path_filter(user: Caller, action: str = "view", field: str = "path") -> Q | None:
    """A filter on ``field`` keeping the paths ``user`` may ``action``; None
    when nothing needs filtering out."""
    if unrestricted(user):
        return None
    if not signed_in(user):
        return Q(pk__in=[])
    patterns = [p for p, granted in _grants(user) if action in granted]
    if "*" in patterns:
        return None
    if not patterns:
        return Q(pk__in=[])
    regex = "|".join(pattern_regex(p) for p in patterns)
    return Q(**{f"{field}__regex": regex})


def viewable(
    user: Caller, rows: QuerySet[ModelT], field: str = "path"
) -> QuerySet[ModelT]:
    """``rows`` (anything with a path column, named by ``field``) narrowed to
    what ``user`` may view."""
    found = path_filter(user, "view", field)
    return rows if found is None else rows.filter(found)
