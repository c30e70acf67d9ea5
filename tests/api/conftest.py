"""Personas and helpers for the REST API tests (real PostgreSQL).

Runs start without any worker: they stay running with their first commands
queued, which is all these tests need."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts import tokens
from tests.grants import grant_everything

KEY = "q2k0nGfbC5Fh0rkQq2m9sY0Dbd4Qc8l3a5oQGxY1rj4="


def playbook_yaml(path: str, *, code: str = "result = {'n': n}", n: int = 1) -> str:
    return (
        "apiVersion: noetl.io/v2\n"
        "kind: Playbook\n"
        f"metadata: {{name: {path.rsplit('/', 1)[-1]}, path: {path}}}\n"
        f"workload: {{n: {n}}}\n"
        "workflow:\n"
        "  - step: start\n"
        "    tool:\n"
        "      kind: python\n"
        "      input: {n: '{{ n }}'}\n"
        f'      code: "{code}"\n'
    )


@pytest.fixture(autouse=True)
def _encryption_key(settings: Any) -> None:
    from credentials import crypto

    settings.NOETL_ENCRYPTION_KEY = KEY
    crypto.current_key.cache_clear()
    yield
    crypto.current_key.cache_clear()


@pytest.fixture
def owner(db: None) -> User:
    return grant_everything(User.objects.create_user("owner", password="pw"))


@pytest.fixture
def token(owner: User) -> str:
    return tokens.mint(owner, "tests")[1]


@pytest.fixture
def api(token: str) -> APIClient:
    """A client authenticated by the owner's API token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anonymous(db: None) -> APIClient:
    return APIClient()


@pytest.fixture
def register(api: APIClient) -> Callable[..., dict[str, Any]]:
    def register(path: str = "tests/api/hello", **options: Any) -> dict[str, Any]:
        response = api.post(
            "/api/catalog/",
            playbook_yaml(path, **options),
            content_type="application/yaml",
        )
        assert response.status_code in (200, 201), response.content
        return response.json()

    return register


@pytest.fixture
def start(
    api: APIClient, register: Callable[..., dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    def start(
        path: str = "tests/api/hello",
        payload: dict[str, Any] | None = None,
        **headers: str,
    ) -> dict[str, Any]:
        register(path)
        response = api.post(
            "/api/executions/",
            {"path": path, "payload": payload or {}},
            format="json",
            **headers,
        )
        assert response.status_code == 201, response.content
        return response.json()

    return start
