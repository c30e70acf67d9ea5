"""``noetl schedule ...`` as a user runs it: embedded on a fresh SQLite home,
and with ``--server`` against a live server over REST."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from accounts import tokens
from tests.api.conftest import playbook_yaml
from tests.api.test_cli_server import noetl as remote_noetl
from tests.cli.test_cli import noetl
from tests.grants import grant_everything

PATH = "tests/schedules/cli"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "hello.yaml").write_text(playbook_yaml(PATH))
    return tmp_path / "home"


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_embedded_add_list_pause_resume_backfill_delete(home: Path) -> None:
    ok(noetl(home, "register", str(home.parent / "hello.yaml")))

    added = ok(
        noetl(
            home,
            "schedule",
            "add",
            "nightly",
            "--path",
            PATH,
            "--cron",
            "0 2 * * *",
            "--timezone",
            "Europe/Berlin",
        )
    )
    assert added.startswith("1\tnightly\ttests/schedules/cli\t0 2 * * *\tEurope/Berlin")
    assert "\tenabled\tnext=" in added

    assert "\tpaused\t" in ok(noetl(home, "schedule", "pause", "nightly"))
    assert "\tenabled\t" in ok(noetl(home, "schedule", "resume", "1"))
    backfilled = ok(
        noetl(
            home,
            "schedule",
            "backfill",
            "nightly",
            "--from",
            "2025-01-01T00:00",
            "--to",
            "2025-01-03T23:00",
            "--rate",
            "1000",
        )
    )
    assert backfilled == ("backfilled nightly: 3 runs started, 0 already existed\n"
                          "the runs wait for `noetl schedule serve` to execute them\n")
    again = ok(
        noetl(
            home,
            "schedule",
            "backfill",
            "1",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-04",
            "--rate",
            "1000",
        )
    )
    assert again == "backfilled nightly: 0 runs started, 3 already existed\n"

    runs = ok(noetl(home, "runs")).splitlines()
    assert len(runs) == 3
    assert runs[0].endswith("\tschedule nightly@2025-01-03T01:00:00+00:00")

    assert ok(noetl(home, "schedule", "list")).startswith("1\tnightly\t")
    assert (
        ok(noetl(home, "schedule", "delete", "nightly")) == "deleted schedule nightly\n"
    )
    assert ok(noetl(home, "schedule", "list")) == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cron", "every day"], "cron: 'every day' is not a valid cron expression"),
        (["--cron", "@daily", "--timezone", "Moon/Dark"], "unknown time zone"),
        (["--every", "0"], "interval_s: the interval must be a positive number"),
        (["--every", "10", "--cron", "@daily"], "not both"),
        (["--every", "10", "--path", "no/such"], "no playbook registered at path"),
    ],
)
def test_embedded_add_explains_user_errors(
    home: Path, options: list[str], message: str
) -> None:
    ok(noetl(home, "register", str(home.parent / "hello.yaml")))
    done = noetl(home, "schedule", "add", "bad", "--path", PATH, *options)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.startswith("error: the schedule was refused:")


def test_embedded_names_a_missing_schedule(home: Path) -> None:
    done = noetl(home, "schedule", "pause", "nothing")
    assert done.returncode == 3 and "no schedule nothing" in done.stderr


@pytest.fixture
def server(live_server: Any, transactional_db: None) -> tuple[str, str]:
    from catalog import services as catalog

    catalog.register(playbook_yaml(PATH))
    user = grant_everything(User.objects.create_user("cli"))
    return live_server.url, tokens.mint(user, "cli")[1]


def test_over_rest_the_same_commands_print_the_same_lines(
    server: tuple[str, str],
) -> None:
    added = ok(
        remote_noetl(
            server, "schedule", "add", "hourly", "--path", PATH, "--every", "3600"
        )
    )
    schedule_id = added.split("\t")[0]
    assert added.startswith(f"{schedule_id}\thourly\t{PATH}\tevery 3600s\tUTC\tenabled")

    assert "\tpaused\t" in ok(remote_noetl(server, "schedule", "pause", "hourly"))
    assert "\tenabled\t" in ok(remote_noetl(server, "schedule", "resume", schedule_id))
    backfilled = ok(
        remote_noetl(
            server,
            "schedule",
            "backfill",
            "hourly",
            "--from",
            "2025-01-01T00:00Z",
            "--to",
            "2025-01-01T09:00Z",
            "--rate",
            "1000",
        )
    )
    assert backfilled == "backfilled hourly: 10 runs started, 0 already existed\n"

    runs = ok(remote_noetl(server, "runs")).splitlines()
    assert len(runs) == 10
    assert runs[0].endswith("\tschedule hourly@2025-01-01T09:00:00+00:00")

    refused = remote_noetl(
        server, "schedule", "add", "x", "--path", PATH, "--cron", "99 * * * *"
    )
    assert (
        refused.returncode == 2 and "is not a valid cron expression" in refused.stderr
    )
    assert ok(remote_noetl(server, "schedule", "delete", "hourly")).startswith(
        "deleted"
    )
    assert ok(remote_noetl(server, "schedule", "list")) == ""


def test_embedded_serve_fires_a_schedule_and_runs_it(home: Path) -> None:
    # The one test here on the real clock: an interval of one second.
    ok(noetl(home, "register", str(home.parent / "hello.yaml")))
    ok(noetl(home, "schedule", "add", "often", "--path", PATH, "--every", "1"))

    served = ok(noetl(home, "schedule", "serve", "--for", "4"))

    assert served.endswith("stopped\n")
    runs = ok(noetl(home, "runs")).splitlines()
    assert runs and all("\tschedule often@" in run for run in runs)
    assert "\tcompleted\t" in "\n".join(runs)
