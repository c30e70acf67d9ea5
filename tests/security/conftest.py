"""Personas and a small world for the security tests (real PostgreSQL).

- ``right``: signed in, granted view, execute and modify on ``sec/*`` and
  the credential permissions;
- ``outsider``: signed in, granted everything on ``other/*`` only and no
  credential permission;
- ``anonymous``: nobody.

The world holds one playbook under ``sec/``, a run of it (no worker, so it
stays running), a transient variable, a schedule, a credential scoped to
``sec/*`` and a keychain entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts import tokens
from credentials.store import save_credential, save_keychain_entry
from executions import control
from schedules import duty
from schedules.models import Schedule
from tests.api.conftest import KEY, playbook_yaml
from tests.grants import grant, grant_secrets

PATH = "sec/allowed/hello"
PASSWORD = "pa55-W0rd-never-seen-7f3a"


@pytest.fixture(autouse=True)
def _encryption_key(settings: Any) -> None:
    from credentials import crypto

    settings.NOETL_ENCRYPTION_KEY = KEY
    crypto.current_key.cache_clear()
    yield
    crypto.current_key.cache_clear()


@dataclass
class Persona:
    user: User | None
    token: str
    client: APIClient


def _persona(user: User | None) -> Persona:
    client = APIClient()
    token = ""
    if user is not None:
        token = tokens.mint(user, "tests")[1]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        # The browser pages go by the session; the API takes the token first.
        client.force_login(user)
    return Persona(user, token, client)


@pytest.fixture
def right(db: None) -> Persona:
    user = User.objects.create_user("right", password="pw")
    grant(user, "sec/*")
    grant_secrets(user)
    return _persona(user)


@pytest.fixture
def outsider(db: None) -> Persona:
    user = User.objects.create_user("outsider", password="pw")
    grant(user, "other/*")
    return _persona(user)


@pytest.fixture
def superuser(db: None) -> Persona:
    return _persona(User.objects.create_superuser("root", password="pw"))


@pytest.fixture
def anonymous(db: None) -> Persona:
    return _persona(None)


@dataclass
class World:
    run_id: str
    schedule_id: int
    keychain_id: int
    token_prefix: str


@pytest.fixture
def world(right: Persona) -> World:
    from catalog import services as catalog

    catalog.register(playbook_yaml(PATH))
    run, _ = control.start(PATH, None, {}, user=right.user)
    control.set_variable(run.id, "flag", 1, user=right.user)
    schedule = Schedule(name="sec-hourly", path=PATH, interval_s=3600)
    schedule.save_checked(duty.db_now())
    save_credential(
        "sec_pg", "postgres", {"host": "db", "password": PASSWORD}, "", ["sec/*"]
    )
    entry = save_keychain_entry("sec_token", {"access_token": PASSWORD})
    row, _ = tokens.mint(right.user, "revocable")  # type: ignore[arg-type]
    return World(run.id, schedule.id, entry.id, row.prefix)
