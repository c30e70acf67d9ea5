"""OAuth sign-in end to end against a local Auth0-style provider over
HTTPS with its own CA: the browser is sent to /authorize, comes back with
a code, the server trades it for an RS256 id token, checks it against the
provider's JWKS, creates the user and opens a session."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from social_django.models import UserSocialAuth

from tests.security.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdP, _key

SUBJECT = "auth0|5f7c8ec7c33c6c004bbafe82"


@pytest.fixture
def idp(tmp_path: Path, settings: Any) -> Iterator[FakeIdP]:
    provider = FakeIdP(
        {
            "sub": SUBJECT,
            "nickname": "ada",
            "email": "ada@example.com",
            "name": "Ada Lovelace",
        }
    )
    settings.SOCIAL_AUTH_AUTH0_DOMAIN = provider.start(tmp_path)
    settings.SOCIAL_AUTH_AUTH0_KEY = CLIENT_ID
    settings.SOCIAL_AUTH_AUTH0_SECRET = CLIENT_SECRET
    settings.SOCIAL_AUTH_AUTH0_VERIFY_SSL = str(provider.ca)
    cache.clear()  # social-auth caches the provider's keys
    yield provider
    provider.stop()
    cache.clear()


def _sign_in(client: Client, idp: FakeIdP) -> Any:
    """Play the browser: start, visit the provider, come back with the code."""
    start = client.post("/api/auth/login/auth0/")
    assert start.status_code == 302, start.content
    authorize = start["Location"]
    assert authorize.startswith(f"https://{idp.domain}/authorize?")

    # The provider is reached over TLS that only the test CA vouches for.
    with pytest.raises(httpx.ConnectError):
        httpx.get(authorize)
    trust = ssl.create_default_context(cafile=str(idp.ca))
    back = httpx.get(authorize, verify=trust, follow_redirects=False)
    assert back.status_code == 302
    callback = httpx.URL(back.headers["Location"])
    assert callback.path == "/api/auth/complete/auth0/"
    return client.get(callback.path, dict(callback.params))


@pytest.mark.django_db
def test_signing_in_with_auth0_creates_the_user_and_a_session(idp: FakeIdP) -> None:
    client = Client()
    assert client.get("/api/auth/session/").status_code == 401

    done = _sign_in(client, idp)
    assert done.status_code == 302, done.content

    session = client.get("/api/auth/session/")
    assert session.status_code == 200
    data = session.json()
    assert data["user"]["username"] == "ada"
    assert data["user"]["email"] == "ada@example.com"
    assert data["permissions"] == {
        "all_paths": False,
        "grants": [],
        "credentials": {"view": False, "manage": False},
    }
    link = UserSocialAuth.objects.get(provider="auth0")
    assert link.uid == SUBJECT and link.user.username == "ada"
    # The server authenticated itself to the provider with the client secret.
    assert idp.client_secrets == [CLIENT_SECRET]

    # Signing in again finds the same user, by subject.
    client.post("/api/auth/logout/")
    assert client.get("/api/auth/session/").status_code == 401
    _sign_in(client, idp)
    assert client.get("/api/auth/session/").json()["user"]["username"] == "ada"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_an_id_token_the_provider_keys_do_not_vouch_for_signs_nobody_in(
    idp: FakeIdP,
) -> None:
    idp.forge_with = _key()
    client = Client()
    done = _sign_in(client, idp)
    # Refused: sent back to the sign-in page, with no user and no session.
    assert done.status_code == 302 and done["Location"].startswith("/api/auth/login/")
    assert not User.objects.exists()
    assert client.get("/api/auth/session/").status_code == 401


@pytest.mark.django_db
def test_a_callback_with_a_forged_state_or_code_signs_nobody_in(idp: FakeIdP) -> None:
    client = Client()
    start = client.post("/api/auth/login/auth0/")
    assert start.status_code == 302
    for params in (
        {"code": "made-up", "state": "made-up"},
        {"code": "made-up"},
        {"error": "access_denied", "state": "made-up"},
    ):
        done = client.get("/api/auth/complete/auth0/", params)
        assert done.status_code == 302 and done["Location"].startswith(
            "/api/auth/login/"
        ), params
        assert client.get("/api/auth/session/").status_code == 401
    assert not User.objects.exists()


@pytest.mark.django_db
def test_the_sign_in_page_offers_auth0_only_when_configured(settings: Any) -> None:
    settings.SOCIAL_AUTH_AUTH0_DOMAIN = ""
    assert b"Sign in with Auth0" not in Client().get("/api/auth/login/").content
    settings.SOCIAL_AUTH_AUTH0_DOMAIN = "tenant.example.com"
    page = Client().get("/api/auth/login/").content.decode()
    assert "Sign in with Auth0" in page and 'action="/api/auth/login/auth0/"' in page
