"""Transient variables of a run; each write is recorded in its event log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.test import APIClient

from executions import service
from executions.models import Event, Execution


def test_it_records_a_variable_write_as_an_event(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    before = Execution.objects.get(id=run["id"]).next_seq

    response = api.put(
        f"/api/executions/{run['id']}/variables/limit/", {"value": 10}, format="json"
    )
    assert response.status_code == 200 and response.json()["value"] == 10
    api.put(
        f"/api/executions/{run['id']}/variables/limit/",
        {"value": {"max": 20}},
        format="json",
    )

    execution = Execution.objects.get(id=run["id"])
    assert execution.next_seq == before + 2
    events = list(
        Event.objects.filter(execution=execution, kind="variable.set").order_by("seq")
    )
    assert [e.seq for e in events] == [before, before + 1]
    assert events[1].payload == {"name": "limit", "value": {"max": 20}, "by": "owner"}

    listed = api.get(f"/api/executions/{run['id']}/variables/").json()["results"]
    assert [(v["name"], v["value"]) for v in listed] == [("limit", {"max": 20})]
    one = api.get(f"/api/executions/{run['id']}/variables/limit/").json()
    assert one["value"] == {"max": 20}


def test_the_run_goes_on_numbering_events_after_a_variable_write(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    api.put(f"/api/executions/{run['id']}/variables/a/", {"value": None}, format="json")
    service.cancel(run["id"])
    seqs = list(
        Event.objects.filter(execution_id=run["id"])
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs == list(range(1, len(seqs) + 1))


def test_it_refuses_variable_writes_to_an_ended_run(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    service.cancel(run["id"])
    response = api.put(
        f"/api/executions/{run['id']}/variables/a/", {"value": 1}, format="json"
    )
    assert response.status_code == 409
    assert not Event.objects.filter(
        execution_id=run["id"], kind="variable.set"
    ).exists()


def test_it_requires_a_value(api: APIClient, start: Callable[..., Any]) -> None:
    run = start()
    response = api.put(f"/api/executions/{run['id']}/variables/a/", {}, format="json")
    assert response.status_code == 400
