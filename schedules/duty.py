"""Firing schedules: the scheduler's duty, run now, and backfill.

Every function takes ``now`` from its caller (``db_now()`` in production, a
test's clock in tests) and compares due times only against it, so one
clock decides. Several scheduler copies share the work without a leader
(DESIGN-NOTES R13): a due schedule is claimed with ``FOR UPDATE SKIP
LOCKED`` through the ``schedule_due`` index, and its fires, their runs and
its new ``next_run_at`` are written in one transaction. The unique
(schedule, fire_time) row of each fire is the last line of defence: a
backfill, a run-now, or a copy that crashed after committing can never make
a fire start twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.services import PlaybookError, PlaybookNotFound
from executions import service
from executions.models import Status
from noetl_site import logs, metrics
from schedules import timing
from schedules.models import (
    Concurrency,
    FireKind,
    FireStatus,
    Schedule,
    ScheduleFire,
    fire_key,
)

log = logging.getLogger("noetl.schedules.duty")

# After an unexpected error a schedule waits this long before the next try,
# so one broken row cannot take every round of every scheduler copy.
RETRY_AFTER = timedelta(seconds=30)
MAX_BACKFILL = 10_000


def db_now() -> datetime:
    """The database's clock (PostgreSQL), or this host's on SQLite."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


# -- the scheduler's duty -----------------------------------------------------------


def fire_due(now: datetime, limit: int = 50) -> int:
    """Fire schedules whose next fire time has come, each in its own
    transaction. Returns how many schedules were handled; a full ``limit``
    means more may be waiting."""
    handled = 0
    while handled < limit and fire_next_due(now):
        handled += 1
    return handled


def fire_next_due(now: datetime) -> bool:
    """Claim one due schedule and fire it. True means one was handled
    (fired, or put back after an error); False means none is due."""
    claimed: list[int] = []
    try:
        with transaction.atomic():
            schedule = _claim_due(now)
            if schedule is None:
                return False
            claimed.append(schedule.id)
            _fire_schedule(schedule, now)
    except Exception as exc:
        if not claimed:
            raise
        log.exception("schedule %s failed to fire; retrying later", claimed[0])
        Schedule.objects.filter(id=claimed[0]).update(
            retry_at=now + RETRY_AFTER, last_status="error", last_error=str(exc)
        )
    return True


def _claim_due(now: datetime) -> Schedule | None:
    return _claim_query(now).first()


def _claim_query(now: datetime) -> QuerySet[Schedule]:
    """Due schedules, soonest first, skipping rows another copy holds. The
    predicate implies the ``schedule_due`` partial index's condition."""
    return (
        Schedule.objects.filter(enabled=True, next_run_at__lte=now)
        .exclude(retry_at__gt=now)
        .order_by("next_run_at")
        .select_for_update(skip_locked=True)[:1]
    )


def _fire_schedule(schedule: Schedule, now: datetime) -> None:
    with logs.bound(schedule=schedule.name):
        _fire_bound(schedule, now)


def _fire_bound(schedule: Schedule, now: datetime) -> None:
    assert schedule.next_run_at is not None
    plan = timing.due(
        schedule.trigger,
        schedule.next_run_at,
        now,
        schedule.catchup,
        schedule.max_catchup,
    )
    if plan.missed:
        log.warning(
            "schedule %s missed %d fire(s) before %s (catch-up %s)",
            schedule.name,
            plan.missed,
            now.isoformat(),
            schedule.catchup,
        )

    fires = [fire_once(schedule, t, FireKind.SCHEDULE) for t in plan.fires]
    recorded = [fire for fire in fires if fire is not None]
    lags = [max(0.0, (now - fire.fire_time).total_seconds()) for fire in recorded]
    transaction.on_commit(lambda: [metrics.FIRE_LAG.observe(lag) for lag in lags])
    if recorded:
        last = recorded[-1]
        schedule.last_fire_at = last.fire_time
        schedule.last_status = last.status
        schedule.last_error = last.reason if last.status == FireStatus.FAILED else ""
    schedule.next_run_at = plan.next_run_at
    schedule.missed_fires += plan.missed
    schedule.retry_at = None
    schedule.save(
        update_fields=[
            "next_run_at",
            "last_fire_at",
            "last_status",
            "last_error",
            "missed_fires",
            "retry_at",
            "updated_at",
        ]
    )


def fire_once(
    schedule: Schedule, fire_time: datetime, kind: str
) -> ScheduleFire | None:
    """Record one fire and start its run, unless that fire time already has
    a record (then None: someone fired it before). Scheduled fires obey the
    schedule's concurrency policy; backfills and run-now always start."""
    try:
        # A savepoint: a duplicate rolls back only this insert.
        with transaction.atomic():
            fire = ScheduleFire.objects.create(
                schedule=schedule,
                fire_time=fire_time,
                kind=kind,
                status=FireStatus.STARTED,
            )
    except IntegrityError:
        log.info("schedule %s already fired at %s", schedule.name, fire_time)
        return None

    held = _held_by_concurrency(schedule) if kind == FireKind.SCHEDULE else None
    if held is not None:
        fire.status, fire.reason = held
        fire.save(update_fields=["status", "reason"])
        return fire
    _start(fire)
    return fire


def _held_by_concurrency(schedule: Schedule) -> tuple[str, str] | None:
    """(status, reason) when the policy holds this fire back, else None."""
    if schedule.concurrency == Concurrency.ALLOW:
        return None
    queued = schedule.fires.filter(status=FireStatus.QUEUED).exists()
    running = _running_run(schedule)
    if schedule.concurrency == Concurrency.SKIP and running:
        log.warning("schedule %s: fire skipped, %s still runs", schedule.name, running)
        return FireStatus.SKIPPED, f"the previous run {running} was still running"
    if schedule.concurrency == Concurrency.QUEUE and (running or queued):
        return FireStatus.QUEUED, f"waiting for the previous run {running or ''}"
    return None


def _running_run(schedule: Schedule) -> str:
    row = (
        schedule.fires.filter(execution__status=Status.RUNNING)
        .values_list("execution_id", flat=True)
        .first()
    )
    return row or ""


def _owner_refused(schedule: Schedule) -> str:
    """Why the schedule's owner may no longer start its runs ('' if they may):
    a grant taken away stops the schedule's future runs too."""
    if not schedule.owner:
        return ""
    from django.contrib.auth import get_user_model

    from noetl_site import access

    user = get_user_model().objects.filter(username=schedule.owner).first()
    if user is not None and access.can_execute(user, schedule.path):
        return ""
    return f"its owner {schedule.owner} may no longer execute {schedule.path}"


def _start(fire: ScheduleFire) -> None:
    """Start the fire's run; a playbook that is gone fails the fire only."""
    schedule = fire.schedule
    trigger = {
        "kind": "schedule",
        "schedule_id": schedule.id,
        "schedule": schedule.name,
        "fire_time": fire.fire_time.isoformat(),
        "fire_kind": fire.kind,
        "idempotency_key": fire_key(schedule.id, fire.fire_time),
        "input": service.values().externalize(schedule.payload),
    }
    refused = _owner_refused(schedule)
    if refused:
        log.warning("schedule %s could not start: %s", schedule.name, refused)
        fire.status, fire.reason = FireStatus.FAILED, refused
        fire.save(update_fields=["status", "reason"])
        return
    try:
        # A savepoint, so a failed start leaves the fire row to record it.
        with transaction.atomic():
            execution, _ = service.start_execution(
                schedule.path,
                schedule.version,
                schedule.payload,
                trigger=trigger,
                owner=schedule.owner,
            )
    except (PlaybookNotFound, PlaybookError) as exc:
        log.warning("schedule %s could not start: %s", schedule.name, exc)
        fire.status, fire.reason = FireStatus.FAILED, str(exc)
        fire.save(update_fields=["status", "reason"])
        return
    fire.status, fire.execution = FireStatus.STARTED, execution
    fire.reason = ""
    fire.save(update_fields=["status", "execution", "reason"])


# -- queued fires --------------------------------------------------------------------


def start_queued(limit: int = 50) -> int:
    """Start the oldest queued fire of each schedule whose last run ended.
    Returns how many runs started."""
    waiting = ScheduleFire.objects.filter(status=FireStatus.QUEUED)
    ids = list(
        waiting.order_by("schedule_id")
        .values_list("schedule_id", flat=True)
        .distinct()[:limit]
    )
    return sum(1 for schedule_id in ids if _start_next_queued(schedule_id))


def _start_next_queued(schedule_id: int) -> bool:
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(skip_locked=True)
            .filter(id=schedule_id)
            .first()
        )
        if schedule is None or _running_run(schedule):
            return False  # another copy holds it, or the last run still runs
        fire = (
            schedule.fires.filter(status=FireStatus.QUEUED)
            .order_by("fire_time")
            .first()
        )
        if fire is None:
            return False
        _start(fire)
        schedule.last_status = fire.status
        schedule.save(update_fields=["last_status", "updated_at"])
    return fire.status == FireStatus.STARTED


# -- run now, backfill ---------------------------------------------------------------


def run_now(schedule: Schedule, now: datetime) -> ScheduleFire:
    """Start the schedule's playbook at once, recorded as a manual fire."""
    with transaction.atomic():
        fire = fire_once(schedule, now, FireKind.MANUAL)
    if fire is None:
        raise IntegrityError(f"schedule {schedule.id} already fired at {now}")
    service.settle()
    return fire


@dataclass(frozen=True)
class Backfilled:
    """One backfill pass: runs started here, fire times that already had a
    record, and where the next pass starts (None when the range is done)."""

    created: int
    existing: int
    next_from: datetime | None


def backfill_fire_times(
    schedule: Schedule, first: datetime, last: datetime
) -> list[datetime]:
    """Every fire time of the schedule in ``[first, last]``; ValueError when
    the range is backwards or holds more than MAX_BACKFILL fires."""
    if last < first:
        raise ValueError("the end of the range comes before its start")
    # The schedule's end date bounds live fires, not an explicit backfill.
    trigger = replace(schedule.trigger, end_at=None)
    times = []
    for fire_time in timing.fires_between(trigger, first, last):
        times.append(fire_time)
        if len(times) > MAX_BACKFILL:
            raise ValueError(
                f"the range holds more than {MAX_BACKFILL} fire times; "
                "backfill it in smaller ranges"
            )
    return times


def backfill_chunk(
    schedule: Schedule, first: datetime, last: datetime, limit: int = 20
) -> Backfilled:
    """Create the runs of up to ``limit`` fire times in ``[first, last]``,
    each in its own short transaction. The schedule row is never locked, so
    live fires go on meanwhile; the unique fire rows keep both apart."""
    times = backfill_fire_times(schedule, first, last)
    created = existing = 0
    for fire_time in times[:limit]:
        with transaction.atomic():
            fire = fire_once(schedule, fire_time, FireKind.BACKFILL)
        service.settle()
        if fire is None:
            existing += 1
        else:
            created += 1
    more = len(times) > limit
    next_from = times[limit] if more else None
    return Backfilled(created, existing, next_from)


def backfill(
    schedule: Schedule,
    first: datetime,
    last: datetime,
    *,
    rate_per_s: float = 5.0,
    chunk: int = 10,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[Backfilled], None] | None = None,
) -> Backfilled:
    """Backfill the whole range in chunks, at most ``rate_per_s`` runs a
    second, so the queue never fills with backfill ahead of live runs."""
    created = existing = 0
    cursor: datetime | None = first
    while cursor is not None:
        started = time.monotonic()
        done = backfill_chunk(schedule, cursor, last, chunk)
        created, existing = created + done.created, existing + done.existing
        if progress is not None:
            progress(done)
        cursor = done.next_from
        pause = done.created / rate_per_s - (time.monotonic() - started)
        if cursor is not None and pause > 0:
            sleep(pause)
    return Backfilled(created, existing, None)
