"""Credentials and keychain entries: metadata readable, secrets never returned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from credentials.models import KeychainEntry
from credentials.store import read_credential, read_keychain_entry

SECRET = "s3cr3t-Passw0rd-xyz"


def _everything(api: APIClient, *urls: str) -> str:
    return "".join(api.get(url).content.decode() for url in urls)


def test_it_stores_a_credential_without_ever_returning_its_data(api: APIClient) -> None:
    created = api.post(
        "/api/credentials/",
        {
            "name": "pg_main",
            "type": "postgres",
            "description": "main db",
            "data": {"host": "db", "password": SECRET},
        },
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["name"] == "pg_main" and "data" not in created.json()
    assert read_credential("pg_main")["password"] == SECRET

    updated = api.patch(
        "/api/credentials/pg_main/", {"description": "renamed db"}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["description"] == "renamed db"
    assert read_credential("pg_main")["password"] == SECRET

    replaced = api.put(
        "/api/credentials/pg_main/",
        {"type": "postgres", "data": {"host": "db", "password": SECRET + "2"}},
        format="json",
    )
    assert replaced.status_code == 200
    assert read_credential("pg_main")["password"] == SECRET + "2"

    bodies = (
        created.content.decode() + updated.content.decode() + replaced.content.decode()
    )
    bodies += _everything(
        api,
        "/api/credentials/",
        "/api/credentials/pg_main/",
        "/api/schema/?format=json",
    )
    assert SECRET not in bodies


def test_it_refuses_empty_or_non_object_credential_data(api: APIClient) -> None:
    for data in ({}, "text", [1]):
        response = api.post(
            "/api/credentials/",
            {"name": "x", "type": "http", "data": data},
            format="json",
        )
        assert response.status_code == 400 and "data" in response.json()


def test_it_does_not_rename_a_credential(api: APIClient) -> None:
    api.post(
        "/api/credentials/",
        {"name": "a", "type": "http", "data": {"k": 1}},
        format="json",
    )
    api.patch("/api/credentials/a/", {"name": "b"}, format="json")
    assert api.get("/api/credentials/a/").status_code == 200
    assert api.get("/api/credentials/b/").status_code == 404


def test_it_deletes_a_credential(api: APIClient) -> None:
    api.post(
        "/api/credentials/",
        {"name": "gone", "type": "http", "data": {"k": 1}},
        format="json",
    )
    assert api.delete("/api/credentials/gone/").status_code == 204
    assert api.get("/api/credentials/gone/").status_code == 404


def test_it_keeps_keychain_values_write_only(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    expires = (timezone.now() + timedelta(hours=1)).isoformat()
    shared = api.post(
        "/api/keychain/",
        {"name": "oauth", "value": {"token": SECRET}, "expires_at": expires},
        format="json",
    )
    own = api.post(
        "/api/keychain/",
        {
            "name": "oauth",
            "scope": "execution",
            "execution": run["id"],
            "value": SECRET,
        },
        format="json",
    )
    assert shared.status_code == 201 and own.status_code == 201, own.content
    assert shared.json()["scope"] == "global" and shared.json()["expired"] is False
    assert own.json()["execution"] == run["id"]

    entry = KeychainEntry.objects.get(id=own.json()["id"])
    assert read_keychain_entry(entry) == SECRET
    listed = api.get("/api/keychain/", {"execution": run["id"]}).json()
    assert [e["id"] for e in listed] == [entry.id]

    bodies = shared.content.decode() + own.content.decode()
    bodies += _everything(api, "/api/keychain/", f"/api/keychain/{entry.id}/")
    assert SECRET not in bodies


def test_it_checks_the_keychain_scope(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    missing = api.post(
        "/api/keychain/", {"name": "k", "scope": "execution", "value": 1}, format="json"
    )
    stray = api.post(
        "/api/keychain/",
        {"name": "k", "execution": run["id"], "value": 1},
        format="json",
    )
    assert missing.status_code == 400 and stray.status_code == 400


def test_an_expired_keychain_entry_reads_as_nothing(api: APIClient) -> None:
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    body = api.post(
        "/api/keychain/",
        {"name": "old", "value": "v", "expires_at": past},
        format="json",
    ).json()
    assert body["expired"] is True
    assert read_keychain_entry(KeychainEntry.objects.get(id=body["id"])) is None
