"""Log records are one JSON object per line and name the run, step,
command and worker they concern, in every process; text on request."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from catalog import services as catalog
from executions import service
from executions.models import Command
from noetl_site import logs

REPO = Path(__file__).resolve().parents[2]
HELLO = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: logged, path: tests/obs/logged}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: {arcs: [{step: finish}]}
  - step: finish
    tool: {kind: python, code: "result = 2"}
"""


def record(message: str, exc: bool = False, **extra: str) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.makeLogRecord(
        {
            "name": "noetl.tests",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": message,
            "exc_info": exc_info,
            **extra,
        }
    )


def test_a_json_record_is_one_line_with_the_bound_run_fields() -> None:
    formatter = logs.JsonFormatter()
    with logs.bound(
        execution_id="e1", step="load", command_id="e1/load/1/0", worker_id="w-1"
    ):
        line = formatter.format(record("took %s", exc=True))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "noetl.tests"
    assert entry["execution_id"] == "e1" and entry["step"] == "load"
    assert entry["command_id"] == "e1/load/1/0" and entry["worker_id"] == "w-1"
    assert "RuntimeError: boom" in entry["exc"] and entry["ts"].endswith("+00:00")


def test_fields_are_unbound_when_the_block_ends_and_extra_ones_are_kept() -> None:
    formatter = logs.JsonFormatter()
    with logs.bound(execution_id="e1"):
        pass
    entry = json.loads(formatter.format(record("plain", schedule="nightly")))

    assert "execution_id" not in entry and entry["schedule"] == "nightly"


def test_text_format_is_for_people_and_still_names_the_run() -> None:
    with logs.bound(execution_id="e2", step="s"):
        line = logs.TextFormatter().format(record("hello"))

    assert line.endswith("hello [execution=e2 step=s]")


def test_the_process_is_named_after_what_runs() -> None:
    assert logs.process_name(["/venv/bin/gunicorn", "noetl_site.wsgi"]) == "web"
    assert logs.process_name(["manage.py", "runworker"]) == "runworker"
    assert logs.process_name(["/venv/bin/noetl", "run"]) == "cli"


def test_an_unknown_log_format_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="NOETL_LOG_FORMAT must be auto, json or text"):
        logs.formatter_class("yaml")


def _env(tmp_path: Path, fmt: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "NATS_URL")
    }
    env.update(NOETL_HOME=str(tmp_path), NOETL_LOG_LEVEL="INFO", NOETL_LOG_FORMAT=fmt)
    return env


def _records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_the_cli_logs_each_command_as_json_with_run_step_command_and_worker(
    tmp_path: Path,
) -> None:
    playbook = tmp_path / "logged.yaml"
    playbook.write_text(HELLO)
    proc = subprocess.run(
        [sys.executable, "-m", "noetl_site.cli", "run", str(playbook)],
        env=_env(tmp_path, "json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr

    ran = [r for r in _records(proc.stderr) if r["message"].startswith("ran ")]
    assert {r["step"] for r in ran} == {"start", "finish"}
    for entry in ran:
        assert entry["process"] == "cli" and entry["worker_id"] == "embedded"
        assert entry["command_id"].startswith(entry["execution_id"] + "/")


def test_the_cli_logs_text_when_asked(tmp_path: Path) -> None:
    playbook = tmp_path / "logged.yaml"
    playbook.write_text(HELLO)
    proc = subprocess.run(
        [sys.executable, "-m", "noetl_site.cli", "run", str(playbook)],
        env=_env(tmp_path, "text"),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert _records(proc.stderr) == []
    assert " INFO noetl.workers.worker ran " in proc.stderr
    assert "step=start" in proc.stderr and "worker=embedded" in proc.stderr


def test_the_scheduler_process_logs_an_expired_lease_with_its_run(
    transactional_db: None, tmp_path: Path
) -> None:
    version, _ = catalog.register(HELLO)
    execution, _ = service.start_execution(version.path)
    [task] = service.claim("w-gone", pool="default", ttl_s=-1)
    database = connection.settings_dict["NAME"]
    env = _env(tmp_path, "json")
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"

    proc = subprocess.run(
        [sys.executable, "manage.py", "runscheduler", "--once"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # Every line is a log record on stderr (README: `2>&1 | jq` works).
    assert proc.stdout == ""
    assert any(r["message"].startswith("scheduler: duties every") for r in _records(proc.stderr))

    [expired] = [r for r in _records(proc.stderr) if "expired" in r["message"]]
    assert expired["process"] == "runscheduler" and expired["level"] == "warning"
    assert expired["execution_id"] == execution.id
    assert expired["command_id"] == task["command_id"]
    assert Command.objects.get(id=task["command_id"]).delivery == 2


def test_gunicorn_logs_its_own_lines_through_the_same_json_formatter(
    tmp_path: Path,
) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "NOETL_LOG_FORMAT": "json", "NOETL_HOME": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:noetl_site.gunicorn_conf",
            "noetl_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--no-control-socket",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.2)
    finally:
        web.terminate()
        _, err = web.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["message"].startswith("Booting worker") for line in lines)
    # Every line parsed as JSON above, gunicorn's own included.
    assert all(line["logger"].startswith(("gunicorn.", "noetl")) for line in lines)
    assert all(line["process"] == "web" for line in lines)
