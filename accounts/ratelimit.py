"""A fixed-window rate limit per client address, kept in Django's cache.

With the default local-memory cache each web process counts on its own, so
the effective limit is the setting times the number of processes; configure
a shared cache (CACHES) to make it exact.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse

WINDOW_S = 60


def client_address(request: HttpRequest) -> str:
    # REMOTE_ADDR only: a forwarded-for header is whatever the caller says.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(scope: str, request: HttpRequest) -> str:
    window = int(time.time() // WINDOW_S)
    return f"noetl-rate:{scope}:{client_address(request)}:{window}"


def _wait() -> int:
    return WINDOW_S - int(time.time()) % WINDOW_S


def over(scope: str, request: HttpRequest) -> int | None:
    """The seconds to wait if this client is over the limit (not counting)."""
    count = cache.get(_key(scope, request)) or 0
    return _wait() if count >= settings.NOETL_SIGNIN_RATE else None


def hit(scope: str, request: HttpRequest) -> int | None:
    """Count one attempt; the seconds to wait when over the limit, else None."""
    key = _key(scope, request)
    cache.add(key, 0, WINDOW_S + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, WINDOW_S + 1)
        count = 1
    return _wait() if count > settings.NOETL_SIGNIN_RATE else None


def too_many(retry_after: int) -> HttpResponse:
    response = JsonResponse(
        {"detail": f"too many attempts; try again in {retry_after} s"}, status=429
    )
    response["Retry-After"] = str(retry_after)
    return response


def limited(
    scope: str, methods: tuple[str, ...] = ("GET", "POST")
) -> Callable[..., Any]:
    """Refuse with 429 once a client passes NOETL_SIGNIN_RATE calls a minute
    (counting only ``methods``)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in methods:
                wait = hit(scope, request)
                if wait is not None:
                    return too_many(wait)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
