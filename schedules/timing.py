"""When a schedule fires: cron and interval triggers, time zones, catch-up.

Pure logic, no Django: every function takes the times it works on, so the
scheduler's clock (the database's, or a test's) is the only clock. All
datetimes are timezone-aware; fire times are returned in UTC.

Cron expressions are evaluated on the wall clock of the schedule's time
zone by croniter, which already moves a fire that falls in a spring-forward
gap to the first valid instant after it. In the repeated hour of a
fall-back, croniter yields a fixed-hour fire twice (01:30 before and after
the change); we keep the first, so a daily job runs once a day. Jobs whose
hour field is a wildcard (``*``, ``*/2``) keep both, so ``@hourly`` fires
every real hour. Interval triggers count seconds on the absolute time line
from their anchor and ignore the wall clock entirely.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

CATCHUP_POLICIES = ("none", "latest", "all")
# A fire this late is still on time: the scheduler was busy, not down.
ON_TIME = timedelta(seconds=60)
# Catch-up never enumerates fires older than this; older ones are missed.
CATCHUP_WINDOW = timedelta(days=7)


class TriggerError(ValueError):
    """A trigger that cannot fire; the message says what to change."""


@dataclass(frozen=True)
class Trigger:
    """The time part of a schedule: a cron expression or an interval."""

    cron: str = ""
    interval_s: int | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def validate(trigger: Trigger) -> dict[str, str]:
    """Every problem with a trigger, by field name; empty when it is valid."""
    errors: dict[str, str] = {}
    if trigger.cron and trigger.interval_s is not None:
        errors["cron"] = "give either a cron expression or an interval, not both"
    elif not trigger.cron and trigger.interval_s is None:
        errors["cron"] = "give a cron expression or an interval in seconds"
    elif trigger.cron and not croniter.is_valid(trigger.cron):
        errors["cron"] = (
            f"{trigger.cron!r} is not a valid cron expression: use 5 fields "
            "(minute hour day-of-month month day-of-week, e.g. '*/15 * * * *') "
            "or an alias such as @hourly, @daily, @weekly, @monthly"
        )
    elif trigger.interval_s is not None and trigger.interval_s <= 0:
        errors["interval_s"] = "the interval must be a positive number of seconds"
    try:
        ZoneInfo(trigger.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = (
            f"unknown time zone {trigger.timezone!r}: use an IANA name such as "
            "'UTC', 'Europe/Berlin' or 'America/New_York'"
        )
    if trigger.start_at and trigger.end_at and trigger.end_at <= trigger.start_at:
        errors["end_at"] = "the end must come after the start"
    return errors


# -- fire times -------------------------------------------------------------------


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first fire strictly after ``after``, or None when the schedule ended."""
    return next(fires_after(trigger, after), None)


def fires_after(trigger: Trigger, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, in order, until ``end_at``."""
    if trigger.start_at and after < trigger.start_at:
        # The start itself may be a fire time: begin just before it.
        after = trigger.start_at - timedelta(microseconds=1)
    source = _interval_fires if trigger.interval_s else _cron_fires
    for fire in source(trigger, after):
        if trigger.end_at and fire > trigger.end_at:
            return
        yield fire


def fires_between(
    trigger: Trigger, first: datetime, last: datetime
) -> Iterator[datetime]:
    """Fire times in ``[first, last]``, oldest first."""
    for fire in fires_after(trigger, first - timedelta(microseconds=1)):
        if fire > last:
            return
        yield fire


def preview(trigger: Trigger, after: datetime, count: int = 5) -> list[datetime]:
    fires = fires_after(trigger, after)
    return [fire for _, fire in zip(range(count), fires, strict=False)]


def _interval_fires(trigger: Trigger, after: datetime) -> Iterator[datetime]:
    assert trigger.interval_s
    step = timedelta(seconds=trigger.interval_s)
    anchor = trigger.start_at or datetime(2000, 1, 1, tzinfo=UTC)
    # Jump straight to the first multiple after `after`: no walking over years.
    steps = max(0, (after - anchor) // step + 1)
    fire = anchor + steps * step
    while True:
        yield fire.astimezone(UTC)
        fire += step


def _cron_fires(trigger: Trigger, after: datetime) -> Iterator[datetime]:
    zone = trigger.zone
    it = croniter(trigger.cron, after.astimezone(zone))
    wildcard_hour = _hour_field(trigger.cron).startswith("*")
    while True:
        fire = it.get_next(datetime)
        if not wildcard_hour and _repeated_wall_time(fire, zone):
            continue
        yield fire.astimezone(UTC)


def _hour_field(expression: str) -> str:
    fields = expression.split()
    if fields[0].startswith("@"):
        return "*" if fields[0] in ("@hourly",) else "0"
    return fields[1] if len(fields) > 1 else "*"


def _repeated_wall_time(fire: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall time repeated by a fall-back."""
    first = fire.replace(tzinfo=None).replace(tzinfo=zone, fold=0)
    return first.astimezone(UTC) != fire.astimezone(UTC)


# -- catch-up ---------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """What one scheduler pass does for a schedule whose next fire has come.

    ``fires`` are started oldest first; ``missed`` counts the due fire times
    the catch-up policy left out; ``next_run_at`` is the first fire after
    now (None once the schedule has ended).
    """

    fires: list[datetime]
    missed: int
    next_run_at: datetime | None


def due(
    trigger: Trigger,
    next_run_at: datetime,
    now: datetime,
    catchup: str = "latest",
    max_catchup: int = 10,
) -> Due:
    """Apply a catch-up policy to the fire times from ``next_run_at`` to now.

    ``none`` starts only a fire that is on time (at most ``ON_TIME`` late);
    ``latest`` starts the most recent due fire however late; ``all`` starts
    the ``max_catchup`` most recent, oldest first. In normal operation only
    one fire is due and every policy starts it.
    """
    start = max(next_run_at, now - CATCHUP_WINDOW)
    keep = 1 if catchup != "all" else max(1, max_catchup)
    recent: deque[datetime] = deque(maxlen=keep)
    count = 0
    for fire in fires_between(trigger, start, now):
        recent.append(fire)
        count += 1
    fires = list(recent)
    if catchup == "none" and fires and now - fires[-1] > ON_TIME:
        fires = []
    return Due(fires, count - len(fires), next_fire(trigger, now))
