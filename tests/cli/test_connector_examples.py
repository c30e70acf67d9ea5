"""The connector example playbooks, run by ``noetl run`` as a user would."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.test_cli import REPO, noetl

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
