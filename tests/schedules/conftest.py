"""Schedules on the real PostgreSQL, with a clock the tests move by hand.

Runs start without any worker: they stay running with their first commands
queued, which is what the concurrency policies need to see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from catalog import services as catalog
from schedules.models import Schedule
from tests.api.conftest import (  # noqa: F401  (fixtures, used by name)
    _encryption_key,
    anonymous,
    api,
    owner,
    playbook_yaml,
    token,
)

PATH = "tests/schedules/hello"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The scheduler's clock in tests: it only moves when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def playbook(db: None) -> str:
    catalog.register(playbook_yaml(PATH))
    return PATH


def make_schedule(now: datetime = T0, **fields: Any) -> Schedule:
    """A valid schedule, planned from ``now``; fields override the defaults."""
    values: dict[str, Any] = {
        "name": f"every-minute-{Schedule.objects.count() + 1}",
        "path": PATH,
        "interval_s": None if "cron" in fields else 60,
        **fields,
    }
    schedule = Schedule(**values)
    schedule.full_clean()
    schedule.plan(now)
    schedule.save()
    return schedule


@pytest.fixture
def schedule_factory(playbook: str) -> Callable[..., Schedule]:
    return make_schedule
