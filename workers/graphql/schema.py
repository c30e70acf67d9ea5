"""Runtimes over GraphQL (read only): pools and their workers."""

from __future__ import annotations

import strawberry
from django.db.models import QuerySet
from strawberry.types import Info

from noetl_site import access
from noetl_site.graphql_tools import caller, page_size, require
from workers.graphql.types import PoolType, WorkerType
from workers.models import Pool, WorkerRegistration, WorkerStatus

WorkerStatusEnum = strawberry.enum(WorkerStatus, name="WorkerStatus")


@strawberry.type
class Query:
    @strawberry.field(description="Registered workers, newest first.")
    def workers(
        self,
        info: Info,
        pool: str = "",
        status: WorkerStatusEnum | None = None,  # type: ignore[valid-type]
        limit: int | None = None,
    ) -> list[WorkerType]:
        require(access.can_view(caller(info)), "view workers")
        rows: QuerySet[WorkerRegistration] = WorkerRegistration.objects.order_by(
            "-registered_at", "id"
        )
        if pool:
            rows = rows.filter(pool=pool)
        if status is not None:
            rows = rows.filter(status=status.value)
        return rows[: page_size(limit)]  # type: ignore[return-value]

    @strawberry.field
    def pools(self, info: Info) -> list[PoolType]:
        require(access.can_view(caller(info)), "view pools")
        return Pool.objects.order_by("name")  # type: ignore[return-value]
