"""Fire times and catch-up, without a database or a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from schedules import timing
from schedules.timing import Trigger

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours(fires: list[datetime]) -> list[str]:
    return [f.strftime("%m-%d %H:%M") for f in fires]


def test_a_daily_cron_keeps_its_wall_time_across_spring_forward() -> None:
    trigger = Trigger(cron="0 9 * * *", timezone=NY)
    fires = timing.preview(trigger, utc(2026, 3, 6, 15), 3)
    # 09:00 EST is 14:00 UTC; 09:00 EDT (from 8 March) is 13:00 UTC.
    assert hours(fires) == ["03-07 14:00", "03-08 13:00", "03-09 13:00"]


def test_a_fire_in_the_spring_gap_moves_to_the_end_of_the_gap() -> None:
    trigger = Trigger(cron="30 2 * * *", timezone=NY)
    fires = timing.preview(trigger, utc(2026, 3, 7, 12), 2)
    assert hours(fires) == ["03-08 07:00", "03-09 06:30"]


def test_a_daily_cron_fires_once_on_the_fall_back_day() -> None:
    trigger = Trigger(cron="30 1 * * *", timezone=NY)
    fires = timing.preview(trigger, utc(2026, 10, 31, 12), 3)
    # 01:30 happens twice on 1 November; only the first (EDT) one fires.
    assert hours(fires) == ["11-01 05:30", "11-02 06:30", "11-03 06:30"]


def test_hourly_fires_every_real_hour_across_fall_back() -> None:
    trigger = Trigger(cron="@hourly", timezone=NY)
    fires = timing.preview(trigger, utc(2026, 11, 1, 3, 30), 5)
    assert [b - a for a, b in pairwise(fires)] == [timedelta(hours=1)] * 4
    assert hours(fires) == [
        "11-01 04:00",
        "11-01 05:00",
        "11-01 06:00",
        "11-01 07:00",
        "11-01 08:00",
    ]


def test_an_interval_counts_real_seconds_across_a_dst_change() -> None:
    trigger = Trigger(interval_s=3600, timezone=NY, start_at=utc(2026, 3, 8, 5))
    fires = timing.preview(trigger, utc(2026, 3, 8, 5), 4)
    assert hours(fires) == ["03-08 06:00", "03-08 07:00", "03-08 08:00", "03-08 09:00"]


def test_an_interval_fires_at_its_start_then_every_step() -> None:
    trigger = Trigger(interval_s=90, start_at=utc(2026, 1, 1, 0))
    assert timing.preview(trigger, utc(2025, 12, 1), 2) == [
        utc(2026, 1, 1, 0, 0, 0),
        utc(2026, 1, 1, 0, 1, 30),
    ]


def test_a_schedule_stops_at_its_end() -> None:
    trigger = Trigger(cron="0 * * * *", end_at=utc(2026, 1, 1, 2))
    assert hours(timing.preview(trigger, utc(2026, 1, 1, 0), 5)) == [
        "01-01 01:00",
        "01-01 02:00",
    ]
    assert timing.next_fire(trigger, utc(2026, 1, 1, 2)) is None


def test_catchup_after_three_hours_down() -> None:
    trigger = Trigger(cron="*/10 * * * *")
    last_planned, now = utc(2026, 1, 1, 0), utc(2026, 1, 1, 3, 0, 5)

    none = timing.due(trigger, last_planned, now, "none")
    latest = timing.due(trigger, last_planned, now, "latest")
    every = timing.due(trigger, last_planned, now, "all", max_catchup=5)

    # 00:00 through 03:00 is 19 fire times; 03:00 itself is on time.
    assert none.fires == [utc(2026, 1, 1, 3)] and none.missed == 18
    assert latest.fires == [utc(2026, 1, 1, 3)] and latest.missed == 18
    assert hours(every.fires) == [
        "01-01 02:20",
        "01-01 02:30",
        "01-01 02:40",
        "01-01 02:50",
        "01-01 03:00",
    ]
    assert every.missed == 14
    assert none.next_run_at == utc(2026, 1, 1, 3, 10)


def test_catchup_none_starts_nothing_when_every_fire_is_late() -> None:
    trigger = Trigger(cron="0 * * * *")
    plan = timing.due(trigger, utc(2026, 1, 1, 0), utc(2026, 1, 1, 3, 30), "none")
    assert plan.fires == [] and plan.missed == 4
    assert latest_only(trigger) == [utc(2026, 1, 1, 3)]


def latest_only(trigger: Trigger) -> list[datetime]:
    return timing.due(trigger, utc(2026, 1, 1, 0), utc(2026, 1, 1, 3, 30)).fires


def test_it_explains_every_invalid_trigger() -> None:
    assert (
        "not a valid cron expression"
        in timing.validate(Trigger(cron="61 * * * *"))["cron"]
    )
    assert "not both" in timing.validate(Trigger(cron="@daily", interval_s=5))["cron"]
    assert "cron expression or an interval" in timing.validate(Trigger())["cron"]
    assert "positive" in timing.validate(Trigger(interval_s=0))["interval_s"]
    assert (
        "unknown time zone 'Mars/Base'"
        in timing.validate(Trigger(cron="@daily", timezone="Mars/Base"))["timezone"]
    )
    assert timing.validate(Trigger(cron="@daily", timezone=NY)) == {}
