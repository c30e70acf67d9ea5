"""Break-in attempts, made as an outsider would, and refused: forged
tokens, path traversal in catalog paths, GraphQL introspection and abuse,
oversized bodies, SQL in filter parameters, password guessing, cross-site
requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from catalog import services as catalog
from executions.models import Execution
from tests.api.conftest import playbook_yaml
from tests.security.conftest import PATH, Persona, World


def test_a_forged_api_token_is_refused(right: Persona, world: World) -> None:
    prefix = right.token.split("_")[1]
    for forged in (
        f"noetl_{prefix}_{'A' * 43}",  # a real prefix, a guessed secret
        right.token + "x",
        right.token.upper(),
        f"noetl_{prefix}",
    ):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
        assert client.get("/api/executions/").status_code == 401, forged


@pytest.mark.parametrize(
    "path",
    [
        "sec/allowed/../../other/x",
        "sec/./allowed/x",
        "/sec/allowed/x",
        "sec//allowed/x",
        "sec/allowed/x/",
        "sec\\..\\other\\x",
        "sec/allowed/*",
        "sec/allowed/x\x00",
    ],
)
def test_a_playbook_path_that_could_escape_its_grant_cannot_be_registered(
    right: Persona, path: str
) -> None:
    text = playbook_yaml("placeholder").replace(
        "path: placeholder", f"path: {json.dumps(path)}"
    )
    response = right.client.post("/api/catalog/", text, content_type="application/yaml")
    assert response.status_code == 400, response.content
    messages = " ".join(issue["message"] for issue in response.json()["issues"])
    assert "catalog path" in messages


def test_traversal_in_a_catalog_url_reaches_no_other_playbook(
    right: Persona, world: World
) -> None:
    catalog.register(playbook_yaml("other/secret"))
    for url in (
        "/api/catalog/sec/allowed/../../other/secret/",
        "/api/catalog/sec/allowed/%2e%2e/%2e%2e/other/secret/",
        "/api/catalog/sec/allowed/..%2f..%2fother/secret/",
        "/api/catalog/sec/allowed/../../other/secret/versions/",
    ):
        response = right.client.get(url)
        assert response.status_code in (403, 404), (url, response.content)
        assert "apiVersion" not in response.content.decode()


def test_graphql_introspection_is_refused_outside_debug(
    right: Persona, settings: Any
) -> None:
    query = {"query": "{ __schema { types { name } } }"}
    refused = right.client.post("/graphql", query, format="json").json()
    assert "introspection" in refused["errors"][0]["message"].lower()
    assert refused.get("data") is None
    typename = right.client.post(
        "/graphql", {"query": '{ __type(name: "Query") { name } }'}, format="json"
    ).json()
    assert "errors" in typename

    settings.DEBUG = True
    allowed = right.client.post("/graphql", query, format="json").json()
    assert "errors" not in allowed and allowed["data"]["__schema"]["types"]


def test_graphql_depth_alias_and_size_abuse_is_refused(right: Persona) -> None:
    names = "abcdefghijkl"
    deep = "".join(f"{{ {n} " for n in names) + "}" * len(names)
    body = right.client.post("/graphql", {"query": deep}, format="json").json()
    assert any("depth" in e["message"] for e in body["errors"]), body

    aliases = " ".join(f"a{i}: pools {{ name }}" for i in range(40))
    body = right.client.post("/graphql", {"query": f"{{ {aliases} }}"}, format="json")
    assert any("aliases" in e["message"] for e in body.json()["errors"])

    tokens = "{ " + " ".join("pools { name }" for _ in range(800)) + " }"
    body = right.client.post("/graphql", {"query": tokens}, format="json")
    assert any("token" in e["message"].lower() for e in body.json()["errors"])


def test_an_oversized_body_is_refused(right: Persona, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    huge = playbook_yaml("sec/allowed/huge") + "#" + "x" * (2 * 1024 * 1024)
    response = right.client.post("/api/catalog/", huge, content_type="application/yaml")
    assert response.status_code in (400, 413)
    graphql = right.client.post(
        "/graphql",
        {"query": "{ pools { name } }", "pad": "x" * (2 * 1024 * 1024)},
        format="json",
    )
    assert graphql.status_code in (400, 413)
    assert not catalog.versions_of("sec/allowed/huge")


SQL = ["' OR '1'='1", "x'; DROP TABLE executions_execution; --", "%' OR 1=1 --", "\\"]


@pytest.mark.parametrize("evil", SQL)
def test_sql_in_filter_parameters_is_only_ever_data(
    right: Persona, outsider: Persona, world: World, evil: str
) -> None:
    for params in (
        {"path": evil},
        {"parent": evil},
        {"status": evil},
        {"since": evil},
        {"limit": evil},
        {"cursor": evil},
    ):
        response = right.client.get("/api/executions/", params)
        assert response.status_code in (200, 400), (params, response.content)
        if response.status_code == 200 and "cursor" not in params:
            assert response.json()["results"] == [], params
    for url, params in (
        ("/api/catalog/", {"path_prefix": evil}),
        ("/api/catalog/", {"after": evil, "limit": "5"}),
        ("/api/schedules/", {"name": evil}),
        ("/api/schedules/", {"path": evil}),
        ("/api/keychain/", {"scope": evil}),
    ):
        response = right.client.get(url, params)
        assert response.status_code in (200, 400), (url, params)
    # The outsider's grant filter is not widened by what they send.
    listed = outsider.client.get("/api/executions/", {"path": evil}).json()
    assert listed["results"] == []
    body = outsider.client.post(
        "/graphql",
        {
            "query": "query ($p: String!) { executions(path: $p) { results { id } } }",
            "variables": {"p": evil},
        },
        format="json",
    ).json()
    assert body["data"]["executions"]["results"] == []
    assert Execution.objects.filter(id=world.run_id).exists()


@pytest.mark.django_db
def test_password_guessing_at_sign_in_is_rate_limited(settings: Any) -> None:
    cache.clear()
    settings.NOETL_SIGNIN_RATE = 5
    User.objects.create_user("victim", password="right-password")
    client = Client()
    codes = [
        client.post(
            "/api/auth/login/", {"username": "victim", "password": f"guess{i}"}
        ).status_code
        for i in range(7)
    ]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    stopped = client.post(
        "/api/auth/login/", {"username": "victim", "password": "right-password"}
    )
    assert stopped.status_code == 429 and "Retry-After" in stopped
    cache.clear()


@pytest.mark.django_db
def test_token_creation_is_rate_limited(right: Persona, settings: Any) -> None:
    cache.clear()
    settings.NOETL_SIGNIN_RATE = 2
    codes = [
        right.client.post("/api/auth/tokens/", {"name": "n"}, format="json").status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429]
    cache.clear()


def test_a_cross_site_post_with_the_session_is_refused(
    right: Persona, world: World
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(right.user)  # type: ignore[arg-type]
    assert (
        browser.post(
            "/api/executions/", {"path": PATH}, content_type="application/json"
        ).status_code
        == 403
    )
    assert (
        browser.post(
            "/graphql",
            {
                "query": 'mutation { pause_schedule(id: "%s") { id } }'
                % world.schedule_id
            },
            content_type="application/json",
        ).status_code
        == 403
    )
    assert browser.post("/api/auth/logout/").status_code == 403
    assert (
        browser.post(
            "/api/auth/login/", {"username": "right", "password": "pw"}
        ).status_code
        == 403
    )
    # With the token from the page, the same session may post.
    page = browser.get("/api/auth/login/")
    token = page.cookies["csrftoken"].value
    signed_in = browser.post(
        "/api/auth/login/",
        {"username": "right", "password": "pw"},
        HTTP_X_CSRFTOKEN=token,
    )
    assert signed_in.status_code == 302


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_and_hidden_from_scripts() -> None:
    User.objects.create_user("cookie", password="pw")
    client = Client()
    response = client.post("/api/auth/login/", {"username": "cookie", "password": "pw"})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert client.get("/api/auth/login/").cookies["csrftoken"]["secure"]
