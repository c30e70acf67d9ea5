"""The OpenAPI document and the docs page that renders it offline."""

from __future__ import annotations

from django.contrib.auth.models import User
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient


def test_the_schema_is_valid_openapi_json(api: APIClient) -> None:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/catalog/",
        "/api/executions/",
        "/api/executions/{execution_id}/cancel/",
        "/api/credentials/",
        "/api/keychain/",
    ):
        assert path in schema["paths"]
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_the_docs_page_uses_the_vendored_swagger_ui(api: APIClient) -> None:
    response = api.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "/api/schema/" in page


def test_the_swagger_ui_is_served_from_this_server(anonymous: APIClient) -> None:
    response = anonymous.get(
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    )
    assert response.status_code == 200


def test_a_browser_logs_in_and_lands_on_the_dashboard(
    anonymous: APIClient, owner: User
) -> None:
    assert anonymous.get("/api/auth/login/").status_code == 200
    response = anonymous.post(
        "/api/auth/login/", {"username": "owner", "password": "pw"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert anonymous.get("/").status_code == 200
    assert anonymous.get("/api/docs/").status_code == 200
