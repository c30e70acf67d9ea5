"""Minting, checking and revoking API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from accounts import audit
from accounts.models import ApiToken

# last_used_at is refreshed at most this often, so a busy client does not
# turn every authenticated read into a write.
TOUCH_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint(
    user: User, name: str = "", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``, valid until ``expires_at`` (None: until
    revoked). Returns the row and the token, which is never stored and
    cannot be shown again."""
    prefix = secrets.token_hex(6)
    token = f"noetl_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=_digest(token),
        expires_at=expires_at,
    )
    audit.record(
        "token.created",
        prefix,
        actor=audit.actor_of(user),
        name=name,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return row, token


def check(token: str) -> ApiToken | None:
    """The active token row matching ``token``, or None."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "noetl":
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if row is None or not hmac.compare_digest(row.token_hash, _digest(token)):
        return None
    if not row.user.is_active:
        return None
    now = timezone.now()
    if row.expires_at is not None and row.expires_at <= now:
        return None

    # Use is recorded (last_used_at and the audit log) once a minute at most.
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(id=row.id).update(last_used_at=now)
        row.last_used_at = now
        audit.record("token.used", row.prefix, actor=audit.actor_of(row.user))
    return row


def revoke(row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        audit.record("token.revoked", row.prefix, user=row.user.get_username())
