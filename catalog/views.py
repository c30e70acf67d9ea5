"""The catalog pages of the browser UI: playbooks, a playbook's versions
with its YAML, the difference between two versions, and a run form
prefilled from the playbook's workload."""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog import services as catalog
from catalog.models import PlaybookVersion
from executions import control
from executions.views import parse_payload
from noetl_site import access
from noetl_site.ui import page, require

PLAYBOOKS_PAGE = 50


@page
def playbook_list(request: HttpRequest) -> HttpResponse:
    prefix = request.GET.get("path_prefix", "").strip()
    # Narrowed to what the user may view before the page is cut, and the
    # large columns left unread.
    playbooks = catalog.latest_versions(
        prefix,
        request.GET.get("after", ""),
        PLAYBOOKS_PAGE + 1,
        narrow=lambda rows: access.viewable(request.user, rows).defer(
            "content", "parsed"
        ),
    )
    more = len(playbooks) > PLAYBOOKS_PAGE
    playbooks = playbooks[:PLAYBOOKS_PAGE]
    return render(
        request,
        "catalog/list.html",
        {
            "playbooks": playbooks,
            "path_prefix": prefix,
            "next_after": playbooks[-1].path if more else "",
        },
    )


def _version(request: HttpRequest, path: str, raw: Any) -> PlaybookVersion:
    require(access.can_view(request.user, path), f"view {path}")
    try:
        return catalog.resolve(path, raw if str(raw or "").isdigit() else None)
    except catalog.PlaybookNotFound as exc:
        raise Http404(str(exc)) from None


@page
def playbook_detail(request: HttpRequest, path: str) -> HttpResponse:
    version = _version(request, path, request.GET.get("version"))
    return _detail(request, version, _pretty(version.parsed.get("workload") or {}), "")


def _detail(
    request: HttpRequest, version: PlaybookVersion, payload: str, error: str
) -> HttpResponse:
    versions = list(
        PlaybookVersion.objects.filter(path=version.path)
        .order_by("-version")
        .values("id", "version", "created_at", "digest")
    )
    return render(
        request,
        "catalog/playbook.html",
        {
            "version": version,
            "versions": versions,
            "payload": payload,
            "error": error,
            "may_execute": access.can_execute(request.user, version.path),
            "may_modify": access.can_modify(request.user, version.path),
            "admin_url": reverse(
                "admin:catalog_playbookversion_change", args=[version.id]
            ),
        },
        status=400 if error else 200,
    )


@page
def playbook_diff(request: HttpRequest, path: str) -> HttpResponse:
    """Two versions side by side as a unified diff (``a`` older, ``b`` newer;
    by default the latest and the one before it)."""
    newer = _version(request, path, request.GET.get("b"))
    default_a = newer.version - 1 if newer.version > 1 else newer.version
    older = _version(request, path, request.GET.get("a") or default_a)
    lines = difflib.unified_diff(
        older.content.splitlines(),
        newer.content.splitlines(),
        f"v{older.version}",
        f"v{newer.version}",
        lineterm="",
        n=3,
    )
    return render(
        request,
        "catalog/diff.html",
        {
            "path": newer.path,
            "older": older,
            "newer": newer,
            "lines": [(_line_kind(line), line) for line in lines],
            "versions": PlaybookVersion.objects.filter(path=newer.path)
            .order_by("-version")
            .values_list("version", flat=True),
        },
    )


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "same")


@require_POST
@page
def playbook_run(request: HttpRequest, path: str) -> HttpResponse:
    """Start a run of the version shown, with the payload of the form."""
    version = _version(request, path, request.POST.get("version"))
    require(access.can_execute(request.user, version.path), f"run {version.path}")
    text = request.POST.get("payload", "")
    try:
        payload = parse_payload(text)
    except ValueError as exc:
        return _detail(request, version, text, str(exc))

    # Values left as the workload has them are the playbook's own defaults:
    # only what the user changed is the run's input (and shows as such).
    defaults = version.parsed.get("workload") or {}
    payload = {
        key: value
        for key, value in payload.items()
        if key not in defaults or defaults[key] != value
    }
    execution, _ = control.start(
        version.path,
        version.version,
        payload,
        user=request.user,
        trigger={"kind": "ui"},
    )
    messages.success(request, f"Started {version.path} v{version.version}.")
    return redirect("executions:detail", execution_id=execution.id)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
