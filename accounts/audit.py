"""The audit log: who read which credential, changed which permission, used
which token, cancelled which run, and what was refused.

``record`` adds one row. The acting person is taken from ``actor`` when the
caller knows it, else from the request being served (set by
``AuditActorMiddleware``), else ``system``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from accounts.models import AuditEntry

log = logging.getLogger("noetl.accounts.audit")
_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "noetl_audit_actor", default="system"
)


def actor_of(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous"
    return f"user:{user.get_username()}"


def record(
    action: str,
    target: str = "",
    *,
    actor: str = "",
    allowed: bool = True,
    **detail: Any,
) -> AuditEntry:
    entry = AuditEntry.objects.create(
        actor=(actor or _current.get())[:200],
        action=action,
        target=target[:500],
        allowed=allowed,
        detail=detail,
    )
    if not allowed:
        log.warning("refused: %s %s %s %s", entry.actor, action, target, detail)
    return entry


class AuditActorMiddleware:
    """Names the signed-in user as the actor of whatever this request records
    (admin edits reach the audit log through model signals, which do not see
    the request)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        token = _current.set(actor_of(user) if user is not None else "anonymous")
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)


def set_actor(actor: str) -> contextvars.Token[str]:
    """Name the actor for the rest of this context (tokens, workers)."""
    return _current.set(actor)
