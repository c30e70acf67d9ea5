"""``noetl --server``: the CLI as a user runs it, against a live server.

No workers run here, so a started run stays running; ``run --timeout``
then cancels it, which exercises the whole start-follow-cancel path. A run
to completion needs workers and is tested with the distributed stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from accounts import tokens
from executions import service
from executions.models import Execution
from tests.api.conftest import playbook_yaml
from tests.grants import grant_everything

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(live_server: Any, transactional_db: None) -> tuple[str, str]:
    user = grant_everything(User.objects.create_user("cli"))
    return live_server.url, tokens.mint(user, "cli")[1]


def noetl(
    server: tuple[str, str], *args: str, token: bool = True
) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "NOETL_TOKEN")
    }
    env["NOETL_SERVER"] = server[0]
    if token:
        env["NOETL_TOKEN"] = server[1]
    return subprocess.run(
        [sys.executable, "-m", "noetl_site.cli", *args],
        check=False,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / "hello.yaml"
    path.write_text(playbook_yaml("tests/cli/hello"))
    return path


def test_it_registers_files_through_the_api(
    server: tuple[str, str], hello: Path
) -> None:
    done = noetl(server, "register", str(hello))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"registered tests/cli/hello v1 ({hello})\n"


def test_it_refuses_an_invalid_file_before_calling_the_server(
    server: tuple[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: [\n")
    done = noetl(server, "register", str(bad))
    assert done.returncode == 2 and "is not a valid playbook" in done.stderr


def test_it_lists_shows_and_cancels_runs(server: tuple[str, str], hello: Path) -> None:
    noetl(server, "register", str(hello))
    execution, _ = service.start_execution("tests/cli/hello", trigger={"kind": "test"})

    runs = noetl(server, "runs", "--status", "running")
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.startswith(f"{execution.id}\trunning\ttests/cli/hello v1\t")
    listed = json.loads(noetl(server, "runs", "--status", "running", "--json").stdout)
    assert [(run["id"], run["path"], run["trigger"]) for run in listed] == [
        (execution.id, "tests/cli/hello", {"kind": "test"})
    ]

    shown = noetl(server, "show", execution.id, "--json")
    doc = json.loads(shown.stdout)
    assert doc["execution_id"] == execution.id and doc["status"] == "running"
    assert doc["steps"]["start"] == {"status": "running", "runs": 1, "result": None}
    assert doc["events"][0]["kind"] == "execution.started"

    cancelled = noetl(server, "cancel", execution.id, "--reason", "from a test")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"cancelled {execution.id}\n"
    assert Execution.objects.get(id=execution.id).status == "cancelled"

    shown = noetl(server, "show", execution.id)
    assert f"execution {execution.id}  tests/cli/hello v1  cancelled" in shown.stdout
    assert "execution.cancelled" in shown.stdout
    again = noetl(server, "cancel", execution.id)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_it_runs_a_file_and_cancels_it_at_the_timeout(
    server: tuple[str, str], hello: Path
) -> None:
    done = noetl(server, "run", str(hello), "--set", "n=3", "--timeout", "1", "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {
        "execution_id",
        "path",
        "version",
        "status",
        "result",
        "error",
        "steps",
    }
    assert doc["status"] == "cancelled" and doc["error"]["kind"] == "cancelled"
    assert "timed out after 1.0s" in doc["error"]["message"]
    started = Execution.objects.get(id=doc["execution_id"])
    assert started.events.get(kind="execution.started").payload["workload"]["n"] == 3


def test_it_shows_live_progress_while_following_a_run(
    server: tuple[str, str], hello: Path
) -> None:
    done = noetl(server, "run", str(hello), "--timeout", "1", "--server", server[0])
    assert done.returncode == 1
    assert "run started: tests/cli/hello v1" in done.stderr
    assert "▶ start" in done.stderr and "run cancelled" in done.stderr
    assert ": cancelled" in done.stdout


def test_it_maps_server_answers_to_exit_codes(server: tuple[str, str]) -> None:
    missing = noetl(server, "run", "tests/cli/nothing")
    assert missing.returncode == 3 and "tests/cli/nothing" in missing.stderr
    unknown = noetl(server, "show", "not-a-run")
    assert unknown.returncode == 3 and "no execution not-a-run" in unknown.stderr
    refused = noetl(server, "runs", token=False)
    assert refused.returncode == 4 and "credentials were not provided" in refused.stderr


def test_it_lists_the_catalog_over_the_api(server: tuple[str, str], hello: Path) -> None:
    assert noetl(server, "register", str(hello)).returncode == 0
    listed = noetl(server, "catalog", "list", "--prefix", "tests/cli")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("tests/cli/hello\tv1\thello\t")
    assert noetl(server, "catalog", "list", "--prefix", "elsewhere").stdout == ""


def test_it_saves_and_lists_credentials_over_the_api(server: tuple[str, str]) -> None:
    data = '{"host": "db.example", "password": "s3cret-over-rest"}'
    added = noetl(server, "credential", "add", "remote_pg", "--type", "postgres",
                  "--data", data)
    assert added.returncode == 0, added.stderr
    replaced = noetl(server, "credential", "add", "remote_pg", "--type", "postgres",
                     "--data", '{"host": "db2.example", "password": "changed"}')
    assert replaced.returncode == 0, replaced.stderr
    listed = noetl(server, "credential", "list")
    assert listed.returncode == 0 and "remote_pg\tpostgres" in listed.stdout
    assert "s3cret" not in listed.stdout + added.stdout + added.stderr
    bad = noetl(server, "credential", "add", "x", "--type", "postgres", "--data", "[1]")
    assert bad.returncode == 2 and "non-empty JSON object" in bad.stderr


def test_it_reports_an_unreachable_server(tmp_path: Path) -> None:
    done = noetl(("http://127.0.0.1:9", "t"), "runs")
    assert done.returncode == 4 and "cannot reach" in done.stderr
