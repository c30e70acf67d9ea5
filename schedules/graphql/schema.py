"""Schedules in GraphQL: read them with their fires; create, change,
delete, pause, resume and run them now. Writes share the REST API's rules
(``Schedule.save_checked``); a refused write is a GraphQL error whose
message names each field and whose ``extensions.fields`` maps them."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry
import strawberry_django
from django.conf import settings
from django.core.exceptions import ValidationError
from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info

from noetl_site import access
from noetl_site.graphql_tools import caller, require
from schedules import duty
from schedules.graphql.types import (
    ScheduleFireType,
    ScheduleInput,
    SchedulePatch,
    ScheduleType,
)
from schedules.models import Schedule, owner_of


class IsAuthenticatedUnlessDisabled(BasePermission):
    message = "authentication required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if settings.NOETL_AUTH_DISABLED:
            return True
        user = getattr(info.context.request, "user", None)
        return bool(user and user.is_authenticated)


ALLOWED = [IsAuthenticatedUnlessDisabled]


def _schedule(info: Info, schedule_id: strawberry.ID, action: str) -> Schedule:
    """The schedule, once the caller may ``action`` (view or execute) its
    playbook; changing a schedule needs execute, as it starts runs."""
    schedule = Schedule.objects.filter(id=schedule_id).first()
    if schedule is None:
        raise GraphQLError(f"no schedule {schedule_id}")
    user = caller(info)
    require(access.can_view(user, schedule.path), f"view {schedule.path}")
    if action == "execute":
        require(access.can_execute(user, schedule.path), f"execute {schedule.path}")
    return schedule


def _check_target(info: Info, values: dict[str, Any]) -> None:
    path = values.get("path")
    if path:
        require(access.can_execute(caller(info), path), f"execute {path}")


def _save(schedule: Schedule, values: dict[str, Any]) -> Schedule:
    for name, value in values.items():
        setattr(schedule, name, {} if name == "payload" and value is None else value)
    try:
        schedule.save_checked(duty.db_now())
    except ValidationError as exc:
        text = "; ".join(
            f"{field}: {' '.join(problems)}"
            for field, problems in exc.message_dict.items()
        )
        raise GraphQLError(text, extensions={"fields": exc.message_dict}) from None
    return schedule


@strawberry.type
class Query:
    @strawberry_django.field(permission_classes=ALLOWED)
    def schedules(self, info: Info) -> list[ScheduleType]:
        rows = Schedule.objects.order_by("name")
        return access.viewable(caller(info), rows)  # type: ignore[return-value]

    @strawberry_django.field(permission_classes=ALLOWED)
    def schedule(self, info: Info, id: strawberry.ID) -> ScheduleType | None:
        if not Schedule.objects.filter(id=id).exists():
            return None
        return _schedule(info, id, "view")  # type: ignore[return-value]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=ALLOWED)
    def create_schedule(self, info: Info, data: ScheduleInput) -> ScheduleType:
        values = dataclasses.asdict(data)
        _check_target(info, values)
        values["owner"] = owner_of(caller(info))
        return _save(Schedule(), values)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def update_schedule(
        self, info: Info, id: strawberry.ID, data: SchedulePatch
    ) -> ScheduleType:
        changes = {
            name: value
            for name, value in vars(data).items()
            if value is not strawberry.UNSET
        }
        schedule = _schedule(info, id, "execute")
        _check_target(info, changes)
        changes["owner"] = owner_of(caller(info))
        return _save(schedule, changes)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def delete_schedule(self, info: Info, id: strawberry.ID) -> bool:
        _schedule(info, id, "execute").delete()
        return True

    @strawberry.mutation(permission_classes=ALLOWED)
    def pause_schedule(self, info: Info, id: strawberry.ID) -> ScheduleType:
        schedule = _schedule(info, id, "execute")
        schedule.pause()
        return schedule  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def resume_schedule(self, info: Info, id: strawberry.ID) -> ScheduleType:
        schedule = _schedule(info, id, "execute")
        schedule.resume(duty.db_now())
        return schedule  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def run_schedule_now(self, info: Info, id: strawberry.ID) -> ScheduleFireType:
        schedule = _schedule(info, id, "execute")
        return duty.run_now(schedule, duty.db_now())  # type: ignore[return-value]
