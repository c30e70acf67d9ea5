"""The connector example playbooks, run by ``noetl run`` as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import nats
import psycopg
from clickhouse_driver import Client

from tests.cli.test_cli import REPO, noetl
from tests.object_servers import ensure_clickhouse

EXAMPLES = REPO / "examples" / "connectors"


def test_the_shell_secrets_example_uses_the_token_and_stores_it_nowhere(
    tmp_path: Path, monkeypatch
) -> None:
    token = "tok-example-5c1e77"
    monkeypatch.setenv("NOETL_EXAMPLE_DEPLOY_TOKEN", token)
    home = tmp_path / "home"
    done = noetl(home, "run", str(EXAMPLES / "shell_secrets.yaml"), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["result"] == {"said": "uploading with ***"}
    notes = home / "work" / "releases" / "2026.12" / "notes.txt"
    assert notes.read_text() == "built 2026.12\n"
    assert token not in done.stdout
    shown = noetl(home, "show", doc["execution_id"], "--json")
    assert token not in shown.stdout
    for path in home.rglob("*"):
        if path.is_file() and os.access(path, os.R_OK):
            assert token.encode() not in path.read_bytes(), path


def test_the_nats_example_keeps_a_checkpoint_in_a_kv_bucket(tmp_path: Path) -> None:
    bucket = f"noetl_example_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    try:
        done = noetl(
            home,
            "run",
            str(EXAMPLES / "nats_kv.yaml"),
            "--json",
            "--set",
            f"bucket={bucket}",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == {"rows": 42, "listed": True}
    finally:
        asyncio.run(_drop_kv(bucket))


async def _drop_kv(bucket: str) -> None:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    await nc.jetstream().delete_key_value(bucket)
    await nc.close()


def test_the_clickhouse_example_loads_rows_and_counts_them(tmp_path: Path) -> None:
    ensure_clickhouse()
    database = f"noetl_example_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    try:
        done = noetl(
            home,
            "run",
            str(EXAMPLES / "clickhouse_events.yaml"),
            "--json",
            "--set",
            f"database={database}",
        )
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["steps"]["start"]["result"]["results"]["load"]["row_count"] == 3
        assert doc["result"]["rows"] == [
            {"page": "/docs", "views": 1, "avg_ms": 340.0},
            {"page": "/home", "views": 2, "avg_ms": 107.5},
        ]
    finally:
        Client(host="127.0.0.1").execute(f"DROP DATABASE IF EXISTS {database}")


def test_noetl_tools_lists_every_kind_and_shows_one_in_full(tmp_path: Path) -> None:
    listed = noetl(tmp_path / "home", "tools")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()[:18]
    kinds = [line.split()[0] for line in lines if " alias of " not in line]
    assert kinds == [
        "python",
        "http",
        "postgres",
        "duckdb",
        "noop",
        "shell",
        "secrets",
        "nats",
        "clickhouse",
        "storage",
        "qdrant",
        "transfer",
        "snowflake",
        "playbook",
        "workbook",
    ]
    aliases = [line.split() for line in lines if " alias of " in line]
    assert aliases == [
        [name, "alias", "of", "storage"] for name in ("s3", "gcs", "artifact")
    ]
    child = noetl(tmp_path / "home", "tools", "playbook")
    assert child.returncode == 0 and "return_step" in child.stdout
    alias = noetl(tmp_path / "home", "tools", "artifact")
    assert alias.stdout.startswith("storage: ")
    one = noetl(tmp_path / "home", "tools", "snowflake")
    assert "credential types: snowflake" in one.stdout
    assert "warehouse/database/schema/role" in one.stdout
    doc = json.loads(noetl(tmp_path / "home", "tools", "--json").stdout)
    storage = next(spec for spec in doc if spec["kind"] == "storage")
    assert storage["aliases"] == ["s3", "gcs", "artifact"]
    assert storage["credential_types"] == ["s3", "gcs"]
    assert all(spec["available"] for spec in doc)
    unknown = noetl(tmp_path / "home", "tools", "teleport")
    assert unknown.returncode == 2
    assert "no tool kind 'teleport'" in unknown.stderr
    assert not (tmp_path / "home").exists()  # no database was made


def test_the_storage_example_writes_lists_and_reads_under_the_files_root(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = noetl(home, "run", str(EXAMPLES / "storage_files.yaml"), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"] == {"files": 1, "visits": 42}
    saved = home / "files" / "reports" / "day1.json"
    assert json.loads(saved.read_text()) == {"visits": 42, "pages": ["/home", "/docs"]}


def test_the_qdrant_example_finds_the_notes_about_the_question(tmp_path: Path) -> None:
    done = noetl(
        tmp_path / "home", "run", str(EXAMPLES / "qdrant_search.yaml"), "--json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hits = json.loads(done.stdout)["result"]["hits"]
    assert sorted(hit["id"] for hit in hits) == [1, 3]


def test_the_transfer_example_copies_a_thousand_rows_in_four_batches(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    table = f"noetl_transfer_{uuid.uuid4().hex[:8]}"
    pg = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
    noetl(
        home,
        "credential",
        "add",
        "pg_local",
        "--type",
        "postgres",
        "--data",
        json.dumps(pg),
    )
    try:
        done = noetl(
            home,
            "run",
            str(EXAMPLES / "transfer_duckdb_postgres.yaml"),
            "--json",
            "--set",
            f"table={table}",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        copied = json.loads(done.stdout)["result"]
        assert (copied["rows"], copied["batches"]) == (1000, 4)
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test") as conn:
            total = conn.execute(f"SELECT sum(square) FROM {table}").fetchone()[0]
        assert total == sum(n * n for n in range(1000))
    finally:
        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=test", autocommit=True
        ) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
