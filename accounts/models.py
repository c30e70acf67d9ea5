"""Per-user API tokens for the CLI and for services (DESIGN.md section 7).

A token reads ``noetl_<prefix>_<secret>``. The prefix is stored in clear so
a token can be found without scanning; of the whole token only its sha256
is stored, so a database dump reveals no usable token. The token itself is
shown once, when it is made.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token acting as its user; revoked tokens are kept for audit."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, help_text="sha256 of the whole token")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="empty: valid until revoked"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"noetl_{self.prefix}_… ({self.user}, {self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Action(models.TextChoices):
    VIEW = "view"
    EXECUTE = "execute"
    MODIFY = "modify"


class PathGrant(models.Model):
    """What a group may do with the playbooks under a catalog path pattern.

    ``pattern`` is a path or a glob: ``*`` matches any run of characters,
    slashes included, so ``finance/*`` covers the whole ``finance/`` tree and
    ``*`` the whole catalog. Grants only add: a user may do what any grant of
    any of their groups allows. Each flag implies nothing about the others.
    """

    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, related_name="path_grants"
    )
    pattern = models.CharField(max_length=500)
    can_view = models.BooleanField(default=True)
    can_execute = models.BooleanField(default=False)
    can_modify = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "pattern"], name="pathgrant_group_pattern"
            )
        ]
        ordering = ["group__name", "pattern"]

    def __str__(self) -> str:
        flags = [a for a in Action.values if getattr(self, f"can_{a}")]
        return f"{self.group} on {self.pattern}: {', '.join(flags) or 'nothing'}"


class AuditEntry(models.Model):
    """One security-relevant act: a credential read, a permission change, a
    token use, a cancel, a refused attempt. Kept apart from the event log,
    which belongs to runs; rows are only ever added."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(
        max_length=200, help_text="user:<name>, worker:<id>, token:<prefix> or system"
    )
    action = models.CharField(max_length=60, db_index=True)
    target = models.CharField(max_length=500, blank=True, default="")
    allowed = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        verdict = "" if self.allowed else " (refused)"
        when = f"{self.at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.actor} {self.action} {self.target}{verdict}"
