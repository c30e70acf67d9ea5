"""Pieces every page of the browser UI shares: who may open a page, and
answers that a polling page can take as "nothing changed".

Each app's ``views.py`` holds its own pages; the permission checks they
make are those of ``noetl_site.access``, as for the API and the admin.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

from noetl_site import access

View = Callable[..., HttpResponse]


def page(view: View) -> View:
    """Anonymous visitors go to the login page first; signed-in users who
    may view nothing at all are refused."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not access.can_view(request.user):
            if request.user.is_authenticated:
                raise PermissionDenied("permission denied: view")
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


def require(allowed: bool, what: str) -> None:
    """Refuse the request (403) unless ``allowed``."""
    if not allowed:
        raise PermissionDenied(f"permission denied: {what}")


def json_with_etag(request: HttpRequest, data: Any) -> HttpResponse:
    """``data`` as JSON with an ETag of its content; a poll that sends the
    same ETag back gets an empty 304."""
    body = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))
    return body_with_etag(request, body, hashlib.sha1(body.encode()).hexdigest()[:20])


def body_with_etag(request: HttpRequest, body: str, tag: str) -> HttpResponse:
    etag = f'"{tag}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
