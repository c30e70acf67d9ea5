"""Runs that act for a user: sub-playbooks go with the root run's user's
permissions, and credential scopes hold in embedded mode as distributed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import AuditEntry
from catalog import services as catalog
from credentials.store import save_credential
from executions import control
from executions.embedded import EmbeddedRuntime
from executions.models import Execution
from tests.grants import grant

PARENT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: parent, path: sec/allowed/parent}
workflow:
  - step: start
    tool: {kind: playbook, path: CHILD, return_step: start}
"""
CHILD = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: child, path: CHILD}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'child': True}"}
"""
USES_CREDENTIAL = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: user, path: marketing/export}
workflow:
  - step: start
    tool: {kind: python, auth: fin_pg, code: "result = sorted(auth)"}
"""


def _run_as(user: User, child: str) -> Execution:
    catalog.register(CHILD.replace("CHILD", child))
    catalog.register(PARENT.replace("CHILD", child))
    with EmbeddedRuntime(workers=1) as runtime:
        run, _ = runtime.write(control.start, "sec/allowed/parent", None, {}, user=user)
        runtime.wait(run.id, timeout=60)
    return Execution.objects.get(id=run.id)


@pytest.mark.django_db(transaction=True)
def test_a_sub_playbook_runs_only_if_the_root_runs_user_may_execute_it() -> None:
    user = User.objects.create_user("runner")
    grant(user, "sec/*", modify=False)

    allowed = _run_as(user, "sec/allowed/child")
    assert allowed.status == "completed", allowed.error
    assert allowed.owner == "runner"
    assert allowed.children.get().owner == "runner"

    refused = _run_as(user, "other/child")
    assert refused.status == "failed"
    text = str(refused.error)
    assert "may not execute sub-playbook other/child" in text
    assert not Execution.objects.filter(path="other/child").exists()
    audited = AuditEntry.objects.get(action="subplaybook.refused")
    assert audited.actor == "user:runner" and audited.target == "other/child"


@pytest.mark.django_db(transaction=True)
def test_embedded_a_step_outside_a_credentials_scope_fails_as_a_credential_error() -> (
    None
):
    save_credential("fin_pg", "postgres", {"password": "pw-fin-123"}, "", ["finance/*"])
    catalog.register(USES_CREDENTIAL)
    with EmbeddedRuntime(workers=1) as runtime:
        run_id = runtime.start_run("marketing/export")
        assert runtime.wait(run_id, timeout=60) == "failed"
    run = Execution.objects.get(id=run_id)
    assert run.error["kind"] == "credential", run.error
    assert (
        "credential fin_pg is not available to playbook marketing/export"
        in (run.error["message"])
    )
    refused = AuditEntry.objects.get(action="credential.read")
    assert not refused.allowed and refused.actor == "worker:embedded"


@pytest.mark.django_db
def test_a_schedule_runs_as_its_owner_until_their_grant_goes() -> None:
    from rest_framework.test import APIClient

    from accounts.models import PathGrant
    from schedules import duty
    from schedules.models import FireStatus, Schedule
    from tests.api.conftest import playbook_yaml

    catalog.register(playbook_yaml("sec/allowed/nightly"))
    user = User.objects.create_user("planner")
    grant(user, "sec/*", modify=False)
    api = APIClient()
    api.force_authenticate(user)
    made = api.post(
        "/api/schedules/",
        {"name": "nightly", "path": "sec/allowed/nightly", "interval_s": 3600},
        format="json",
    )
    assert made.status_code == 201 and made.json()["owner"] == "planner"
    schedule = Schedule.objects.get(name="nightly")

    started = duty.run_now(schedule, duty.db_now())
    assert started.execution is not None and started.execution.owner == "planner"

    PathGrant.objects.all().delete()
    refused = duty.run_now(schedule, duty.db_now())
    assert refused.status == FireStatus.FAILED and refused.execution is None
    assert (
        refused.reason == "its owner planner may no longer execute sec/allowed/nightly"
    )
