"""``runscheduler`` firing schedules, driven step by step on a test clock."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from itertools import pairwise
from typing import Any

import pytest

from executions import service
from executions.management.commands.runscheduler import Command
from executions.models import Event, Execution
from schedules import duty
from schedules.models import Schedule, ScheduleFire
from tests.schedules.conftest import T0, Clock

MINUTE = timedelta(minutes=1)


def scheduler(clock: Clock) -> Command:
    command = Command(stdout=StringIO(), stderr=StringIO())
    command.clock = clock
    command.sleep = lambda _: None
    return command


def fire_times(schedule: Schedule) -> list[datetime]:
    fires = schedule.fires.filter(status="started").order_by("fire_time")
    return list(fires.values_list("fire_time", flat=True))


def started_trigger(execution_id: str) -> dict[str, Any]:
    event = Event.objects.get(execution_id=execution_id, kind="execution.started")
    return event.payload["trigger"]


@pytest.mark.django_db
def test_it_fires_a_due_schedule_once_and_plans_the_next(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    command = scheduler(clock)

    assert command.fire_schedules() is False
    assert Execution.objects.count() == 0

    clock.now = T0 + MINUTE
    command.round()
    command.round()  # the same instant again: nothing more is due

    schedule.refresh_from_db()
    fire = schedule.fires.get()
    assert fire.fire_time == T0 + MINUTE and fire.status == "started"
    assert schedule.next_run_at == T0 + 2 * MINUTE
    assert schedule.last_fire_at == T0 + MINUTE and schedule.last_status == "started"
    assert started_trigger(fire.execution_id) == {
        "kind": "schedule",
        "schedule_id": schedule.id,
        "schedule": schedule.name,
        "fire_time": (T0 + MINUTE).isoformat(),
        "fire_kind": "schedule",
        "idempotency_key": f"schedule:{schedule.id}:{(T0 + MINUTE).isoformat()}",
        "input": {},
    }


@pytest.mark.django_db
def test_cron_fires_follow_the_wall_clock_across_a_dst_change(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    clock.now = datetime.fromisoformat("2026-03-06T15:00:00+00:00")
    schedule = schedule_factory(
        clock.now, cron="0 9 * * *", timezone="America/New_York"
    )
    command = scheduler(clock)

    for day in range(3):
        clock.now = schedule.next_run_at
        command.round()
        schedule.refresh_from_db()

    assert [t.isoformat() for t in fire_times(schedule)] == [
        "2026-03-07T14:00:00+00:00",
        "2026-03-08T13:00:00+00:00",
        "2026-03-09T13:00:00+00:00",
    ]


@pytest.mark.django_db
def test_interval_fires_stay_evenly_spaced_across_a_dst_change(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    clock.now = datetime.fromisoformat("2026-03-08T05:00:00+00:00")
    schedule = schedule_factory(
        clock.now, interval_s=3600, timezone="America/New_York", start_at=clock.now
    )
    command = scheduler(clock)

    for _ in range(4):
        clock.now = schedule.next_run_at
        command.round()
        schedule.refresh_from_db()

    times = fire_times(schedule)
    assert [b - a for a, b in pairwise(times)] == [timedelta(hours=1)] * 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("catchup", "started", "missed"),
    [
        ("none", [], 19),
        ("latest", ["03:00"], 18),
        ("all", ["02:20", "02:30", "02:40", "02:50", "03:00"], 14),
    ],
)
def test_each_catchup_policy_after_three_hours_down(
    clock: Clock,
    schedule_factory: Callable[..., Schedule],
    catchup: str,
    started: list[str],
    missed: int,
) -> None:
    # Planned at 23:55: the first fire was due at midnight; the scheduler
    # comes back at 03:05, after the fires 00:00, 00:10, ..., 03:00 (19).
    schedule = schedule_factory(
        T0 - 5 * MINUTE, cron="*/10 * * * *", catchup=catchup, max_catchup=5
    )
    clock.now = T0 + timedelta(hours=3, minutes=5)

    scheduler(clock).round()

    schedule.refresh_from_db()
    assert [t.strftime("%H:%M") for t in fire_times(schedule)] == started
    assert Execution.objects.count() == len(started)
    assert schedule.missed_fires == missed
    assert schedule.next_run_at == T0 + timedelta(hours=3, minutes=10)


def long_running_first_run(
    clock: Clock, schedule_factory: Callable[..., Schedule], concurrency: str
) -> tuple[Schedule, Command]:
    """A schedule whose first run is still running (no worker takes it) when
    its second fire comes."""
    schedule = schedule_factory(concurrency=concurrency)
    command = scheduler(clock)
    clock.now = T0 + MINUTE
    command.round()
    clock.now = T0 + 2 * MINUTE
    command.round()
    schedule.refresh_from_db()
    return schedule, command


@pytest.mark.django_db
def test_concurrency_allow_starts_beside_a_running_run(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule, _ = long_running_first_run(clock, schedule_factory, "allow")
    assert Execution.objects.filter(status="running").count() == 2
    assert schedule.last_status == "started"


@pytest.mark.django_db
def test_concurrency_skip_records_the_skipped_fire(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule, _ = long_running_first_run(clock, schedule_factory, "skip")
    first, second = schedule.fires.order_by("fire_time")
    assert Execution.objects.count() == 1
    assert second.status == "skipped" and second.execution_id is None
    assert first.execution_id in second.reason
    assert schedule.last_status == "skipped"
    assert schedule.next_run_at == T0 + 3 * MINUTE


@pytest.mark.django_db
def test_concurrency_queue_starts_the_fire_when_the_run_ends(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule, command = long_running_first_run(clock, schedule_factory, "queue")
    first, second = schedule.fires.order_by("fire_time")
    assert second.status == "queued" and Execution.objects.count() == 1
    assert command.start_queued_fires() is False

    service.cancel(first.execution_id, "the long run is over")
    assert command.start_queued_fires() is True

    second.refresh_from_db()
    assert second.status == "started" and second.execution.status == "running"
    assert (
        started_trigger(second.execution_id)["fire_time"]
        == (T0 + 2 * MINUTE).isoformat()
    )


@pytest.mark.django_db
def test_a_crash_before_the_fire_is_recorded_does_not_fire_twice(
    clock: Clock,
    schedule_factory: Callable[..., Schedule],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = schedule_factory()
    command = scheduler(clock)
    clock.now = T0 + MINUTE

    # The run is created, then the process dies while recording the fire.
    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed while recording the fire")

    monkeypatch.setattr(Schedule, "save", crash)
    command.round()
    monkeypatch.undo()
    assert Execution.objects.count() == 0 and ScheduleFire.objects.count() == 0
    schedule.refresh_from_db()
    assert schedule.last_status == "error" and schedule.retry_at is not None

    # Restarted after the retry delay: the fire happens, once.
    clock.now = T0 + MINUTE + duty.RETRY_AFTER
    command.round()
    command.round()
    assert fire_times(schedule) == [T0 + MINUTE]
    assert Execution.objects.count() == 1


@pytest.mark.django_db
def test_a_copy_that_replays_a_committed_fire_starts_nothing(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    command = scheduler(clock)
    clock.now = T0 + MINUTE
    command.round()

    # A copy that read the schedule before that commit (or a restored
    # backup) tries the same fire time again.
    Schedule.objects.filter(id=schedule.id).update(next_run_at=T0 + MINUTE)
    command.round()

    assert Execution.objects.count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == T0 + 2 * MINUTE


@pytest.mark.django_db
def test_a_fire_of_a_missing_playbook_fails_clearly_and_moves_on(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory(version=1)
    Schedule.objects.filter(id=schedule.id).update(version=7)
    clock.now = T0 + MINUTE

    scheduler(clock).round()

    schedule.refresh_from_db()
    assert schedule.last_status == "failed"
    assert "no playbook registered at path" in schedule.last_error
    assert schedule.next_run_at == T0 + 2 * MINUTE


@pytest.mark.django_db
def test_a_fire_pins_the_version_current_at_fire_time(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    from catalog import services as catalog
    from tests.api.conftest import playbook_yaml

    schedule = schedule_factory()
    catalog.register(playbook_yaml(schedule.path, n=2))
    clock.now = T0 + MINUTE
    scheduler(clock).round()

    assert schedule.fires.get().execution.version == 2


@pytest.mark.django_db
def test_a_backfill_of_100_fires_creates_100_runs_once(
    schedule_factory: Callable[..., Schedule],
) -> None:
    schedule = schedule_factory(cron="0 * * * *")
    first, last = T0 - timedelta(hours=100), T0 - timedelta(hours=1)
    pauses: list[float] = []

    done = duty.backfill(schedule, first, last, rate_per_s=1e6, sleep=pauses.append)
    again = duty.backfill(schedule, first, last, sleep=pauses.append)

    assert (done.created, done.existing) == (100, 0)
    assert (again.created, again.existing) == (0, 100)
    assert Execution.objects.count() == 100
    assert schedule.fires.filter(kind="backfill").count() == 100


@pytest.mark.django_db
def test_a_backfill_is_paced_to_its_rate(
    schedule_factory: Callable[..., Schedule],
) -> None:
    schedule = schedule_factory(cron="0 * * * *")
    pauses: list[float] = []
    duty.backfill(
        schedule,
        T0 - timedelta(hours=30),
        T0 - timedelta(hours=1),
        rate_per_s=10,
        chunk=10,
        sleep=pauses.append,
    )
    # 30 runs in chunks of 10 at 10 a second: a pause of about 1 s between.
    assert len(pauses) == 2 and all(0.5 < pause <= 1.0 for pause in pauses)


@pytest.mark.django_db
def test_run_now_starts_a_manual_fire(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    fire = duty.run_now(schedule, T0 + timedelta(seconds=7))
    assert fire.kind == "manual" and fire.execution.status == "running"
    assert started_trigger(fire.execution_id)["kind"] == "schedule"


@pytest.mark.django_db
def test_a_paused_schedule_does_not_fire_and_resumes_from_now(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    schedule.pause()
    clock.now = T0 + 10 * MINUTE
    scheduler(clock).round()
    assert Execution.objects.count() == 0

    schedule.resume(clock.now)
    assert schedule.next_run_at == T0 + 11 * MINUTE


def test_a_signal_only_sets_the_stop_flag() -> None:
    command = Command(stdout=StringIO())
    command.on_signal(signal.SIGTERM, None)
    assert command.stopping is True


@pytest.mark.django_db
def test_the_claim_goes_through_the_due_index_and_skips_locked_rows(
    schedule_factory: Callable[..., Schedule],
) -> None:
    from django.db import connection

    schedule_factory()
    query = duty._claim_query(T0 + MINUTE)
    sql, params = query.query.sql_with_params()
    assert sql.endswith("FOR UPDATE SKIP LOCKED")
    with connection.cursor() as cursor:
        # A tiny table would be scanned anyway; ask what the index offers.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "schedule_due" in plan


@pytest.mark.django_db
def test_an_edit_that_keeps_the_timing_keeps_the_owed_fire(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    schedule.payload = {"n": 5}
    schedule.save_checked(T0 + 30 * MINUTE)
    assert schedule.next_run_at == T0 + MINUTE  # still owed, caught up later

    schedule.interval_s = 600
    schedule.save_checked(T0 + 30 * MINUTE)
    assert schedule.next_run_at == T0 + 40 * MINUTE


@pytest.mark.django_db
def test_an_edit_does_not_undo_a_fire_made_meanwhile(
    clock: Clock, schedule_factory: Callable[..., Schedule]
) -> None:
    schedule = schedule_factory()
    edited = Schedule.objects.get(id=schedule.id)  # a form loaded before the fire
    clock.now = T0 + MINUTE
    scheduler(clock).round()

    edited.payload = {"n": 9}
    edited.save_checked(clock.now)

    schedule.refresh_from_db()
    assert schedule.payload == {"n": 9}
    assert schedule.next_run_at == T0 + 2 * MINUTE
    assert schedule.last_status == "started"
