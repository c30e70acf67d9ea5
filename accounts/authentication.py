"""DRF authentication by ``Authorization: Bearer <api token>``."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import audit, tokens


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Accepts a user's API token. A request without a bearer header is left
    to the next authentication class (the browser session)."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode(
            errors="replace"
        )
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword:
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("the Bearer header carries no token")
        row = tokens.check(token)
        if row is None:
            raise exceptions.AuthenticationFailed(
                "invalid, expired or revoked API token"
            )
        # What this request records in the audit log is done by the token's user.
        audit.set_actor(audit.actor_of(row.user))
        return row.user, row

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request that needs a login.
        return self.keyword


# Describe this scheme in the OpenAPI document. Imported here, where the web
# process loads its authentication classes, rather than at start-up: the
# embedded CLI never needs drf-spectacular.
from accounts import schema  # noqa: E402, F401
