"""A real distributed stack for the tests in this folder: gunicorn, workers
and the scheduler as separate processes over the local PostgreSQL and NATS,
with short timers so faults resolve in seconds. Tests drive it through the
REST API and the CLI, and read the event log straight from its database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from noetl_site.devstack import REPO, DevStack

PG = os.environ.get("NOETL_TEST_PG", "postgres://postgres@127.0.0.1:5432")
PLAYBOOKS = REPO / "tests" / "playbooks" / "distributed"
FAST_TIMERS = {
    "NOETL_LEASE_TTL_S": "4",
    "NOETL_HEARTBEAT_S": "1",
    "NOETL_IDLE_POLL_S": "1",
    "NOETL_DUTY_INTERVAL_S": "0.5",
    "NOETL_REPAIR_AFTER_S": "2",
}


class Driver:
    """What a test needs from a running stack."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.dsn = f"{stack.pg}/{stack.database}"
        self.http = httpx.Client(base_url=stack.url, timeout=30.0,
                                 headers={"Authorization": f"Bearer {stack.token}"})

    def noetl(self, *args: str, server: bool = True, timeout: float = 300
              ) -> subprocess.CompletedProcess:
        """The CLI against the stack; with ``server=False`` it works on the
        stack's database directly (registration, credentials)."""
        env = self.stack.client_env()
        if not server:
            env["DATABASE_URL"] = self.dsn
            env.pop("NOETL_SERVER", None)
        return subprocess.run([sys.executable, "-m", "noetl_site.cli", *args], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def register(self, *files: Path) -> None:
        proc = self.noetl("register", *map(str, files), server=False)
        assert proc.returncode == 0, proc.stderr

    def credential(self, name: str, data: str) -> None:
        proc = self.noetl("credential", "add", name, "--type", "postgres", "--data", data,
                          server=False)
        assert proc.returncode == 0, proc.stderr

    def start(self, path: str, payload: dict[str, Any] | None = None) -> str:
        response = self.http.post("/api/executions/", json={"path": path,
                                                              "payload": payload or {}})
        assert response.status_code in (200, 201), response.text
        body = response.json()
        return body.get("id") or body["execution_id"]

    def sql(self, query: str, *params: Any) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def statuses(self, ids: list[str]) -> dict[str, str]:
        rows = self.sql("select id::text, status from executions_execution "
                        "where id::text = any(%s)", ids)
        return dict(rows)

    def wait(self, ids: list[str], timeout: float = 120.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses(ids)
            if all(statuses.get(i) not in (None, "running") for i in ids):
                return statuses
            if time.monotonic() > deadline:
                running = [i for i in ids if statuses.get(i) == "running"]
                pytest.fail(f"{len(running)} of {len(ids)} run(s) still running after "
                            f"{timeout}s; logs in {self.stack.log_dir}")
            time.sleep(0.2)

    def completions_once(self, ids: list[str]) -> None:
        """Every command's completion is recorded exactly once."""
        twice = self.sql(
            "select execution_id::text, command_id, count(*) from executions_event "
            "where kind in ('call.done', 'call.error', 'loop.chunk.done') "
            "and execution_id::text = any(%s) group by 1, 2 having count(*) > 1", ids)
        assert twice == [], f"commands completed more than once: {twice[:5]}"
        open_commands = self.sql(
            "select id, state from executions_command where execution_id::text = any(%s) "
            "and state in ('queued', 'running', 'waiting')", ids)
        assert open_commands == [], f"commands left open: {open_commands[:5]}"

    def worker_id(self, proc: subprocess.Popen, timeout: float = 20.0) -> str:
        """The id of a worker process's registration; a worker that was just
        started registers a moment later, so this waits for it."""
        name = proc.name  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql("select id from workers_workerregistration where name = %s "
                            "and status = 'active' order by registered_at desc limit 1",
                            name)
            if rows:
                return rows[0][0]
            if time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not register within {timeout}s; "
                            f"logs in {self.stack.log_dir}")
            time.sleep(0.1)


def _stack(name: str, tmp: Path, **options: Any) -> DevStack:
    env = {**FAST_TIMERS, **options.pop("env", {})}
    return DevStack(database=f"noetl_test_{name}_{uuid.uuid4().hex[:8]}", pg=PG,
                    home=tmp / name, fresh=True, env=env, **options)


def _drop(stack: DevStack) -> None:
    with psycopg.connect(f"{stack.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{stack.database}" with (force)')


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Driver]:
    stack = _stack("dist", tmp_path_factory.mktemp("stack"), workers=2, concurrency=4)
    try:
        stack.start()
        yield Driver(stack)
    finally:
        stack.stop()
        _drop(stack)


@pytest.fixture(scope="module")
def scratch_pg(stack: Driver) -> str:
    """A scratch database for the playbooks' own SQL, with a credential."""
    name = f"{stack.stack.database}_data"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    stack.credential("fault_pg", (
        '{"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", '
        f'"database": "{name}"}}'))
    yield f"{PG}/{name}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def make_stack(name: str, tmp: Path, **options: Any) -> DevStack:
    return _stack(name, tmp, **options)


def drop_stack(stack: DevStack) -> None:
    _drop(stack)
