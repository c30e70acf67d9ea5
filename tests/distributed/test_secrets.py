"""Secret hygiene and credential scopes on a real distributed stack: the
worker fetches credentials over HTTP with its own token, and what it
reports, uploads and logs never holds the raw secret."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.distributed.conftest import Driver
from tests.security.conftest import PASSWORD
from tests.security.test_masking import PLAYBOOK, TOKEN, stub  # noqa: F401

pytestmark = pytest.mark.xdist_group("secrets")

OUT_OF_SCOPE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: nosy, path: marketing/nosy}
workflow:
  - step: start
    tool: {kind: python, auth: dist_pg, code: "result = auth['password']"}
"""


def _write(text: str) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    return Path(handle.name)


def _database_text(dsn: str) -> str:
    parts = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
            parts.extend(row[0] for row in rows)
    return "\n".join(parts)


def test_distributed_workers_mask_secrets_and_respect_scopes(
    stack: Driver,
    stub: str,  # noqa: F811
) -> None:
    for name, kind, data in (
        ("sec_pg", "postgres", {"user": "svc", "password": PASSWORD}),
        ("sec_api", "bearer", {"token": TOKEN}),
        ("dist_pg", "postgres", {"password": PASSWORD}),
    ):
        added = stack.noetl(
            "credential",
            "add",
            name,
            "--type",
            kind,
            "--data",
            json.dumps(data),
            "--allow",
            "sec/*",
        )
        assert added.returncode == 0, added.stderr
    stack.register(_write(PLAYBOOK.replace("STUB", stub)), _write(OUT_OF_SCOPE))

    leak, nosy = stack.start("sec/allowed/leak"), stack.start("marketing/nosy")
    assert stack.wait([leak, nosy]) == {leak: "failed", nosy: "failed"}

    detail = stack.http.get(f"/api/executions/{leak}/", params={"detail": "full"})
    assert "cannot connect to db with password ***" in detail.text
    refused = stack.http.get(f"/api/executions/{nosy}/").json()
    assert refused["error"]["kind"] == "credential"
    assert (
        "credential dist_pg is not available to playbook marketing/nosy"
        in (refused["error"]["message"])
    )

    events = stack.http.get(f"/api/executions/{leak}/events/", params={"limit": 500})
    everything = _database_text(stack.dsn)
    logs = "".join(p.read_text(errors="replace") for p in stack.stack.log_dir.glob("*"))
    for secret in (PASSWORD, TOKEN):
        assert secret not in everything and secret.encode().hex() not in everything
        assert secret not in detail.text and secret not in events.text
        assert secret not in logs
