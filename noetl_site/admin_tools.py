"""Pieces the apps' admin modules share."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from noetl_site import access

# Lists count at most this many rows, so a long history never costs a full
# COUNT (DESIGN-NOTES R12); the last pages of a longer list are out of reach.
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        return self.object_list[:COUNT_CAP].count()  # type: ignore[no-any-return]


def adopt(target: models.Model, saved: models.Model) -> None:
    """Make the admin's in-memory object ``target`` the row a store function
    saved, so the admin's log entry and redirect point at that row."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class PathScoped:
    """An admin whose rows (with a ``path`` column) are narrowed to what the
    signed-in user may view, by the same rules as every other surface."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)  # type: ignore[misc]
        return access.viewable(request.user, rows)
