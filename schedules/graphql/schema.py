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

from schedules import duty
from schedules.graphql.types import (
    ScheduleFireType,
    ScheduleInput,
    SchedulePatch,
    ScheduleType,
)
from schedules.models import Schedule


class IsAuthenticatedUnlessDisabled(BasePermission):
    message = "authentication required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if settings.NOETL_AUTH_DISABLED:
            return True
        user = getattr(info.context.request, "user", None)
        return bool(user and user.is_authenticated)


ALLOWED = [IsAuthenticatedUnlessDisabled]


def _schedule(schedule_id: strawberry.ID) -> Schedule:
    schedule = Schedule.objects.filter(id=schedule_id).first()
    if schedule is None:
        raise GraphQLError(f"no schedule {schedule_id}")
    return schedule


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
    schedules: list[ScheduleType] = strawberry_django.field(permission_classes=ALLOWED)

    @strawberry_django.field(permission_classes=ALLOWED)
    def schedule(self, id: strawberry.ID) -> ScheduleType | None:
        return Schedule.objects.filter(id=id).first()  # type: ignore[return-value]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=ALLOWED)
    def create_schedule(self, data: ScheduleInput) -> ScheduleType:
        return _save(Schedule(), dataclasses.asdict(data))  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def update_schedule(self, id: strawberry.ID, data: SchedulePatch) -> ScheduleType:
        changes = {
            name: value
            for name, value in vars(data).items()
            if value is not strawberry.UNSET
        }
        return _save(_schedule(id), changes)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def delete_schedule(self, id: strawberry.ID) -> bool:
        _schedule(id).delete()
        return True

    @strawberry.mutation(permission_classes=ALLOWED)
    def pause_schedule(self, id: strawberry.ID) -> ScheduleType:
        schedule = _schedule(id)
        schedule.pause()
        return schedule  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def resume_schedule(self, id: strawberry.ID) -> ScheduleType:
        schedule = _schedule(id)
        schedule.resume(duty.db_now())
        return schedule  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=ALLOWED)
    def run_schedule_now(self, id: strawberry.ID) -> ScheduleFireType:
        return duty.run_now(_schedule(id), duty.db_now())  # type: ignore[return-value]
