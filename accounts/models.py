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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"noetl_{self.prefix}_… ({self.user}, {self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
