"""Giving test users permissions the way an operator would: a group with a
path grant, and Django's credential permissions."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission, User

from accounts.models import PathGrant


def grant(
    user: User,
    pattern: str = "*",
    *,
    view: bool = True,
    execute: bool = True,
    modify: bool = True,
    group: str = "",
) -> Group:
    """Put ``user`` in a group granted ``pattern`` with the given actions."""
    team, _ = Group.objects.get_or_create(name=group or f"{user.username}-team")
    PathGrant.objects.update_or_create(
        group=team,
        pattern=pattern,
        defaults={"can_view": view, "can_execute": execute, "can_modify": modify},
    )
    user.groups.add(team)
    return team


def grant_secrets(user: User, *, manage: bool = True) -> Group:
    """Let ``user`` read credential metadata and, with ``manage``, write."""
    team, _ = Group.objects.get_or_create(name=f"{user.username}-secrets")
    names = ["view_credential"] + (["change_credential"] if manage else [])
    team.permissions.add(*Permission.objects.filter(codename__in=names))
    user.groups.add(team)
    return team


def grant_everything(user: User) -> User:
    """Every path and every credential: the persona most tests use."""
    grant(user)
    grant_secrets(user)
    return user
