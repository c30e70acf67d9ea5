"""Runs over GraphQL: list and read them, page their events, read step
results; start, cancel and re-run. Writes go through ``executions.control``
and reads through ``executions.queries``, as for the REST API."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from catalog.services import PlaybookNotFound
from executions import control, queries
from executions.graphql.types import (
    Cancelled,
    EventPage,
    ExecutionPage,
    ExecutionType,
    StepResult,
)
from executions.models import Execution, Status
from noetl_site import access
from noetl_site.graphql_tools import caller, not_found, page_size, require

StatusEnum = strawberry.enum(Status, name="ExecutionStatus")


def _execution(execution_id: str) -> Execution:
    execution = Execution.objects.filter(id=execution_id).first()
    if execution is None:
        raise not_found(f"execution {execution_id}")
    return execution


def _conflict(exc: Exception) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": "CONFLICT"})


@strawberry.type
class Query:
    @strawberry.field(description="Runs, newest first; keyset-paged by `cursor`.")
    def executions(
        self,
        info: Info,
        status: StatusEnum | None = None,  # type: ignore[valid-type]
        path: str = "",
        since: datetime | None = None,
        parent: strawberry.ID | None = None,
        cursor: strawberry.ID | None = None,
        limit: int | None = None,
    ) -> ExecutionPage:
        rows = queries.runs_queryset(
            status=status.value if status else "",
            path=path,
            since=since,
            parent=parent or "",
            before=cursor or "",
        )
        rows = access.viewable(caller(info), rows)
        return ExecutionPage(rows=rows, size=page_size(limit))

    @strawberry.field
    def execution(self, info: Info, id: strawberry.ID) -> ExecutionType | None:
        execution = Execution.objects.filter(id=id).first()
        if execution is None:
            return None
        require(access.can_view(caller(info), execution.path), f"view run {id}")
        return execution  # type: ignore[return-value]

    @strawberry.field(description="A run's events in seq order, from after_seq.")
    def events(
        self,
        info: Info,
        execution_id: strawberry.ID,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> EventPage:
        # The status is read first: a terminal status means the terminal
        # event is committed, so it is in this page or an earlier one.
        found = (
            Execution.objects.filter(id=execution_id)
            .values_list("status", "path")
            .first()
        )
        if found is None:
            raise not_found(f"execution {execution_id}")
        status, path = found
        require(access.can_view(caller(info), path), f"view run {execution_id}")

        rows = queries.events_page(execution_id, after_seq, page_size(limit, 200))
        return EventPage(
            status=status,
            results=rows,  # type: ignore[arg-type]
            next_after_seq=rows[-1].seq if rows else None,
        )

    @strawberry.field(
        description="Each step's summary and result, from the step_run "
        "projection and the run's state (large values resolved)."
    )
    def step_results(self, info: Info, execution_id: strawberry.ID) -> list[StepResult]:
        execution = _execution(execution_id)
        require(
            access.can_view(caller(info), execution.path), f"view run {execution_id}"
        )
        steps = queries.run_detail(execution, full=True)["steps"]
        return [StepResult(step=name, **entry) for name, entry in steps.items()]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a run; it answers at once.")
    def execute_playbook(
        self,
        info: Info,
        path: str,
        version: int | None = None,
        payload: JSON | None = None,
        idempotency_key: str = "",
    ) -> ExecutionType:
        user = caller(info)
        require(access.can_execute(user, path), f"execute {path}")
        if payload is not None and not isinstance(payload, dict):
            raise GraphQLError("payload must be a JSON object")
        try:
            execution, _ = control.start(
                path,
                version,
                payload or {},
                user=user,
                idempotency_key=idempotency_key,
            )
        except PlaybookNotFound as exc:
            raise GraphQLError(str(exc), extensions={"code": "NOT_FOUND"}) from None
        except control.Conflict as exc:
            raise _conflict(exc) from None
        return execution  # type: ignore[return-value]

    @strawberry.mutation(description="Cancel a run and its running sub-runs.")
    def cancel_execution(
        self, info: Info, id: strawberry.ID, reason: str = ""
    ) -> Cancelled:
        user = caller(info)
        execution = _execution(id)
        require(access.can_execute(user, execution.path), f"cancel run {id}")
        try:
            cancelled = control.cancel_tree(id, user=user, reason=reason)
        except control.Conflict as exc:
            raise _conflict(exc) from None
        execution.refresh_from_db()
        return Cancelled(cancelled=cancelled, execution=execution)  # type: ignore[arg-type]

    @strawberry.mutation(description="Start the same version with the same input.")
    def rerun_execution(
        self, info: Info, id: strawberry.ID, idempotency_key: str = ""
    ) -> ExecutionType:
        user = caller(info)
        original = _execution(id)
        require(access.can_execute(user, original.path), f"re-run run {id}")
        try:
            execution, _ = control.rerun(
                original, user=user, idempotency_key=idempotency_key
            )
        except PlaybookNotFound as exc:
            raise GraphQLError(str(exc), extensions={"code": "NOT_FOUND"}) from None
        except control.Conflict as exc:
            raise _conflict(exc) from None
        return execution  # type: ignore[return-value]
