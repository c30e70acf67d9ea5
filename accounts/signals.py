"""Permission changes go to the audit log whichever way they are made (the
admin, a management command, the shell)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from accounts import audit
from accounts.models import PathGrant


def _grant_detail(grant: PathGrant) -> dict[str, Any]:
    return {
        "group": grant.group.name,
        "pattern": grant.pattern,
        "view": grant.can_view,
        "execute": grant.can_execute,
        "modify": grant.can_modify,
    }


@receiver(post_save, sender=PathGrant)
def grant_saved(sender: Any, instance: PathGrant, created: bool, **_: Any) -> None:
    action = "grant.created" if created else "grant.changed"
    audit.record(action, instance.pattern, **_grant_detail(instance))


@receiver(post_delete, sender=PathGrant)
def grant_deleted(sender: Any, instance: PathGrant, **_: Any) -> None:
    audit.record("grant.deleted", instance.pattern, **_grant_detail(instance))


@receiver(m2m_changed, sender=User.groups.through)
def membership_changed(
    sender: Any, instance: Any, action: str, pk_set: set[int] | None, **_: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if isinstance(instance, User):
        users = [instance.username]
        groups = list(
            Group.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True)
        )
    else:
        users = list(
            User.objects.filter(pk__in=pk_set or ()).values_list("username", flat=True)
        )
        groups = [instance.name]
    audit.record(
        f"membership.{action.removeprefix('post_')}",
        ",".join(groups),
        users=users,
        groups=groups,
    )


@receiver(m2m_changed, sender=Group.permissions.through)
def group_permissions_changed(
    sender: Any, instance: Any, action: str, pk_set: set[int] | None, **_: Any
) -> None:
    if action in ("post_add", "post_remove", "post_clear") and isinstance(
        instance, Group
    ):
        audit.record(
            f"group_permissions.{action.removeprefix('post_')}",
            instance.name,
            permission_ids=sorted(pk_set or ()),
        )


@receiver(pre_save, sender=User)
def superuser_flag(sender: Any, instance: User, **_: Any) -> None:
    # A superuser passes every check, so the flag changing is a permission change.
    before = (
        User.objects.filter(pk=instance.pk)
        .values_list("is_superuser", flat=True)
        .first()
        if instance.pk
        else False
    )
    if bool(before) != instance.is_superuser:
        action = "superuser.granted" if instance.is_superuser else "superuser.revoked"
        audit.record(action, instance.username)
