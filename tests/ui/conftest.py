"""Personas and runs for the browser UI tests (real PostgreSQL).

Runs start without any worker; ``work`` plays the worker's side of the
protocol (claim, then report) through ``executions.service``, so a test
gets a finished run, with results and captured output, in milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from catalog import services as catalog
from executions import control, service
from executions.models import Execution
from tests.api.conftest import KEY, playbook_yaml
from tests.grants import grant

TWO_STEPS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: two, path: tests/ui/two}
workload: {n: 2, label: plain}
workflow:
  - step: start
    tool: {kind: python, input: {n: '{{ n }}'}, code: "result = {'n': n}"}
    next: [{step: finish}]
  - step: finish
    tool: {kind: python, code: "result = 'done'"}
"""


@pytest.fixture(autouse=True)
def _encryption_key(settings: Any) -> Iterator[None]:
    from credentials import crypto

    settings.NOETL_ENCRYPTION_KEY = KEY
    crypto.current_key.cache_clear()
    yield
    crypto.current_key.cache_clear()


@pytest.fixture
def member(db: None) -> User:
    """A signed-in user whose group may view, run and change ``tests/*``."""
    user = User.objects.create_user("member", password="pw")
    grant(user, "tests/*")
    return user


@pytest.fixture
def browser(member: User) -> Client:
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def two_steps(db: None) -> str:
    catalog.register(TWO_STEPS)
    return "tests/ui/two"


@pytest.fixture
def start(db: None) -> Callable[..., Execution]:
    def start(
        path: str = "tests/ui/hello",
        payload: dict[str, Any] | None = None,
        **trigger: Any,
    ) -> Execution:
        if path == "tests/ui/hello":
            catalog.register(playbook_yaml(path))
        execution, _ = control.start(
            path, None, payload or {}, user=None, trigger=trigger or None
        )
        return execution

    return start


def work(execution: Execution, *, fail: str = "", log: str = "") -> None:
    """Play a worker until the run ends: every command succeeds with a
    result naming its step, except the step ``fail``, which errs."""
    for _ in range(20):
        tasks = service.claim("test-worker", pool="default", limit=10)
        tasks = [t for t in tasks if t["execution_id"] == execution.id]
        if not tasks:
            break
        for task in tasks:
            step = task["step_def"]["name"]
            report: dict[str, Any] = {
                "command_id": task["command_id"],
                "delivery": task["delivery"],
                "status": "ok",
                "result": {"step": step},
            }
            if log:
                report["log"] = f"{log} from {step}\n"
            if step == fail:
                report.update(
                    status="error",
                    result=None,
                    error={
                        "kind": "python",
                        "message": f"{step} broke: ZeroDivisionError",
                        "retryable": False,
                    },
                )
            service.report(report, "test-worker")
            service.settle()
    execution.refresh_from_db()
