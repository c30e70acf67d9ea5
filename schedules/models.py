"""Schedules and their fires.

A ``Schedule`` says when a playbook runs; a ``ScheduleFire`` records one
fire time of it and what became of it. The unique (schedule, fire_time)
pair is the idempotency key of a fire: whichever scheduler copy, restart
or backfill gets there second finds the row and starts nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from schedules import timing


class Catchup(models.TextChoices):
    NONE = "none", "none: skip fires missed while the scheduler was down"
    LATEST = "latest", "latest: one run for the most recent missed fire"
    ALL = "all", "all: up to max_catchup missed fires, oldest first"


class Concurrency(models.TextChoices):
    ALLOW = "allow", "allow: start regardless of earlier runs"
    SKIP = "skip", "skip: record the fire as skipped while the last run runs"
    QUEUE = "queue", "queue: start the fire when the last run has ended"


class FireStatus(models.TextChoices):
    STARTED = "started"
    QUEUED = "queued"
    SKIPPED = "skipped"
    FAILED = "failed"


class FireKind(models.TextChoices):
    SCHEDULE = "schedule"
    BACKFILL = "backfill"
    MANUAL = "manual"


# A change to any of these plans the next fire afresh.
TIMING_FIELDS = ("cron", "interval_s", "timezone", "start_at", "end_at", "enabled")
EDITABLE = (
    *TIMING_FIELDS,
    "owner",
    "name",
    "path",
    "version",
    "payload",
    "catchup",
    "max_catchup",
    "concurrency",
)


class Schedule(models.Model):
    """When a playbook runs, and what the scheduler did about it last.

    ``next_run_at`` is the due column the scheduler claims rows by (with
    SKIP LOCKED, through a partial index over enabled schedules); it is
    None once the schedule has passed its end. ``version`` None means the
    version that is latest at each fire.
    """

    name = models.CharField(max_length=200, unique=True)
    path = models.CharField(max_length=500, help_text="The playbook's catalog path.")
    owner = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text="The user who last saved it; its runs act with their permissions "
        "(empty: the system, e.g. the local CLI).",
    )
    version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Pinned version; empty: latest at fire time."
    )
    cron = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="5-field cron ('*/15 * * * *') or an alias (@hourly, @daily).",
    )
    interval_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds between fires (instead of cron)."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    payload = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    catchup = models.CharField(
        max_length=8, choices=Catchup.choices, default=Catchup.LATEST
    )
    max_catchup = models.PositiveIntegerField(
        default=10, help_text="With catch-up 'all': the most missed fires started."
    )
    concurrency = models.CharField(
        max_length=8, choices=Concurrency.choices, default=Concurrency.ALLOW
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_fire_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    missed_fires = models.PositiveIntegerField(
        default=0, help_text="Fires the catch-up policy left out, in total."
    )
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="After a failed attempt: not before this."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_run_at"],
                name="schedule_due",
                condition=models.Q(enabled=True, next_run_at__isnull=False),
            )
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger(self) -> timing.Trigger:
        return timing.Trigger(
            cron=self.cron.strip(),
            interval_s=self.interval_s,
            timezone=self.timezone,
            start_at=self.start_at,
            end_at=self.end_at,
        )

    def clean(self) -> None:
        from catalog.services import PlaybookNotFound, resolve

        errors = timing.validate(self.trigger)
        if self.catchup not in Catchup.values:
            errors["catchup"] = f"catch-up must be one of {', '.join(Catchup.values)}"
        if self.concurrency not in Concurrency.values:
            errors["concurrency"] = (
                f"concurrency must be one of {', '.join(Concurrency.values)}"
            )
        if not isinstance(self.payload, dict):
            errors["payload"] = "the payload must be a JSON object"
        try:
            resolve(self.path, self.version)
        except PlaybookNotFound as exc:
            errors["path"] = str(exc)
        if errors:
            raise ValidationError(errors)

    def save_checked(self, now: datetime) -> None:
        """Validate every field (a ValidationError names each problem), plan
        the next fire from ``now`` when the timing changed, and save. Every
        surface saves this way. An edit that leaves the timing alone keeps
        the planned fire, so fires owed after downtime are still caught up."""
        self.full_clean()
        if self._state.adding:
            self.plan(now)
            self.save()
            return
        # Write only what a user edits: the scheduler may be updating the
        # fire state of this row meanwhile, and that must not be undone.
        fields = [f.name for f in self._meta.concrete_fields if f.name in EDITABLE]
        if self._timing_changed():
            self.plan(now)
            fields += ["next_run_at", "retry_at"]
            self.retry_at = None
        self.save(update_fields=[*fields, "updated_at"])

    def _timing_changed(self) -> bool:
        stored = Schedule.objects.filter(pk=self.pk).values(*TIMING_FIELDS).first()
        if stored is None:
            return True
        return any(stored[name] != getattr(self, name) for name in TIMING_FIELDS)

    def plan(self, now: datetime) -> None:
        """Set the next fire from ``now`` (on creation, edit and resume):
        fires between an earlier plan and now are not owed."""
        self.next_run_at = timing.next_fire(self.trigger, now) if self.enabled else None

    def pause(self) -> None:
        self.enabled = False
        self.save(update_fields=["enabled", "updated_at"])

    def resume(self, now: datetime) -> None:
        """Enable again from ``now``: fires missed while paused are not owed."""
        self.enabled = True
        self.retry_at = None
        self.plan(now)
        self.save(update_fields=["enabled", "next_run_at", "retry_at", "updated_at"])

    def preview(self, now: datetime, count: int = 5) -> list[datetime]:
        if timing.validate(self.trigger):
            return []
        return timing.preview(self.trigger, now, count)


class ScheduleFire(models.Model):
    """One fire time of a schedule and its outcome; at most one per time."""

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="fires"
    )
    fire_time = models.DateTimeField()
    kind = models.CharField(
        max_length=10, choices=FireKind.choices, default=FireKind.SCHEDULE
    )
    status = models.CharField(max_length=10, choices=FireStatus.choices)
    execution = models.ForeignKey(
        "executions.Execution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "fire_time"], name="schedule_fire_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["schedule", "fire_time"],
                name="schedule_fire_queued",
                condition=models.Q(status="queued"),
            )
        ]
        ordering = ["-fire_time"]

    def __str__(self) -> str:
        return f"{self.schedule_id}@{self.fire_time.isoformat()} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return fire_key(self.schedule_id, self.fire_time)


def fire_key(schedule_id: int, fire_time: datetime) -> str:
    """The idempotency key of a fire, as recorded in the run's trigger."""
    return f"schedule:{schedule_id}:{fire_time.isoformat()}"


def owner_of(user: Any) -> str:
    """The owner name a schedule saved by ``user`` records ('' if nobody)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return str(user.get_username())
