"""The example playbook HTTP -> DuckDB -> Parquet on S3 -> ClickHouse ->
Qdrant, run by ``noetl run`` against the local servers: an HTTP server for
the catalogue, moto's S3 server, ClickHouse (scripts/clickhouse) and
Qdrant's local store."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from clickhouse_driver import Client

from tests.cli.test_cli import REPO, noetl
from tests.object_servers import S3Server, ensure_clickhouse

EXAMPLE = REPO / "examples" / "connectors" / "products_pipeline.yaml"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(EXAMPLE.parent / "data"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/products.json"
    server.shutdown()


def test_the_products_pipeline_moves_data_through_every_store(
    s3: S3Server, api: str, tmp_path: Path
) -> None:
    ensure_clickhouse()
    home = tmp_path / "home"
    bucket = f"noetl-lake-{uuid.uuid4().hex[:8]}"
    database = f"noetl_shop_{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket)
    added = noetl(
        home,
        "credential",
        "add",
        "lake",
        "--type",
        "s3",
        "--data",
        json.dumps(s3.credential()),
    )
    assert added.returncode == 0, added.stderr
    try:
        done = noetl(
            home,
            "run",
            str(EXAMPLE),
            "--json",
            "--set",
            f"api_url={api}",
            "--set",
            f"bucket={bucket}",
            "--set",
            f"database={database}",
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(done.stdout)["result"]
        assert result == {
            "fetched": 5,
            "staged": 5,
            "copied": 5,
            "categories": [
                {"category": "kitchen", "products": 2, "avg_price": 67.25},
                {"category": "outdoor", "products": 3, "avg_price": 61.33},
            ],
            "best_matches": ["Dry bag", "Trail jacket"],
        }
        parquet = s3.client().get_object(Bucket=bucket, Key="products/products.parquet")
        assert parquet["Body"].read(4) == b"PAR1"
        rows = Client(host="127.0.0.1").execute(
            f"SELECT name FROM {database}.products WHERE price > 50 ORDER BY id"
        )
        assert rows == [("Trail jacket",), ("Espresso grinder",)]
        assert (home / "qdrant" / "collection" / "products").is_dir()
        assert s3.secret not in done.stdout
    finally:
        Client(host="127.0.0.1").execute(f"DROP DATABASE IF EXISTS {database}")
