"""The storage tool against real protocol servers started for the tests:
moto's S3 server (authenticating) and gcp-storage-emulator; file:// under
a temporary root."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.object_servers import GcsServer, S3Server, free_port
from workers.tools import run_tool, storage
from workers.tools.base import CredentialError, ToolContext


def _ctx(store: dict[str, dict[str, Any]], **kwargs: Any) -> ToolContext:
    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    kwargs.setdefault("timeout", 30.0)
    return ToolContext(credential=credential, **kwargs)


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"noetl-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_ctx(s3: S3Server) -> ToolContext:
    wrong = {**s3.credential(), "secret": "not-the-secret-2291"}
    unknown = {**s3.credential(), "key_id": "AKIANOSUCHKEY0000000"}
    down = {**s3.credential(), "endpoint": f"http://127.0.0.1:{free_port()}"}
    return _ctx(
        {
            "s3_local": s3.credential(),
            "s3_wrong": wrong,
            "s3_unknown": unknown,
            "s3_down": down,
        }
    )


def _s3(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return storage.run({"auth": "s3_local", **config}, ctx)


def test_s3_put_get_list_delete_round_trip(bucket: str, s3_ctx: ToolContext) -> None:
    uri = f"s3://{bucket}/reports/day1.json"
    put = _s3({"operation": "put", "uri": uri, "value": {"rows": 3}}, s3_ctx)
    assert put == {
        "status": "ok",
        "data": {"uri": uri, "size": 11},
        "meta": put["meta"],
    }
    _s3(
        {
            "operation": "put",
            "uri": f"s3://{bucket}/reports/day2.txt",
            "value": "plain",
        },
        s3_ctx,
    )
    _s3({"operation": "put", "uri": f"s3://{bucket}/other/x", "value": "x"}, s3_ctx)
    got = _s3({"operation": "get", "uri": uri}, s3_ctx)
    assert got["data"]["value"] == {"rows": 3}
    listed = _s3({"operation": "list", "uri": f"s3://{bucket}/reports/"}, s3_ctx)
    assert [o["key"] for o in listed["data"]["objects"]] == [
        "reports/day1.json",
        "reports/day2.txt",
    ]
    assert listed["data"]["objects"][1]["uri"] == f"s3://{bucket}/reports/day2.txt"
    deleted = _s3({"action": "delete", "uri": uri}, s3_ctx)
    assert deleted["data"]["deleted"] is True
    gone = _s3({"operation": "get", "uri": uri}, s3_ctx)
    assert gone["error"]["kind"] == "not_found"
    assert gone["error"]["message"] == f"{uri}: no such object"


def test_s3_binary_values_go_as_base64(bucket: str, s3_ctx: ToolContext) -> None:
    uri = f"s3://{bucket}/bin"
    _s3({"operation": "put", "uri": uri, "value": "/wAB", "encoding": "base64"}, s3_ctx)
    got = _s3({"operation": "get", "uri": uri}, s3_ctx)
    assert got["data"] == {"uri": uri, "size": 3, "value": "/wAB"}


def test_s3_wrong_secret_and_unknown_key_are_refused(
    bucket: str, s3_ctx: ToolContext
) -> None:
    for name in ("s3_wrong", "s3_unknown"):
        outcome = storage.run(
            {"auth": name, "operation": "get", "uri": f"s3://{bucket}/x"}, s3_ctx
        )
        assert outcome["error"]["kind"] == "auth", outcome
        assert "S3 refused the credentials" in outcome["error"]["message"]
        assert outcome["error"]["retryable"] is False
        assert "not-the-secret-2291" not in str(outcome)


def test_s3_unreachable_endpoint_is_a_connection_error(s3_ctx: ToolContext) -> None:
    outcome = storage.run(
        {"auth": "s3_down", "operation": "list", "uri": "s3://any-bucket/"}, s3_ctx
    )
    assert outcome["error"]["kind"] == "connection"
    assert outcome["error"]["retryable"] is True
    assert "cannot reach S3" in outcome["error"]["message"]


def test_s3_missing_bucket_and_object_are_not_found(
    bucket: str, s3_ctx: ToolContext
) -> None:
    no_bucket = _s3({"operation": "get", "uri": "s3://noetl-absent-bucket/k"}, s3_ctx)
    assert no_bucket["error"]["message"] == "s3://noetl-absent-bucket/k: no such bucket"
    no_object = _s3({"operation": "delete", "uri": f"s3://{bucket}/nothing"}, s3_ctx)
    assert no_object["error"]["kind"] == "not_found"


def test_malformed_requests_are_config_errors(s3_ctx: ToolContext) -> None:
    cases = [
        ({"uri": "s3://b/k"}, "no operation given"),
        ({"operation": "copy", "uri": "s3://b/k"}, "'copy' is not an operation"),
        ({"operation": "get"}, "no uri given"),
        ({"operation": "get", "uri": "ftp://x/y"}, "is not a storage URI"),
        ({"operation": "get", "uri": "s3:///key"}, "has no bucket"),
        ({"operation": "put", "uri": "s3://b/dir/", "value": 1}, "names no object"),
        ({"operation": "put", "uri": "s3://b/k"}, "value is required"),
        (
            {"operation": "put", "uri": "s3://b/k", "value": "%", "encoding": "base64"},
            "not valid base64",
        ),
    ]
    for config, expected in cases:
        outcome = _s3(config, s3_ctx)
        assert outcome["error"]["kind"] == "config", (config, outcome)
        assert expected in outcome["error"]["message"], (config, outcome)


def test_a_missing_credential_is_a_credential_error(s3_ctx: ToolContext) -> None:
    outcome = storage.run(
        {"auth": "nobody", "operation": "get", "uri": "s3://b/k"}, s3_ctx
    )
    assert outcome["error"]["kind"] == "credential"


# --- gs:// ---------------------------------------------------------------------


@pytest.fixture
def gcs_ctx(gcs: GcsServer) -> ToolContext:
    down = {"type": "gcs", "endpoint": f"http://127.0.0.1:{free_port()}"}
    broken = {"type": "gcs", "service_account": {"type": "service_account"}}
    return _ctx({"gcs_local": gcs.credential(), "gcs_down": down, "gcs_broken": broken})


def test_gcs_put_get_list_delete_round_trip(
    gcs_ctx: ToolContext, gcs: GcsServer
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs_client

    name = f"noetl-{uuid.uuid4().hex[:12]}"
    gcs_client.Client(
        project="t",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs.endpoint},
    ).create_bucket(name)
    uri = f"gs://{name}/in/a.csv"

    def call(**config: Any) -> dict[str, Any]:
        return run_tool("gcs", {"auth": "gcs_local", **config}, gcs_ctx)

    assert call(operation="put", uri=uri, value="x,y\n1,2\n")["data"]["size"] == 8
    assert call(operation="get", uri=uri)["data"]["value"] == "x,y\n1,2\n"
    listed = call(operation="list", uri=f"gs://{name}/in/")
    assert [o["uri"] for o in listed["data"]["objects"]] == [uri]
    assert call(operation="delete", uri=uri)["data"]["deleted"] is True
    gone = call(operation="get", uri=uri)
    assert gone["error"]["kind"] == "not_found"


def test_gcs_unreachable_and_unusable_credentials(gcs_ctx: ToolContext) -> None:
    down = storage.run(
        {"auth": "gcs_down", "operation": "get", "uri": "gs://b/k"}, gcs_ctx
    )
    assert down["error"]["kind"] == "connection"
    assert "cannot reach GCS" in down["error"]["message"]
    broken = storage.run(
        {"auth": "gcs_broken", "operation": "get", "uri": "gs://b/k"}, gcs_ctx
    )
    assert broken["error"]["kind"] == "credential"
    assert "service account is not usable" in broken["error"]["message"]
    none = storage.run({"operation": "get", "uri": "gs://b/k"}, gcs_ctx)
    assert none["error"]["kind"] == "credential"
    assert "no GCS credentials" in none["error"]["message"]


# --- file:// --------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    allowed = (tmp_path / "data").resolve()
    allowed.mkdir()
    monkeypatch.setenv("NOETL_FILE_ROOTS", str(allowed))
    return allowed


def test_files_under_a_root_round_trip(root: Path) -> None:
    ctx = _ctx({})
    uri = f"file://{root}/out/rows.json"
    put = storage.run({"operation": "put", "uri": uri, "value": [1, 2]}, ctx)
    assert put["status"] == "ok", put
    assert (root / "out" / "rows.json").read_text() == "[1, 2]"
    assert storage.run({"operation": "get", "uri": uri}, ctx)["data"]["value"] == [1, 2]
    listed = storage.run({"operation": "list", "uri": f"file://{root}"}, ctx)
    assert [o["key"] for o in listed["data"]["objects"]] == [
        str(root / "out/rows.json")
    ]
    storage.run({"operation": "delete", "uri": uri}, ctx)
    assert not (root / "out" / "rows.json").exists()
    missing = storage.run({"operation": "get", "uri": uri}, ctx)
    assert missing["error"]["kind"] == "not_found"


def test_a_relative_file_uri_is_under_the_first_root(root: Path) -> None:
    ctx = _ctx({})
    put = storage.run({"operation": "put", "uri": "file:a/b.txt", "value": "hi"}, ctx)
    assert put["data"]["uri"] == "file:a/b.txt"
    assert (root / "a" / "b.txt").read_text() == "hi"
    escape = storage.run({"operation": "get", "uri": "file:../../etc/passwd"}, ctx)
    assert escape["error"]["kind"] == "config"


def test_files_outside_the_roots_are_refused(root: Path, tmp_path: Path) -> None:
    ctx = _ctx({})
    (tmp_path / "secret.txt").write_text("keep out")
    (root / "link").symlink_to(tmp_path)
    for uri in (
        f"file://{tmp_path}/secret.txt",
        f"file://{root}/../secret.txt",
        f"file://{root}/link/secret.txt",
        "file:///etc/passwd",
    ):
        outcome = storage.run({"operation": "get", "uri": uri}, ctx)
        assert outcome["error"]["kind"] == "config", uri
        assert "outside the allowed file roots" in outcome["error"]["message"]
    write = storage.run(
        {"operation": "put", "uri": f"file://{root}/../x", "value": "x"}, ctx
    )
    assert write["error"]["kind"] == "config"
    assert not (tmp_path / "x").exists()
