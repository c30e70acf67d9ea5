"""Request-wide safeguards that every view gets, whichever framework serves
it (DRF parses bodies from the stream, past Django's own size check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def own_body_limit(view: ViewT) -> ViewT:
    """Mark a view that checks its body's size against a limit of its own
    (a worker's blob upload: large results are what blobs are for)."""
    view.own_body_limit = True  # type: ignore[attr-defined]
    return view


class BodyLimitMiddleware:
    """Refuse (413) a request whose declared body is larger than
    DATA_UPLOAD_MAX_MEMORY_SIZE, before its view reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., Any],
                     args: Any, kwargs: Any) -> HttpResponse | None:
        if getattr(view, "own_body_limit", False):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(
                {"detail": "Content-Length is not a number"}, status=400
            )
        if limit is not None and length > limit:
            return JsonResponse(
                {
                    "detail": f"the request body is {length} bytes; at most {limit} "
                    "are accepted (NOETL_MAX_BODY_BYTES)"
                },
                status=413,
            )
        return None
