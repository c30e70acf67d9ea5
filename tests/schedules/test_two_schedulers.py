"""Two scheduler copies side by side on the real PostgreSQL.

Each copy is a thread with its own database connection, stepping through
the same clock ticks at the same time (a barrier per tick), so both try to
claim every due schedule at once. Exactly one run per fire time may start.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from catalog import services as catalog
from executions.models import Event, Execution
from schedules import duty
from schedules.models import ScheduleFire
from tests.api.conftest import playbook_yaml
from tests.schedules.conftest import PATH, T0, Clock, make_schedule

SCHEDULES = 4
TICKS = 50  # 4 schedules x 50 ticks = 200 fire times


def copy(ticks: list, barrier: threading.Barrier, handled: list, errors: list) -> None:
    clock = Clock()
    try:
        for now in ticks:
            clock.now = now
            barrier.wait(timeout=60)
            handled.append(duty.fire_due(clock()))
    except Exception as exc:  # noqa: BLE001  (reported to the test thread)
        errors.append(exc)
        barrier.abort()
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_copies_start_exactly_one_run_per_fire_time() -> None:
    catalog.register(playbook_yaml(PATH))
    for n in range(SCHEDULES):
        make_schedule(name=f"race-{n}")
    ticks = [T0 + timedelta(minutes=k + 1) for k in range(TICKS)]
    barrier = threading.Barrier(2)
    errors: list[Exception] = []
    handled: list[list[int]] = [[], []]

    threads = [
        threading.Thread(target=copy, args=(ticks, barrier, handled[n], errors))
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not errors
    # No schedule was even claimed twice for one fire time: the unique fire
    # rows were never needed to turn a second copy away.
    split = [sum(counts) for counts in handled]
    assert sum(split) == SCHEDULES * TICKS, split
    assert Execution.objects.count() == SCHEDULES * TICKS
    assert ScheduleFire.objects.filter(status="started").count() == SCHEDULES * TICKS
    fired = Event.objects.filter(kind="execution.started").values_list(
        "payload__trigger__schedule_id", "payload__trigger__fire_time"
    )
    assert len(set(fired)) == SCHEDULES * TICKS
