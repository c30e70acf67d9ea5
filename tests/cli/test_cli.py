"""The ``noetl`` command as a user meets it: real subprocesses, fresh homes."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared import CONFORMANCE_PLAYBOOKS

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "tests" / "playbooks"
SUITE_ONLY = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "NATS_URL")
KEY = "q2k0nGfbC5Fh0rkQq2m9sY0Dbd4Qc8l3a5oQGxY1rj4="


def noetl(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    # The CLI runs embedded with its own settings, not the suite's.
    env = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    env.update(NOETL_HOME=str(home), NOETL_ENCRYPTION_KEY=KEY)
    return subprocess.run([sys.executable, "-m", "noetl_site.cli", *args], env=env,
                          cwd=home.parent, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_it_runs_the_example_and_prints_the_json_document(home: Path) -> None:
    done = noetl(home, "run", str(REPO / "examples" / "city_temperatures.yaml"), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) >= {"execution_id", "status", "result", "error", "steps"}
    assert doc["status"] == "completed"
    assert doc["steps"]["convert"]["runs"] == 1
    assert len(doc["steps"]["convert"]["result"]["results"]) == 6
    assert doc["steps"]["summarise"]["result"]["rows"][0]["cities"] == 6
    assert doc["result"]["verdict"] == "cool"
    assert "warm_report" not in doc["steps"]


def test_it_shows_progress_and_routes_by_payload(home: Path) -> None:
    done = noetl(home, "run", str(REPO / "examples" / "city_temperatures.yaml"),
                 "--set", "threshold_c=10")
    assert done.returncode == 0, done.stderr
    assert "▶ convert[0]" in done.stderr and "✓ summarise" in done.stderr
    assert "'verdict': 'warm'" in done.stdout or '"verdict": "warm"' in done.stdout


def test_it_counts_one_item_in_the_singular(home: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "one.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: one, path: tests/one}\n"
        "workflow:\n"
        "  - step: each\n"
        "    loop: {in: \"{{ [1] }}\", iterator: n}\n"
        "    tool: {kind: python, code: \"raise ValueError('no')\"}\n"
    )

    done = noetl(home, "run", str(playbook))

    assert "▶ each: loop over 1 item (" in done.stderr
    assert "✗ each: 0/1 iteration ok" in done.stderr
    assert "1 of 1 iteration failed; first failing iteration 0: ValueError: no" \
        in done.stdout


def test_it_keeps_history_between_invocations(home: Path) -> None:
    first = noetl(home, "run", str(PLAYBOOKS / "errors_python.yaml"), "--json")
    execution_id = json.loads(first.stdout)["execution_id"]
    runs = noetl(home, "runs")
    assert execution_id in runs.stdout and "failed" in runs.stdout
    shown = noetl(home, "show", execution_id, "--json")
    kinds = [e["kind"] for e in json.loads(shown.stdout)["events"]]
    assert kinds[0] == "execution.started" and kinds[-1] == "workflow.failed"


def test_it_keeps_its_home_and_database_private(home: Path) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / "errors_python.yaml"))

    assert done.returncode == 1, done.stderr
    assert home.stat().st_mode & 0o777 == 0o700
    for name in ("noetl.db", "noetl.db-wal", "noetl.db-shm"):
        if (home / name).exists():
            assert (home / name).stat().st_mode & 0o777 == 0o600, name


def test_it_tightens_a_database_made_world_readable_before(home: Path) -> None:
    home.mkdir()
    (home / "noetl.db").touch(mode=0o644)

    assert noetl(home, "runs").returncode == 0
    assert (home / "noetl.db").stat().st_mode & 0o777 == 0o600


def test_it_lists_runs_as_json_and_shows_when_each_event_happened(home: Path) -> None:
    first = noetl(home, "run", str(PLAYBOOKS / "errors_python.yaml"), "--json")
    execution_id = json.loads(first.stdout)["execution_id"]

    runs = noetl(home, "runs", "--json")

    assert runs.returncode == 0, runs.stderr
    [run] = json.loads(runs.stdout)
    assert run["id"] == execution_id and run["status"] == "failed"
    assert run["path"] == "tests/errors_python" and run["version"] == 1
    assert run["created_at"].startswith("20") and run["trigger"] == {"kind": "cli"}
    shown = noetl(home, "show", execution_id).stdout
    assert re.search(r"#1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  execution.started",
                     shown), shown


def test_it_rejects_an_invalid_playbook_and_writes_nothing(home: Path) -> None:
    broken = CONFORMANCE_PLAYBOOKS / "broken_playbooks"
    done = noetl(home, "run", str(broken / "should_error_tool_is_required.yaml"))
    assert done.returncode == 2
    assert "workflow[2]" in done.stderr and "line 39" in done.stderr
    assert "'tool' is required" in done.stderr
    assert not home.exists()


def test_it_reports_yaml_syntax_errors_with_a_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: [\n  - step: a\n")
    done = noetl(home, "register", str(bad))
    assert done.returncode == 2
    assert "line" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("playbook", "message"),
    [
        ("errors_template.yaml", "cannot render template '{{ 1 / 0 }}'"),
        ("errors_filter.yaml", "No filter named 'nosuchfilter'"),
        ("errors_filter_arc.yaml", "No filter named 'nosuchloopfilter'"),
        ("errors_credential.yaml", "credential 'no_such_credential' does not exist"),
        ("errors_http.yaml", "connection refused"),
        ("errors_python.yaml", "ValueError: bad value from user code"),
        ("errors_loop.yaml", "first failing iteration 2: ZeroDivisionError"),
        ("errors_timeout.yaml", "exceeded its timeout of 1s"),
        ("errors_unsupported.yaml", "tool kind 'container' is not supported"),
        ("errors_sql.yaml", "statement 2"),
    ],
)
def test_it_fails_runs_with_a_clear_message(home: Path, playbook: str, message: str) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / playbook), "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "failed"
    assert message in doc["error"]["message"]
    assert "Traceback" not in done.stderr


def test_it_never_shows_or_stores_credential_secrets(home: Path) -> None:
    secret = "s3cr3t-Passw0rd-xyz"
    data = json.dumps({"host": "127.0.0.1", "port": 5432, "user": "nobody_here",
                       "password": secret, "database": "test"})
    added = noetl(home, "credential", "add", "pg_secret", "--type", "postgres",
                  "--data", data)
    assert added.returncode == 0, added.stderr
    listed = noetl(home, "credential", "list")
    assert "pg_secret" in listed.stdout and secret not in listed.stdout
    playbook = home.parent / "leak.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: leak, path: tests/leak}\n"
        "workflow:\n"
        "  - step: start\n"
        "    tool: {kind: postgres, auth: pg_secret, command: SELECT 1}\n")
    run = noetl(home, "run", str(playbook), "--json")
    assert run.returncode == 1
    assert secret not in run.stdout + run.stderr
    for path in home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_it_registers_an_unsupported_tool_kind_with_a_warning(home: Path) -> None:
    done = noetl(home, "register", str(PLAYBOOKS / "errors_unsupported.yaml"))
    assert done.returncode == 0, done.stderr
    assert "registered tests/errors_unsupported v1" in done.stdout
    assert "workflow[0].tool.kind (line 6)" in done.stderr
    assert "tool kind 'container' is not supported by this NoETL version" in done.stderr


def test_it_registers_template_and_python_syntax_errors_with_warnings(
    home: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "syntax.yaml"
    playbook.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: syntax, path: tests/syntax}\n"
        "workflow:\n"
        "  - step: greet\n"
        "    tool: {kind: python, code: \"print('{{ workload.x }')\"}\n"
        "  - step: convert\n"
        "    tool:\n"
        "      kind: python\n"
        "      code: |\n"
        "        for i in range(3)\n"
        "            print(i)\n"
    )

    done = noetl(home, "register", str(playbook))

    assert done.returncode == 0, done.stderr
    assert "registered tests/syntax v1" in done.stdout
    assert ("workflow[0].tool.code (line 6): step 'greet': template syntax error"
            in done.stderr)
    assert ("workflow[1].tool.code (line 11): step 'convert': python syntax error"
            in done.stderr)


def test_it_resolves_keychain_entries_when_read_and_masks_their_values(
    home: Path,
) -> None:
    added = noetl(home, "credential", "add", "kc_api", "--type", "http_bearer", "--data",
                  '{"user": "svc", "token": "tok-5ecret-value"}')
    assert added.returncode == 0, added.stderr
    os.environ["NOETL_TEST_KEYCHAIN_SECRET"] = "env-5ecret-value"
    try:
        done = noetl(home, "run", str(PLAYBOOKS / "keychain.yaml"), "--json")
    finally:
        del os.environ["NOETL_TEST_KEYCHAIN_SECRET"]
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)["steps"]["start"]["result"]
    # Every string a keychain entry holds is redacted, static ones too.
    assert result == {"region": "***", "region_ok": True, "level": 3, "user": "svc",
                      "token_ok": True, "token": "***", "env_ok": True}
    assert json.loads(done.stdout)["steps"]["missing"]["result"] == {"x": "absent"}
    shown = noetl(home, "show", json.loads(done.stdout)["execution_id"], "--json")
    database = (home / "noetl.db").read_bytes()
    for secret in ("tok-5ecret-value", "env-5ecret-value"):
        assert secret not in done.stdout + done.stderr + shown.stdout
        assert secret.encode() not in database


def test_it_fails_a_step_whose_keychain_entry_cannot_be_resolved(home: Path) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / "keychain_broken.yaml"), "--json")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["kind"] == "credential"
    assert "keychain entry 'api'" in error["message"]
    assert "no_such_credential" in error["message"]


def test_it_shows_the_text_of_a_warning_event(home: Path) -> None:
    done = noetl(home, "run", str(PLAYBOOKS / "errors_filter_arc.yaml"), "--json")
    shown = noetl(home, "show", json.loads(done.stdout)["execution_id"])
    warning = next(line for line in shown.stdout.splitlines() if " warning " in line)
    assert "No filter named 'nosuchfilter'" in warning


def test_ctrl_c_cancels_the_run_and_interrupts_its_task_quietly(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SUITE_ONLY}
    env.update(NOETL_HOME=str(home), NOETL_ENCRYPTION_KEY=KEY)
    run = subprocess.Popen(
        [sys.executable, "-m", "noetl_site.cli", "run", str(PLAYBOOKS / "long_sleep.yaml")],
        env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    while "\u25b6 start".encode() not in seen:  # the step started: it sleeps 30 s
        ready, _, _ = select.select([run.stderr], [], [], 60)
        assert ready, f"the run never started: {seen!r}"
        seen += os.read(run.stderr.fileno(), 4096)  # unbuffered: no line waits
    os.killpg(run.pid, signal.SIGINT)
    # Ending well before the task's 30 s proves the task was interrupted.
    out, err = (part.decode() for part in run.communicate(timeout=20))
    assert run.returncode == 1, out + err
    assert "cancelled" in out and "interrupted from the keyboard" in out
    assert "Traceback" not in err and "failed (attempt" not in err
