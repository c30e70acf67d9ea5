"""Who may call the API: a user's token or session; nobody anonymous."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import ApiToken

ENDPOINTS = [
    "/api/catalog/",
    "/api/executions/",
    "/api/credentials/",
    "/api/keychain/",
    "/api/schema/",
    "/api/docs/",
]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_it_refuses_anonymous_callers(anonymous: APIClient, url: str) -> None:
    response = anonymous.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_it_refuses_anonymous_writes(anonymous: APIClient) -> None:
    assert (
        anonymous.post("/api/executions/", {"path": "x"}, format="json").status_code
        == 401
    )


def test_it_accepts_a_token_and_records_its_use(api: APIClient, owner: User) -> None:
    assert api.get("/api/executions/").status_code == 200
    assert ApiToken.objects.get(user=owner).last_used_at is not None


def test_it_refuses_unknown_malformed_and_revoked_tokens(
    token: str, owner: User
) -> None:
    client = APIClient()
    for bad in ("noetl_abc_def", "nonsense", token[:-1] + "x"):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {bad}")
        assert client.get("/api/executions/").status_code == 401

    tokens.revoke(ApiToken.objects.get(user=owner))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/executions/")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_it_refuses_the_token_of_a_deactivated_user(token: str, owner: User) -> None:
    owner.is_active = False
    owner.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/executions/").status_code == 401


def test_it_accepts_a_browser_session(owner: User) -> None:
    client = APIClient()
    assert client.login(username="owner", password="pw")
    assert client.get("/api/catalog/").status_code == 200


def test_a_session_write_needs_the_csrf_token(owner: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="owner", password="pw")
    response = client.post("/api/executions/", {"path": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_it_lets_anyone_in_when_auth_is_disabled(
    anonymous: APIClient, settings
) -> None:
    settings.NOETL_AUTH_DISABLED = True
    assert anonymous.get("/api/executions/").status_code == 200


def test_the_worker_protocol_does_not_take_user_tokens(api: APIClient) -> None:
    response = api.post("/api/worker/v1/heartbeat", {"held": []}, format="json")
    assert response.status_code == 401


def test_createtoken_prints_a_working_token_once(db: None) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "createtoken", "ci", "--create", "--name", "pipeline", stdout=out, stderr=err
    )
    token = out.getvalue().strip().splitlines()[-1]
    row = ApiToken.objects.get(user__username="ci")
    assert row.name == "pipeline" and token.startswith(f"noetl_{row.prefix}_")
    assert token not in row.token_hash and "created user ci" in err.getvalue()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/executions/").status_code == 200


def test_createtoken_needs_create_for_a_new_user(db: None) -> None:
    with pytest.raises(CommandError, match="--create"):
        call_command("createtoken", "nobody", stdout=StringIO(), stderr=StringIO())
