"""Runtimes over GraphQL: worker pools and registered workers."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry.scalars import JSON

from workers.models import Pool, WorkerRegistration


@strawberry_django.type(Pool, name="Pool")
class PoolType:
    name: str
    created_at: datetime


@strawberry_django.type(WorkerRegistration, name="Worker")
class WorkerType:
    id: strawberry.ID
    name: str
    pool: str
    capacity: int
    version: str
    labels: JSON
    host: str
    status: str
    registered_at: datetime
    last_seen_at: datetime | None
    deregistered_at: datetime | None

    @strawberry_django.field(only=["last_seen_at"])
    def heartbeat_age_s(self, root: WorkerRegistration) -> float | None:
        return root.heartbeat_age_s()

    @strawberry_django.field(
        only=["status", "last_seen_at", "registered_at"],
        description="live, stale (active but silent for a while) or gone "
        "(deregistered, or silent past NOETL_WORKER_GONE_AFTER_S)",
    )
    def liveness(self, root: WorkerRegistration) -> str:
        return root.liveness()
