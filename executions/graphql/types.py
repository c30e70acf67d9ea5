"""The executions' GraphQL types: runs, their events and step runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry.scalars import JSON

from catalog.graphql.types import PlaybookVersionType
from executions import queries
from executions.models import Event, Execution, StepRun


@strawberry_django.type(StepRun, name="StepRun")
class StepRunType:
    """A step's summary from the step_run projection (never a fold of events)."""

    step: str
    status: str
    runs: int
    started_at: datetime | None
    ended_at: datetime | None
    iterations: int
    failed_iterations: int
    error: JSON | None

    @classmethod
    def get_queryset(
        cls, queryset: QuerySet[StepRun], info: Any, **kwargs: Any
    ) -> QuerySet[StepRun]:
        # The order steps were first reached, as the REST run document lists them.
        return queryset.order_by("id")


@strawberry_django.type(Execution, name="Execution")
class ExecutionType:
    id: strawberry.ID
    path: str
    version: int
    status: str
    created_at: datetime
    ended_at: datetime | None
    result: JSON | None
    error: JSON | None
    playbook: PlaybookVersionType
    step_runs: list[StepRunType]

    @strawberry_django.field(only=["parent_id"])
    def parent(self, root: Execution) -> strawberry.ID | None:
        """The id of the run that started this one as a sub-playbook."""
        return root.parent_id  # type: ignore[return-value]

    @strawberry_django.field(only=["created_at", "ended_at"])
    def duration_ms(self, root: Execution) -> float | None:
        return queries.duration_ms(root.created_at, root.ended_at)


@strawberry.type
class ExecutionPage:
    """A page of runs, newest first, keyset-paged on the id (UUIDv7)."""

    rows: strawberry.Private[QuerySet[Execution]]
    size: strawberry.Private[int]

    @strawberry.field
    def results(self) -> list[ExecutionType]:
        # Left unevaluated: the optimizer adds the columns and relations the
        # query selected, then fetches the page in one go.
        return self.rows[: self.size]  # type: ignore[return-value]

    @strawberry.field(description="Pass as `cursor` for the next page.")
    def next_cursor(self) -> strawberry.ID | None:
        # The id of the page's last row when the page is full: one small read
        # of ids, so the cursor costs the same whatever the page selected.
        last = self.rows.values_list("id", flat=True)[self.size - 1 : self.size]
        return next(iter(last), None)  # type: ignore[return-value]


@strawberry_django.type(Event, name="Event")
class EventType:
    seq: int
    ts: datetime
    kind: str
    step: str
    command_id: str
    status: str
    delivery: int | None
    worker_id: str
    duration_ms: float | None
    payload: JSON
    error: JSON | None


@strawberry.type
class EventPage:
    status: str = strawberry.field(
        description="The run's status, read before the events: when it is "
        "terminal and the page is not full, the page ends the log."
    )
    results: list[EventType]
    next_after_seq: int | None


@strawberry.type
class StepResult:
    """A step run with its result (the step's variable in the run's state)."""

    step: str
    status: str
    runs: int
    started_at: datetime | None
    ended_at: datetime | None
    iterations: int
    failed_iterations: int
    error: JSON | None
    result: JSON | None


@strawberry.type
class Cancelled:
    cancelled: list[strawberry.ID] = strawberry.field(
        description="The run, then its descendants cancelled."
    )
    execution: ExecutionType
