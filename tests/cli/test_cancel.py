"""``noetl cancel`` in embedded mode, on the suite's database."""

from __future__ import annotations

import argparse

import pytest

from catalog import services as catalog
from executions import service
from executions.models import Execution
from noetl_site import cli
from tests.api.conftest import playbook_yaml


@pytest.fixture
def running(db: None) -> tuple[Execution, Execution]:
    catalog.register(playbook_yaml("tests/cli/cancel"))
    parent, _ = service.start_execution("tests/cli/cancel", trigger={"kind": "test"})
    child, _ = service.start_execution(
        "tests/cli/cancel", parent=parent, trigger={"kind": "parent"}
    )
    return parent, child


def cancel(execution_id: str) -> int:
    return cli.cmd_cancel(argparse.Namespace(execution_id=execution_id, reason=None))


def test_it_cancels_a_run_and_its_child(
    running: tuple[Execution, Execution], capsys: pytest.CaptureFixture[str]
) -> None:
    parent, child = running
    assert cancel(parent.id) == cli.EXIT_OK
    assert capsys.readouterr().out == (
        f"cancelled {parent.id}\ncancelled {child.id} (sub-playbook run)\n"
    )
    assert set(Execution.objects.values_list("status", flat=True)) == {"cancelled"}


def test_it_says_when_the_run_already_ended(
    running: tuple[Execution, Execution], capsys: pytest.CaptureFixture[str]
) -> None:
    parent, _ = running
    cancel(parent.id)
    capsys.readouterr()
    assert cancel(parent.id) == cli.EXIT_FAILED
    assert "already cancelled" in capsys.readouterr().err


def test_it_says_when_there_is_no_such_run(
    db: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cancel("nope") == cli.EXIT_NOT_FOUND
    assert "no execution nope" in capsys.readouterr().err
