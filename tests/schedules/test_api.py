"""Schedules over REST, GraphQL, the admin and the UI page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient
from strawberry_django.optimizer import DjangoOptimizerExtension

from schedules.graphql.schema import Mutation, Query
from schedules.models import Schedule
from tests.schedules.conftest import PATH


def create(api: APIClient, **fields: Any) -> Any:
    body = {"name": "nightly", "path": PATH, "cron": "0 2 * * *", **fields}
    return api.post("/api/schedules/", body, format="json")


@pytest.mark.django_db
def test_it_creates_lists_changes_and_deletes_a_schedule(
    api: APIClient, playbook: str
) -> None:
    created = create(api, timezone="Europe/Berlin", payload={"n": 3})
    assert created.status_code == 201, created.content
    schedule = created.json()
    assert schedule["next_run_at"] is not None and len(schedule["next_fires"]) == 5
    assert schedule["catchup"] == "latest" and schedule["concurrency"] == "allow"

    listed = api.get("/api/schedules/").json()["results"]
    assert [row["name"] for row in listed] == ["nightly"]

    url = f"/api/schedules/{schedule['id']}/"
    changed = api.patch(url, {"cron": "@hourly"}, format="json")
    assert changed.status_code == 200 and changed.json()["cron"] == "@hourly"

    assert api.delete(url).status_code == 204
    assert not Schedule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "is not a valid cron expression"),
        ({"timezone": "Mars/Base"}, "timezone", "unknown time zone 'Mars/Base'"),
        ({"path": "no/such"}, "path", "no playbook registered at path 'no/such'"),
        ({"cron": "", "interval_s": 0}, "interval_s", "positive number of seconds"),
        ({"cron": "", "interval_s": -5}, "interval_s", "positive number of seconds"),
        ({"interval_s": 60}, "cron", "not both"),
        ({"cron": ""}, "cron", "a cron expression or an interval"),
    ],
)
def test_it_explains_each_user_error(
    api: APIClient, playbook: str, fields: dict[str, Any], field: str, message: str
) -> None:
    response = create(api, **fields)
    assert response.status_code == 400
    assert any(message in text for text in response.json()[field]), response.json()


@pytest.mark.django_db
def test_pause_resume_run_now_and_fires(api: APIClient, playbook: str) -> None:
    url = f"/api/schedules/{create(api).json()['id']}/"

    paused = api.post(url + "pause/").json()
    assert paused["enabled"] is False
    resumed = api.post(url + "resume/").json()
    assert resumed["enabled"] is True and resumed["next_run_at"]

    fire = api.post(url + "run/")
    assert fire.status_code == 201 and fire.json()["kind"] == "manual"
    run = api.get(f"/api/executions/{fire.json()['execution']}/").json()
    assert run["trigger"]["kind"] == "schedule"
    assert run["trigger"]["schedule_id"] == resumed["id"]

    fires = api.get(url + "fires/").json()["results"]
    assert fires[0]["execution_status"] == "running"


@pytest.mark.django_db
def test_backfill_over_rest_pages_through_the_range_once(
    api: APIClient, playbook: str
) -> None:
    url = f"/api/schedules/{create(api, cron='0 * * * *').json()['id']}/backfill/"
    body = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T04:00:00Z", "limit": 3}

    first = api.post(url, body, format="json").json()
    rest = api.post(url, {**body, "start": first["next_from"]}, format="json").json()
    again = api.post(url, {**body, "limit": 10}, format="json").json()

    assert (first["created"], first["next_from"]) == (3, "2025-01-01T03:00:00Z")
    assert (rest["created"], rest["next_from"]) == (2, None)
    assert (again["created"], again["existing"]) == (0, 5)
    backwards = api.post(url, {**body, "end": "2024-01-01T00:00:00Z"}, format="json")
    assert backwards.status_code == 400 and "before its start" in str(backwards.json())


@pytest.mark.django_db
def test_it_refuses_anonymous_callers(anonymous: APIClient) -> None:
    assert anonymous.get("/api/schedules/").status_code in (401, 403)


# -- GraphQL --------------------------------------------------------------------


class Request:
    def __init__(self, user: User) -> None:
        self.user = user


def graphql(user: User, query: str, **variables: Any) -> Any:
    schema = strawberry.Schema(
        query=Query, mutation=Mutation, extensions=[DjangoOptimizerExtension]
    )
    context = type("Context", (), {"request": Request(user)})()
    return schema.execute_sync(query, variable_values=variables, context_value=context)


CREATE = """
mutation ($data: ScheduleInput!) {
  createSchedule(data: $data) { id name nextRunAt nextFires catchup }
}"""


@pytest.mark.django_db
def test_graphql_creates_pauses_resumes_and_runs_a_schedule(
    owner: User, playbook: str
) -> None:
    created = graphql(owner, CREATE, data={"name": "g", "path": PATH, "intervalS": 60})
    assert created.errors is None, created.errors
    schedule_id = created.data["createSchedule"]["id"]
    assert len(created.data["createSchedule"]["nextFires"]) == 5

    paused = graphql(
        owner, "mutation($id: ID!){pauseSchedule(id: $id){enabled}}", id=schedule_id
    )
    resumed = graphql(
        owner, "mutation($id: ID!){resumeSchedule(id: $id){enabled}}", id=schedule_id
    )
    ran = graphql(
        owner,
        "mutation($id: ID!){runScheduleNow(id: $id){kind executionStatus}}",
        id=schedule_id,
    )
    listed = graphql(
        owner,
        "{ schedules { name fires(pagination: {limit: 1}) { kind executionId } } }",
    )

    assert paused.data["pauseSchedule"]["enabled"] is False
    assert resumed.data["resumeSchedule"]["enabled"] is True
    assert ran.data["runScheduleNow"] == {
        "kind": "manual",
        "executionStatus": "running",
    }
    assert listed.errors is None, listed.errors
    assert listed.data["schedules"][0]["fires"][0]["executionId"]


@pytest.mark.django_db
def test_graphql_names_each_invalid_field(owner: User, playbook: str) -> None:
    data = {"name": "g", "path": PATH, "cron": "nope", "timezone": "Nowhere"}
    result = graphql(owner, CREATE, data=data)
    message = result.errors[0].message
    assert "cron: 'nope' is not a valid cron expression" in message
    assert "timezone: unknown time zone 'Nowhere'" in message


@pytest.mark.django_db
def test_graphql_updates_and_deletes(owner: User, playbook: str) -> None:
    created = graphql(owner, CREATE, data={"name": "g", "path": PATH, "cron": "@daily"})
    schedule_id = created.data["createSchedule"]["id"]
    updated = graphql(
        owner,
        "mutation($id: ID!, $data: SchedulePatch!)"
        "{updateSchedule(id: $id, data: $data){cron concurrency}}",
        id=schedule_id,
        data={"concurrency": "skip"},
    )
    deleted = graphql(
        owner, "mutation($id: ID!){deleteSchedule(id: $id)}", id=schedule_id
    )
    assert updated.data["updateSchedule"] == {"cron": "@daily", "concurrency": "skip"}
    assert deleted.data["deleteSchedule"] is True and not Schedule.objects.exists()


@pytest.mark.django_db
def test_graphql_refuses_anonymous_users(playbook: str) -> None:
    from django.contrib.auth.models import AnonymousUser

    result = graphql(AnonymousUser(), "{ schedules { name } }")  # type: ignore[arg-type]
    assert result.errors and "authentication required" in result.errors[0].message


# -- admin and UI ---------------------------------------------------------------


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    return client


@pytest.mark.django_db
def test_the_admin_previews_fires_and_refuses_a_bad_cron(
    admin_client: Client, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory(cron="0 9 * * *", timezone="America/New_York")
    page = admin_client.get(f"/admin/schedules/schedule/{schedule.id}/change/")
    assert page.status_code == 200
    assert page.content.decode().count("(America/New_York)</div>") == 5

    form = {
        "name": "bad",
        "path": PATH,
        "payload": "{}",
        "cron": "every day",
        "timezone": "UTC",
        "catchup": "latest",
        "max_catchup": "10",
        "concurrency": "allow",
        "enabled": "on",
    }
    refused = admin_client.post("/admin/schedules/schedule/add/", form)
    assert refused.status_code == 200
    assert "is not a valid cron expression" in refused.content.decode()

    saved = admin_client.post(
        "/admin/schedules/schedule/add/", {**form, "cron": "@daily"}
    )
    assert saved.status_code == 302
    assert Schedule.objects.get(name="bad").next_run_at is not None


@pytest.mark.django_db
def test_the_schedules_page_shows_next_fire_and_last_runs(
    admin_client: Client, schedule_factory: Callable[..., Schedule]
) -> None:
    from schedules import duty
    from tests.schedules.conftest import T0

    schedule = schedule_factory()
    fire = duty.run_now(schedule, T0)
    page = admin_client.get("/schedules/").content.decode()
    assert schedule.name in page and "Next fire" in page
    assert fire.execution_id in page and "running" in page


def test_the_schedules_page_wants_a_login(client: Client, db: None) -> None:
    assert client.get("/schedules/").status_code == 302


@pytest.mark.django_db
def test_a_scheduled_run_names_its_trigger_in_the_run_list(
    api: APIClient, clock: Any, schedule_factory: Callable[..., Schedule]
) -> None:
    from executions.management.commands.runscheduler import Command
    from tests.schedules.conftest import T0

    schedule = schedule_factory()
    command = Command()
    command.clock = clock
    clock.now = schedule.next_run_at
    command.round()

    rows = api.get("/api/executions/").json()["results"]
    assert len(rows) == 1
    assert rows[0]["trigger"] == {
        "kind": "schedule",
        "schedule_id": schedule.id,
        "schedule": schedule.name,
        "fire_time": schedule.next_run_at.isoformat(),
        "fire_kind": "schedule",
        "idempotency_key": f"schedule:{schedule.id}:{schedule.next_run_at.isoformat()}",
    }
    assert T0 < schedule.next_run_at


@pytest.mark.django_db
def test_the_scheduler_clock_is_the_database_clock() -> None:
    from django.utils import timezone

    from schedules import duty

    assert abs((duty.db_now() - timezone.now()).total_seconds()) < 5
