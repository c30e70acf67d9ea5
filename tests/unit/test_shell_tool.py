"""The shell and secrets tools, running real processes under a temporary
NOETL_HOME."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from workers.tools import run_tool, secrets, shell
from workers.tools.base import CredentialError, ToolContext

CREDENTIALS = {
    "deploy_key": {"type": "generic", "token": "tok-8f3a9c", "user": "deployer"},
}


def _credential(name: str) -> dict[str, Any]:
    if name not in CREDENTIALS:
        raise CredentialError(f"credential {name!r} does not exist")
    return dict(CREDENTIALS[name])


def _ctx(**kwargs: Any) -> ToolContext:
    kwargs.setdefault("timeout", 20.0)
    kwargs.setdefault("credential", _credential)
    return ToolContext(**kwargs)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    return (tmp_path / "home").resolve()


def test_commands_run_in_order_and_the_last_output_is_the_result(home: Path) -> None:
    outcome = shell.run(
        {"cmds": ["echo one > f.txt", "echo two >> f.txt", "cat f.txt"]}, _ctx()
    )
    assert outcome["status"] == "ok", outcome
    assert outcome["data"]["stdout"] == "one\ntwo\n"
    assert outcome["data"]["exit_code"] == 0
    assert [c["exit_code"] for c in outcome["data"]["commands"]] == [0, 0, 0]
    assert (home / "work" / "f.txt").read_text() == "one\ntwo\n"


def test_a_failing_command_stops_the_rest_with_its_exit_status_and_stderr(
    home: Path,
) -> None:
    outcome = shell.run(
        {"cmds": ["echo no such thing >&2; exit 3", "touch never"]}, _ctx()
    )
    assert outcome["status"] == "error"
    assert outcome["error"]["kind"] == "exit"
    assert outcome["error"]["code"] == 3
    assert (
        "command 1 exited with status 3: no such thing" in outcome["error"]["message"]
    )
    assert not (home / "work" / "never").exists()


def test_check_false_reports_a_non_zero_exit_as_data() -> None:
    outcome = shell.run({"command": "exit 4", "check": False}, _ctx())
    assert outcome["status"] == "ok"
    assert outcome["data"]["exit_code"] == 4


def test_env_is_clean_plus_what_the_task_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_ENCRYPTION_KEY", "worker-only-key")
    outcome = shell.run(
        {
            "command": 'echo "$GREETING/${NOETL_ENCRYPTION_KEY:-unset}/'
            '$NOETL_EXECUTION_ID"',
            "env": {"GREETING": "hello"},
        },
        _ctx(execution_id="exec-1"),
    )
    assert outcome["data"]["stdout"] == "hello/unset/exec-1\n"


def test_credential_fields_become_env_and_are_masked_in_output() -> None:
    registered: list[str] = []
    outcome = shell.run(
        {"command": 'echo "user=$USER token=$TOKEN"', "auth": "deploy_key"},
        _ctx(secret=registered.append),
    )
    assert outcome["status"] == "ok", outcome
    assert outcome["data"]["stdout"] == "user=*** token=***\n"
    assert "tok-8f3a9c" in registered


def test_secret_looking_env_values_are_masked_but_plain_ones_are_not() -> None:
    outcome = shell.run(
        {
            "command": 'echo "$API_TOKEN $REGION"',
            "env": {"API_TOKEN": "abc-123-xyz", "REGION": "eu-west"},
        },
        _ctx(),
    )
    assert outcome["data"]["stdout"] == "*** eu-west\n"


def test_a_missing_credential_is_a_credential_error() -> None:
    outcome = shell.run({"command": "true", "auth": "nobody"}, _ctx())
    assert outcome["error"]["kind"] == "credential"
    assert "'nobody' does not exist" in outcome["error"]["message"]


def test_the_working_directory_is_confined_under_noetl_home(home: Path) -> None:
    inside = shell.run({"command": "pwd", "cwd": "jobs/a"}, _ctx())
    assert inside["data"]["stdout"].strip() == str(home / "jobs" / "a")
    for escape in ("../elsewhere", "/tmp", "jobs/../../x"):
        outcome = shell.run({"command": "pwd", "cwd": escape}, _ctx())
        assert outcome["error"]["kind"] == "config", escape
        assert "outside NOETL_HOME" in outcome["error"]["message"]


def test_a_symlink_out_of_noetl_home_is_refused(home: Path, tmp_path: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "out").symlink_to(tmp_path)
    outcome = shell.run({"command": "pwd", "cwd": "out"}, _ctx())
    assert outcome["error"]["kind"] == "config"


def test_a_timeout_kills_the_whole_process_group(home: Path) -> None:
    started = time.monotonic()
    outcome = shell.run(
        {"command": "(sleep 30; touch late) & sleep 30", "timeout": 0.5}, _ctx()
    )
    assert time.monotonic() - started < 5
    assert outcome["error"]["kind"] == "timeout"
    assert "timed out after 0.5s" in outcome["error"]["message"]
    time.sleep(0.2)
    assert not (home / "work" / "late").exists()


def test_a_cancel_stops_the_running_command() -> None:
    ctx = _ctx()
    threading.Timer(0.3, ctx.cancelled.set).start()
    started = time.monotonic()
    outcome = shell.run({"command": "sleep 30"}, ctx)
    assert time.monotonic() - started < 5
    assert outcome["error"]["kind"] == "cancelled"


def test_no_command_and_a_bad_env_name_are_config_errors() -> None:
    assert shell.run({}, _ctx())["error"]["kind"] == "config"
    outcome = shell.run({"command": "true", "env": {"BAD-NAME": "x"}}, _ctx())
    assert (
        "'BAD-NAME' is not a valid environment variable name"
        in (outcome["error"]["message"])
    )


def test_an_unknown_interpreter_fails_with_its_reason() -> None:
    outcome = shell.run({"command": "true", "shell": "/no/such/sh"}, _ctx())
    assert outcome["error"]["kind"] == "exit"
    assert "cannot start /no/such/sh" in outcome["error"]["message"]


# --- secrets -----------------------------------------------------------------------


def test_the_env_provider_returns_the_variable_and_registers_it_for_masking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOETL_TEST_SECRET", "very-secret-value")
    registered: list[str] = []
    outcome = secrets.run(
        {"provider": "env", "name": "NOETL_TEST_SECRET"}, _ctx(secret=registered.append)
    )
    assert outcome["status"] == "ok"
    assert outcome["data"]["value"] == "very-secret-value"
    assert registered == ["very-secret-value"]


def test_a_missing_env_variable_is_a_credential_error() -> None:
    outcome = secrets.run({"provider": "env", "name": "NOETL_NOT_SET_ANYWHERE"}, _ctx())
    assert outcome["error"]["kind"] == "credential"
    assert "'NOETL_NOT_SET_ANYWHERE' is not set" in outcome["error"]["message"]


def test_the_credential_provider_returns_one_field_or_all() -> None:
    one = secrets.run(
        {"provider": "credential", "name": "deploy_key", "field": "token"}, _ctx()
    )
    assert one["data"]["value"] == "tok-8f3a9c"
    every = secrets.run({"provider": "credential", "name": "deploy_key"}, _ctx())
    assert every["data"]["value"] == {"token": "tok-8f3a9c", "user": "deployer"}
    missing = secrets.run(
        {"provider": "credential", "name": "deploy_key", "field": "pin"}, _ctx()
    )
    assert missing["error"]["kind"] == "credential"
    assert "no field 'pin' (fields: token, user)" in missing["error"]["message"]


def test_cloud_providers_and_unknown_ones_are_refused_clearly() -> None:
    cloud = secrets.run({"provider": "gcp", "name": "x"}, _ctx())
    assert cloud["error"]["kind"] == "config"
    assert "needs its cloud" in cloud["error"]["message"]
    assert (
        "unknown"
        in secrets.run({"provider": "zz", "name": "x"}, _ctx())["error"]["message"]
    )
    assert secrets.run({"provider": "env"}, _ctx())["error"]["kind"] == "config"


def test_both_kinds_are_registered_for_run_tool(monkeypatch) -> None:
    monkeypatch.setenv("NOETL_TEST_SECRET", "abcdef")
    outcome = run_tool("secrets", {"name": "NOETL_TEST_SECRET"}, _ctx())
    assert outcome["data"]["value"] == "abcdef"
    assert run_tool("shell", {"cmds": ["echo hi"]}, _ctx())["data"]["stdout"] == "hi\n"
