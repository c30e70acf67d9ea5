"""Registering playbooks and finding the version a run uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery

from catalog.dsl import PlaybookError, parse_playbook
from catalog.models import PlaybookVersion
from executions.engine.graph import Graph, build_graph
from workers.tools import supported_kinds

__all__ = [
    "PlaybookError",
    "PlaybookNotFound",
    "compiled",
    "latest_versions",
    "register",
    "resolve",
    "versions_of",
]


Narrow = Callable[[QuerySet[PlaybookVersion]], QuerySet[PlaybookVersion]]


class PlaybookNotFound(Exception):
    pass


def path_of(text: str) -> str:
    """The catalog path a playbook text declares (PlaybookError if invalid),
    so permission to write there is checked before anything is stored."""
    return parse_playbook(text)["path"]


def register(text: str, parsed: dict[str, Any] | None = None) -> tuple[PlaybookVersion, bool]:
    """Validate and store a playbook; identical content returns the existing version.

    Raises PlaybookError (with every issue, each naming its YAML path and
    line) before anything is written. ``parsed`` is what
    ``parse_playbook(text, known_kinds=supported_kinds())`` returned for this
    very text, when the caller validated it already.
    """
    if parsed is None:
        parsed = parse_playbook(text, known_kinds=supported_kinds())
    digest = hashlib.sha256(text.encode()).hexdigest()
    path = parsed["path"]
    with transaction.atomic():
        existing = PlaybookVersion.objects.filter(path=path, digest=digest).first()
        if existing is not None:
            return existing, False
        latest = PlaybookVersion.objects.filter(path=path).aggregate(v=Max("version"))["v"]
        version = PlaybookVersion.objects.create(
            path=path,
            version=(latest or 0) + 1,
            name=parsed["name"],
            content=text,
            parsed=parsed,
            digest=digest,
        )
    return version, True


def resolve(path: str, version: int | str | None = None) -> PlaybookVersion:
    queryset = PlaybookVersion.objects.filter(path=path)
    if version not in (None, "", "latest"):
        queryset = queryset.filter(version=int(version))
    found = queryset.order_by("-version").first()
    if found is None:
        suffix = f" version {version}" if version not in (None, "", "latest") else ""
        raise PlaybookNotFound(f"no playbook registered at path {path!r}{suffix}")
    return found


@lru_cache(maxsize=256)
def _compiled(version_id: int, digest: str) -> tuple[dict[str, Any], Graph]:
    parsed = PlaybookVersion.objects.values_list("parsed", flat=True).get(id=version_id)
    return parsed, build_graph(parsed)


def compiled(version: PlaybookVersion | int, digest: str = "") -> tuple[dict[str, Any], Graph]:
    """The normalised playbook and its graph, cached per version (never re-parsed)."""
    if isinstance(version, PlaybookVersion):
        return _compiled(version.id, version.digest)
    return _compiled(version, digest)


# -- reading the catalog --------------------------------------------------------


def latest_versions(path_prefix: str = "", after: str = "",
                    limit: int = 50, narrow: Narrow | None = None) -> list[PlaybookVersion]:
    """The newest version of each path, in path order (keyset on path);
    ``narrow`` keeps the rows a caller may see (``access.viewable``)."""
    newest = (PlaybookVersion.objects.filter(path=OuterRef("path"))
              .order_by("-version").values("version")[:1])
    rows = PlaybookVersion.objects.filter(version=Subquery(newest))
    if narrow is not None:
        rows = narrow(rows)
    if path_prefix:
        rows = rows.filter(path__startswith=path_prefix)
    if after:
        rows = rows.filter(path__gt=after)
    return list(rows.order_by("path")[:limit])


def versions_of(path: str) -> list[PlaybookVersion]:
    return list(PlaybookVersion.objects.filter(path=path).order_by("-version"))
