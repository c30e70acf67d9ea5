"""Request-wide safeguards that every view gets, whichever framework serves
it (DRF parses bodies from the stream, past Django's own size check)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class BodyLimitMiddleware:
    """Refuse (413) a request whose declared body is larger than
    DATA_UPLOAD_MAX_MEMORY_SIZE, before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
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
        return self.get_response(request)
