"""The qdrant tool in Qdrant's local mode (an on-disk store under a
temporary NOETL_HOME: no Qdrant server package exists for this machine),
and its server mode's failures against an address where nothing listens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.object_servers import free_port
from workers.tools import qdrant, run_tool
from workers.tools.base import CredentialError, ToolContext


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _ctx() -> ToolContext:
    store = {
        "qdrant_down": {
            "type": "qdrant",
            "url": f"http://127.0.0.1:{free_port()}",
            "api_key": "qk-5531",
        }
    }

    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    return ToolContext(credential=credential, timeout=30.0)


def _run(**config: Any) -> dict[str, Any]:
    return qdrant.run(config, _ctx())


def _docs() -> None:
    made = _run(operation="create_collection", collection="docs", size=64)
    assert made["data"] == {
        "collection": "docs",
        "size": 64,
        "distance": "cosine",
        "created": True,
    }
    upserted = _run(
        operation="upsert",
        collection="docs",
        points=[
            {
                "id": 1,
                "text": "fresh coffee beans roasted daily",
                "payload": {"kind": "food"},
            },
            {
                "id": 2,
                "text": "mountain bike with disc brakes",
                "payload": {"kind": "gear"},
            },
            {"id": 3, "text": "decaf coffee in a tin", "payload": {"kind": "food"}},
        ],
    )
    assert upserted["data"]["upserted"] == 3


def test_texts_are_indexed_and_found_by_their_words(home: Path) -> None:
    _docs()
    found = _run(operation="search", collection="docs", text="coffee", limit=2)
    assert found["status"] == "ok", found
    assert sorted(hit["id"] for hit in found["data"]["hits"]) == [1, 3]
    assert (home / "qdrant").is_dir()


def test_search_filters_on_payload_and_count_and_delete_work() -> None:
    _docs()
    gear = _run(
        operation="search",
        collection="docs",
        text="coffee bike",
        filter={"kind": "gear"},
    )
    assert [hit["id"] for hit in gear["data"]["hits"]] == [2]
    assert gear["data"]["hits"][0]["payload"] == {"kind": "gear"}
    assert _run(operation="count", collection="docs")["data"]["count"] == 3
    assert (
        _run(operation="delete", collection="docs", ids=[1, 2])["data"]["deleted"] == 2
    )
    assert _run(operation="count", collection="docs")["data"]["count"] == 1


def test_explicit_vectors_and_uuid_ids_round_trip() -> None:
    _run(operation="create_collection", collection="v", size=3, distance="dot")
    point = "5b0a3c8e-1f51-4d2c-9a53-7d9f1f2b6c11"
    _run(
        operation="upsert",
        collection="v",
        points=[
            {"id": point, "vector": [1, 0, 0], "payload": {"n": 1}},
            {"id": 7, "vector": [0, 1, 0]},
        ],
    )
    found = run_tool(
        "qdrant",
        {"operation": "search", "collection": "v", "vector": [0.9, 0.1, 0], "limit": 1},
        _ctx(),
    )
    assert found["data"]["hits"][0]["id"] == point


def test_create_collection_keeps_an_existing_one_unless_recreate() -> None:
    _docs()
    again = _run(operation="create_collection", collection="docs", size=64)
    assert again["data"]["created"] is False
    assert _run(operation="count", collection="docs")["data"]["count"] == 3
    fresh = _run(
        operation="create_collection", collection="docs", size=64, recreate=True
    )
    assert fresh["data"]["created"] is True
    assert _run(operation="count", collection="docs")["data"]["count"] == 0


def test_malformed_requests_are_config_errors() -> None:
    _run(operation="create_collection", collection="m", size=3)
    cases = [
        ({}, "no operation given"),
        ({"operation": "explode"}, "'explode' is not an operation"),
        ({"operation": "create_collection", "collection": "x"}, "size"),
        (
            {
                "operation": "create_collection",
                "collection": "x",
                "size": 3,
                "distance": "near",
            },
            "distance must be one of",
        ),
        (
            {
                "operation": "upsert",
                "collection": "m",
                "points": [{"id": -1, "vector": [1, 2, 3]}],
            },
            "must be a non-negative integer or a UUID",
        ),
        (
            {
                "operation": "upsert",
                "collection": "m",
                "points": [{"id": 1, "vector": [1, 2]}],
            },
            "Vector dimension error",
        ),
        (
            {"operation": "upsert", "collection": "m", "points": [{"id": 1}]},
            "give vector or text",
        ),
        (
            {"operation": "search", "collection": "m", "vector": ["a"]},
            "vector must be a list of numbers",
        ),
        ({"operation": "delete", "collection": "m"}, "ids must be a non-empty list"),
        ({"operation": "count"}, "collection is required"),
        ({"operation": "count", "path": "../outside"}, "outside NOETL_HOME"),
    ]
    for config, expected in cases:
        outcome = _run(**config)
        assert outcome["error"]["kind"] == "config", (config, outcome)
        assert expected in outcome["error"]["message"], (config, outcome)


def test_a_missing_collection_is_not_found() -> None:
    outcome = _run(operation="search", collection="nope", vector=[1.0])
    assert outcome["error"]["kind"] == "not_found"
    assert "Collection nope not found" in outcome["error"]["message"]


def test_an_unreachable_server_is_a_connection_error_and_a_missing_credential_too() -> (
    None
):
    down = qdrant.run(
        {"auth": "qdrant_down", "operation": "count", "collection": "docs"}, _ctx()
    )
    assert down["error"]["kind"] == "connection"
    assert down["error"]["retryable"] is True
    assert "cannot reach qdrant http://127.0.0.1:" in down["error"]["message"]
    assert "qk-5531" not in str(down)
    missing = qdrant.run(
        {"auth": "nobody", "operation": "count", "collection": "x"}, _ctx()
    )
    assert missing["error"]["kind"] == "credential"


def test_the_hashed_embedding_is_normalised_and_deterministic() -> None:
    one = qdrant.hashed_embedding("Coffee, coffee and tea", 16)
    assert one == qdrant.hashed_embedding("coffee coffee AND tea", 16)
    assert abs(sum(v * v for v in one) - 1.0) < 1e-9
    assert qdrant.hashed_embedding("", 4) == [0.0, 0.0, 0.0, 0.0]
