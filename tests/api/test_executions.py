"""Starting, listing, reading, following, cancelling and re-running runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from executions import service
from executions.models import Event, Execution, IdempotencyKey


def test_it_starts_a_run_and_answers_with_its_id_at_once(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register("tests/api/hello")
    response = api.post(
        "/api/executions/",
        {"path": "tests/api/hello", "payload": {"n": 5}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "running" and body["version"] == 1
    assert body["trigger"] == {"kind": "api", "user": "owner"}
    execution = Execution.objects.get(id=body["id"])
    assert execution.commands.filter(state="queued").count() == 1


def test_it_answers_404_for_an_unknown_playbook(api: APIClient) -> None:
    response = api.post("/api/executions/", {"path": "tests/none"}, format="json")
    assert response.status_code == 404 and "tests/none" in response.json()["detail"]


def test_it_refuses_a_payload_that_is_not_an_object(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register()
    response = api.post(
        "/api/executions/", {"path": "tests/api/hello", "payload": [1]}, format="json"
    )
    assert response.status_code == 400 and "payload" in response.json()


def test_it_returns_the_same_run_for_a_repeated_idempotency_key(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register()
    body = {"path": "tests/api/hello", "payload": {"n": 2}}
    first = api.post(
        "/api/executions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = api.post(
        "/api/executions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Execution.objects.count() == 1

    other = api.post(
        "/api/executions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_it_refuses_a_key_reused_for_a_different_request(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register()
    api.post(
        "/api/executions/",
        {"path": "tests/api/hello"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    response = api.post(
        "/api/executions/",
        {"path": "tests/api/hello", "payload": {"n": 9}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 409


def test_it_keeps_idempotency_keys_per_user(
    api: APIClient, register: Callable[..., Any]
) -> None:
    from django.contrib.auth.models import User

    from tests.grants import grant_everything

    register()
    body = {"path": "tests/api/hello"}
    mine = api.post("/api/executions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    other = APIClient()
    other.force_authenticate(grant_everything(User.objects.create_user("other")))
    theirs = other.post(
        "/api/executions/", body, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != mine.json()["id"]
    assert IdempotencyKey.objects.count() == 2


def test_it_pages_runs_newest_first_by_cursor(
    api: APIClient, start: Callable[..., Any]
) -> None:
    ids = [start()["id"] for _ in range(5)]
    first = api.get("/api/executions/", {"limit": 2}).json()
    assert [r["id"] for r in first["results"]] == ids[::-1][:2]
    second = api.get(
        "/api/executions/", {"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    third = api.get(
        "/api/executions/", {"limit": 2, "cursor": second["next_cursor"]}
    ).json()
    assert [r["id"] for r in second["results"] + third["results"]] == ids[::-1][2:]
    assert third["next_cursor"] is None


def test_it_filters_runs_by_status_path_and_time(
    api: APIClient, start: Callable[..., Any]
) -> None:
    hello = start("tests/api/hello")["id"]
    other = start("tests/api/other")["id"]
    service.cancel(other)
    by_status = api.get("/api/executions/", {"status": "cancelled"}).json()["results"]
    assert [r["id"] for r in by_status] == [other]
    by_path = api.get("/api/executions/", {"path": "tests/api/hello"}).json()["results"]
    assert [r["id"] for r in by_path] == [hello]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert api.get("/api/executions/", {"since": later}).json()["results"] == []
    assert api.get("/api/executions/", {"since": "yesterday"}).status_code == 400
    assert api.get("/api/executions/", {"status": "asleep"}).status_code == 400


def test_it_shows_one_run_with_steps_and_full_detail(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start(payload={"n": 3})
    body = api.get(f"/api/executions/{run['id']}/").json()
    assert body["status"] == "running" and body["ended_at"] is None
    assert body["steps"]["start"]["status"] == "running"
    assert (
        body["steps"]["start"]["runs"] == 1 and "result" not in body["steps"]["start"]
    )
    full = api.get(f"/api/executions/{run['id']}/", {"detail": "full"}).json()
    assert full["steps"]["start"]["result"] is None
    assert api.get("/api/executions/nope/").status_code == 404


def test_it_pages_events_in_seq_order(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run = start()
    service.cancel(run["id"])
    total = Event.objects.filter(execution_id=run["id"]).count()
    assert total >= 3

    first = api.get(f"/api/executions/{run['id']}/events/", {"limit": 2}).json()
    assert [e["seq"] for e in first["results"]] == [1, 2]
    assert first["results"][0]["kind"] == "execution.started"
    rest = api.get(
        f"/api/executions/{run['id']}/events/", {"after_seq": first["next_after_seq"]}
    ).json()
    assert [e["seq"] for e in rest["results"]] == list(range(3, total + 1))
    assert rest["results"][-1]["kind"] == "execution.cancelled"
    assert rest["status"] == "cancelled"
    empty = api.get(f"/api/executions/{run['id']}/events/", {"after_seq": total}).json()
    assert empty["results"] == [] and empty["next_after_seq"] is None


def test_it_cancels_a_run_and_its_running_children(
    api: APIClient, start: Callable[..., Any], register: Callable[..., Any]
) -> None:
    parent = Execution.objects.get(id=start()["id"])
    register("tests/api/child")
    child, _ = service.start_execution(
        "tests/api/child", parent=parent, trigger={"kind": "parent"}
    )
    grandchild, _ = service.start_execution(
        "tests/api/child", parent=child, trigger={"kind": "parent"}
    )

    response = api.post(
        f"/api/executions/{parent.id}/cancel/", {"reason": "enough"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["cancelled"][0] == parent.id
    assert set(body["cancelled"][1:]) == {child.id, grandchild.id}
    assert body["execution"]["status"] == "cancelled"
    statuses = dict(Execution.objects.values_list("id", "status"))
    assert {statuses[i] for i in (parent.id, child.id, grandchild.id)} == {"cancelled"}
    ended = Event.objects.get(execution=parent, kind="execution.cancelled")
    assert ended.payload["reason"] == "enough" and ended.payload["by"] == "owner"

    again = api.post(f"/api/executions/{parent.id}/cancel/")
    assert again.status_code == 409


def test_it_reruns_with_the_same_version_and_payload(
    api: APIClient, register: Callable[..., Any], start: Callable[..., Any]
) -> None:
    original = start(payload={"n": 7})
    register("tests/api/hello", n=2)  # a newer version must not be picked
    response = api.post(f"/api/executions/{original['id']}/rerun/")
    assert response.status_code == 201
    again = response.json()
    assert again["id"] != original["id"] and again["version"] == original["version"]
    assert again["trigger"]["kind"] == "rerun"
    assert again["trigger"]["rerun_of"] == original["id"]
    started = Event.objects.get(execution_id=again["id"], kind="execution.started")
    assert started.payload["workload"]["n"] == 7


def test_it_reruns_a_run_started_without_a_recorded_input(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register()
    execution, _ = service.start_execution(
        "tests/api/hello", payload={"n": 4, "x": "y"}, trigger={"kind": "cli"}
    )
    again = api.post(f"/api/executions/{execution.id}/rerun/").json()
    started = Event.objects.get(execution_id=again["id"], kind="execution.started")
    assert started.payload["trigger"]["input"] == {"n": 4, "x": "y"}
