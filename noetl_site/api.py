"""Pieces every app's REST API shares: who may call it, how YAML bodies are
read, and how list pages are cut."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import exceptions, parsers, permissions

if TYPE_CHECKING:
    # Importing DRF's views here would loop: DRF loads this module from settings.
    from rest_framework.request import Request
    from rest_framework.views import APIView

MAX_PAGE = 500


class IsAuthenticatedUnlessDisabled(permissions.BasePermission):
    """An authenticated user, or anyone when NOETL_AUTH_DISABLED is set
    (local development only)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.NOETL_AUTH_DISABLED:
            return True
        return bool(request.user and request.user.is_authenticated)


def check(allowed: bool, what: str) -> None:
    """A refused permission check as a 403 naming what was refused."""
    if not allowed:
        raise exceptions.PermissionDenied(f"permission denied: {what}")


class TextParser(parsers.BaseParser):
    """A request body taken as text: a playbook posted as YAML."""

    media_type = "text/plain"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = stream.read() if stream is not None else b""
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"the body is not UTF-8 text: {exc}") from None


class YamlParser(TextParser):
    media_type = "application/yaml"


class XYamlParser(TextParser):
    media_type = "application/x-yaml"


def page_limit(request: Request, default: int = 50) -> int:
    """The ``limit`` query parameter, bounded to 1..MAX_PAGE."""
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise exceptions.ValidationError({"limit": "must be an integer"}) from None
    return max(1, min(limit, MAX_PAGE))


def int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: "must be an integer"}) from None
