"""The CLI against a server goes through REST, so the same path rules hold
and a refusal reads clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from accounts import tokens
from credentials.models import Credential
from tests.api.conftest import playbook_yaml
from tests.api.test_cli_server import noetl
from tests.grants import grant, grant_secrets


@pytest.fixture
def server(live_server: Any, transactional_db: None) -> tuple[str, str]:
    user = User.objects.create_user("cli")
    grant(user, "team/*")
    grant_secrets(user)
    return live_server.url, tokens.mint(user, "cli")[1]


def test_the_cli_registers_and_runs_only_where_its_user_may(
    server: tuple[str, str], tmp_path: Path
) -> None:
    mine, theirs = tmp_path / "mine.yaml", tmp_path / "theirs.yaml"
    mine.write_text(playbook_yaml("team/job"))
    theirs.write_text(playbook_yaml("finance/job"))

    assert noetl(server, "register", str(mine)).returncode == 0
    refused = noetl(server, "register", str(theirs))
    assert refused.returncode != 0
    assert "permission denied: modify finance/job" in refused.stderr


def test_the_cli_scopes_a_credential_it_adds(server: tuple[str, str]) -> None:
    done = noetl(
        server,
        "credential",
        "add",
        "team_pg",
        "--type",
        "postgres",
        "--data",
        '{"password": "pw-123456"}',
        "--allow",
        "team/*",
        "--allow",
        "shared/reports/*",
    )
    assert done.returncode == 0, done.stderr
    assert Credential.objects.get(name="team_pg").allowed_paths == [
        "team/*",
        "shared/reports/*",
    ]
