"""Runtime registration of workers (DESIGN.md section 7).

A pool's enrollment token lets a worker register; registration mints a
per-worker token that can claim, heartbeat, report and read the credentials
of commands that worker holds, and nothing else. Only token hashes are
stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

# Any authenticated worker call refreshes last_seen_at, at most this often,
# so an idle worker polling for work (it sends no heartbeats) still looks live.
TOUCH_EVERY = timedelta(seconds=5)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


class Pool(models.Model):
    name = models.CharField(max_length=100, unique=True)
    enrollment_token_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class WorkerStatus(models.TextChoices):
    ACTIVE = "active"
    GONE = "gone"


def stale_after_s() -> float:
    """Silence after which an active worker counts as stale: three missed
    heartbeats, and never less than a lease (its commands requeue then)."""
    return max(3 * settings.NOETL_HEARTBEAT_S, settings.NOETL_LEASE_TTL_S)


def gone_after_s() -> float:
    """Silence after which an active worker counts as gone (it was killed or
    its host lost without deregistering). Never shorter than stale."""
    return max(settings.NOETL_WORKER_GONE_AFTER_S, stale_after_s())


class WorkerQuerySet(models.QuerySet):
    def _heard_since(self, now: datetime | None) -> models.Q:
        cutoff = (now or timezone.now()) - timedelta(seconds=gone_after_s())
        return models.Q(last_seen_at__gte=cutoff) | models.Q(
            last_seen_at__isnull=True, registered_at__gte=cutoff)

    def present(self, now: datetime | None = None) -> WorkerQuerySet:
        """Registered and heard from within gone_after_s: live or stale."""
        return self.filter(self._heard_since(now), status=WorkerStatus.ACTIVE)

    def absent(self, now: datetime | None = None) -> WorkerQuerySet:
        """Deregistered, or silent for longer than gone_after_s."""
        return self.exclude(self._heard_since(now), status=WorkerStatus.ACTIVE)


class WorkerRegistration(models.Model):
    id = models.CharField(primary_key=True, max_length=100)
    name = models.CharField(max_length=200)
    pool = models.CharField(max_length=100)
    capacity = models.PositiveIntegerField(default=1)
    version = models.CharField(max_length=50, blank=True, default="")
    labels = models.JSONField(default=dict, blank=True)
    host = models.CharField(max_length=200, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=WorkerStatus.choices,
                              default=WorkerStatus.ACTIVE)
    registered_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    deregistered_at = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["pool", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.pool}, {self.status})"

    def heartbeat_age_s(self, now: datetime | None = None) -> float | None:
        """Seconds since the worker was last heard from (None: never)."""
        if self.last_seen_at is None:
            return None
        return ((now or timezone.now()) - self.last_seen_at).total_seconds()

    def liveness(self, now: datetime | None = None) -> str:
        """``live``, ``stale`` (active but silent for a while) or ``gone``
        (deregistered, or silent for longer than gone_after_s)."""
        if self.status == WorkerStatus.GONE:
            return "gone"
        now = now or timezone.now()
        age = self.heartbeat_age_s(now)
        if age is not None and age <= stale_after_s():
            return "live"
        silent = age if age is not None else (now - self.registered_at).total_seconds()
        return "gone" if silent > gone_after_s() else "stale"

    def touch(self) -> None:
        now = timezone.now()
        if self.last_seen_at is None or now - self.last_seen_at > TOUCH_EVERY:
            WorkerRegistration.objects.filter(id=self.id).update(last_seen_at=now)
            self.last_seen_at = now
