"""GraphQL types of schedules and their fires (strawberry-graphql-django)."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry import auto
from strawberry.scalars import JSON

from schedules.duty import db_now
from schedules.models import Schedule, ScheduleFire


@strawberry_django.type(ScheduleFire)
class ScheduleFireType:
    id: auto
    fire_time: auto
    kind: str
    status: str
    reason: auto
    created_at: auto

    @strawberry_django.field(only=["execution_id"])
    def execution_id(self, root: ScheduleFire) -> str | None:
        return root.execution_id

    @strawberry_django.field(select_related=["execution"])
    def execution_status(self, root: ScheduleFire) -> str | None:
        return root.execution.status if root.execution_id else None


@strawberry_django.type(Schedule)
class ScheduleType:
    id: auto
    name: auto
    path: auto
    version: auto
    cron: auto
    interval_s: auto
    timezone: auto
    payload: JSON
    enabled: auto
    start_at: auto
    end_at: auto
    catchup: str
    max_catchup: auto
    concurrency: str
    next_run_at: auto
    last_fire_at: auto
    last_status: auto
    last_error: auto
    missed_fires: auto
    fires: list[ScheduleFireType] = strawberry_django.field(
        pagination=True,
        description="Its fires, newest first (page with pagination: {limit}).",
    )

    @strawberry_django.field(description="The next 5 fire times, from now.")
    def next_fires(self, root: Schedule) -> list[datetime]:
        return root.preview(db_now())


@strawberry.input
class ScheduleInput:
    name: str
    path: str
    version: int | None = None
    cron: str = ""
    interval_s: int | None = None
    timezone: str = "UTC"
    payload: JSON | None = None
    enabled: bool = True
    start_at: datetime | None = None
    end_at: datetime | None = None
    catchup: str = "latest"
    max_catchup: int = 10
    concurrency: str = "allow"


@strawberry.input
class SchedulePatch:
    """Only the fields given change."""

    name: str | None = strawberry.UNSET
    path: str | None = strawberry.UNSET
    version: int | None = strawberry.UNSET
    cron: str | None = strawberry.UNSET
    interval_s: int | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    payload: JSON | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    start_at: datetime | None = strawberry.UNSET
    end_at: datetime | None = strawberry.UNSET
    catchup: str | None = strawberry.UNSET
    max_catchup: int | None = strawberry.UNSET
    concurrency: str | None = strawberry.UNSET
