"""Liveness and readiness, open to anonymous callers."""

from __future__ import annotations

import socket
from typing import Any

from rest_framework.test import APIClient


def test_healthz_always_answers(anonymous: APIClient) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database(anonymous: APIClient, settings: Any) -> None:
    settings.NOETL_NATS_URL = ""
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


def test_readyz_checks_nats_when_configured(
    anonymous: APIClient, settings: Any
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        settings.NOETL_NATS_URL = f"nats://127.0.0.1:{server.getsockname()[1]}"
        response = anonymous.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["nats"] == "ok"


def test_readyz_says_which_check_failed(anonymous: APIClient, settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.NOETL_NATS_URL = f"nats://127.0.0.1:{closed_port}"
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["nats"].startswith("error: 127.0.0.1:")
