"""A logged-in superuser for the admin tests (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.api.conftest import KEY


@pytest.fixture(autouse=True)
def _encryption_key(settings: Any) -> Iterator[None]:
    from credentials import crypto

    settings.NOETL_ENCRYPTION_KEY = KEY
    crypto.current_key.cache_clear()
    yield
    crypto.current_key.cache_clear()


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_superuser("operator", "op@example.com", "pw")


@pytest.fixture
def browser(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client
