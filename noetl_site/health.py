"""``/healthz`` (the process answers) and ``/readyz`` (it can do work: the
database answers and, in distributed mode, NATS accepts a connection).
Both are open to anonymous callers, for load balancers and orchestrators."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

TIMEOUT_S = 2.0


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database()}
    if settings.NOETL_NATS_URL:
        checks["nats"] = _nats(settings.NOETL_NATS_URL)
    ready = all(result == "ok" for result in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"error: {exc}".strip()
    return "ok"


def _nats(urls: str) -> str:
    """A TCP connect to the first server of the URL list that accepts one.

    A full NATS handshake would need an event loop in a sync view; a server
    that accepts TCP on its client port is what readiness needs to know."""
    errors = []
    for url in urls.split(","):
        parts = urlsplit(url.strip() if "://" in url else f"nats://{url.strip()}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT_S):
                return "ok"
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    return "error: " + "; ".join(errors)
