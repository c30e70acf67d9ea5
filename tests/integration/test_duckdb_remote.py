"""DuckDB reading and writing s3:// and gs:// with credentials by name,
against moto's S3 server and gcp-storage-emulator, with the httpfs
extension loaded from its PyPI package (no download at run time)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage as gcs_client

from tests.object_servers import GcsServer, S3Server, free_port
from workers.tools import duckdb as duckdb_tool
from workers.tools.base import CredentialError, ToolContext


def _ctx(store: dict[str, dict[str, Any]]) -> ToolContext:
    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    return ToolContext(credential=credential, timeout=60.0)


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"noetl-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def test_httpfs_comes_from_the_installed_package() -> None:
    assert duckdb_tool.httpfs_directory() is not None


def test_duckdb_writes_parquet_csv_json_to_s3_and_reads_them_back(
    s3: S3Server, bucket: str
) -> None:
    ctx = _ctx({"lake": s3.credential()})
    base = f"s3://{bucket}/out"
    outcome = duckdb_tool.run(
        {
            "auth": "lake",
            "command": f"""
        CREATE TABLE t AS SELECT range AS id, 'n' || range AS name FROM range(5);
        COPY t TO '{base}/t.parquet' (FORMAT parquet);
        COPY t TO '{base}/t.csv' (FORMAT csv, HEADER);
        COPY t TO '{base}/t.json' (FORMAT json);
        SELECT (SELECT count(*) FROM '{base}/t.parquet') AS parquet,
               (SELECT sum(id) FROM read_csv_auto('{base}/t.csv')) AS csv,
               (SELECT max(name) FROM read_json_auto('{base}/t.json')) AS json
    """,
        },
        ctx,
    )
    assert outcome["status"] == "ok", outcome
    assert outcome["data"]["rows"] == [{"parquet": 5, "csv": 10, "json": "n4"}]
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["out/t.csv", "out/t.json", "out/t.parquet"]


def test_aliases_map_several_credentials(s3: S3Server, bucket: str) -> None:
    ctx = _ctx({"lake": s3.credential()})
    outcome = duckdb_tool.run(
        {
            "auth": {"primary": "lake"},
            "query": f"COPY (SELECT 1 AS x) TO 's3://{bucket}/a.csv'; "
            f"SELECT * FROM 's3://{bucket}/a.csv'",
        },
        ctx,
    )
    assert outcome["data"]["rows"] == [{"x": 1}]


def test_a_wrong_secret_fails_the_statement_that_touches_s3(
    s3: S3Server, bucket: str
) -> None:
    wrong = {**s3.credential(), "secret": "wrong-secret-7731"}
    outcome = duckdb_tool.run(
        {"auth": "lake", "query": f"SELECT * FROM 's3://{bucket}/missing.parquet'"},
        _ctx({"lake": wrong}),
    )
    assert outcome["error"]["kind"] == "auth", outcome
    assert "(HTTP 403)" in outcome["error"]["message"]
    assert "wrong-secret-7731" not in str(outcome)


def test_a_query_that_does_not_parse_is_a_sql_error(s3: S3Server) -> None:
    outcome = duckdb_tool.run(
        {"auth": "lake", "query": "SELEC 1"}, _ctx({"lake": s3.credential()})
    )
    assert outcome["error"]["kind"] == "sql"
    assert "syntax error" in outcome["error"]["message"]


def test_an_unreachable_endpoint_fails_with_the_reason(s3: S3Server) -> None:
    down = {**s3.credential(), "endpoint": f"http://127.0.0.1:{free_port()}"}
    outcome = duckdb_tool.run(
        {"auth": "lake", "query": "SELECT * FROM 's3://b/x.parquet'"},
        _ctx({"lake": down}),
    )
    assert outcome["error"]["kind"] == "connection", outcome
    assert outcome["error"]["retryable"] is True
    assert "Could not establish connection" in outcome["error"]["message"]


def test_credentials_of_another_type_or_missing_are_credential_errors() -> None:
    pg = duckdb_tool.run(
        {"auth": "pg", "query": "SELECT 1"},
        _ctx({"pg": {"type": "postgres", "host": "x"}}),
    )
    assert pg["error"]["kind"] == "credential"
    assert "duckdb takes s3 or gcs credentials" in pg["error"]["message"]
    missing = duckdb_tool.run({"auth": "nobody", "query": "SELECT 1"}, _ctx({}))
    assert missing["error"]["kind"] == "credential"


def test_duckdb_reads_a_gs_object_from_the_gcs_emulator(gcs: GcsServer) -> None:
    # The emulator serves objects by path (what DuckDB's gs:// reads use);
    # it has no S3-style listing or multipart upload, so globs and writes to
    # gs:// are not tried against it.
    name = f"noetl-{uuid.uuid4().hex[:12]}"
    client = gcs_client.Client(
        project="t",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs.endpoint},
    )
    client.create_bucket(name).blob("in/data.csv").upload_from_string("x,y\n1,2\n3,4\n")
    hmac = {
        "type": "gcs_hmac",
        "key_id": "GOOG1EXAMPLE",
        "secret": "hmac-secret",
        "endpoint": gcs.endpoint,
    }
    outcome = duckdb_tool.run(
        {
            "auth": "gcs_hmac_local",
            "query": "SELECT sum(y) AS total FROM "
            f"read_csv_auto('gs://{name}/in/data.csv')",
        },
        _ctx({"gcs_hmac_local": hmac}),
    )
    assert outcome["data"]["rows"] == [{"total": 6}], outcome
