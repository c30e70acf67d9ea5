"""Runtime registration of workers (DESIGN.md section 7).

A pool's enrollment token lets a worker register; registration mints a
per-worker token that can claim, heartbeat, report and read the credentials
of commands that worker holds, and nothing else. Only token hashes are
stored.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models


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

    class Meta:
        indexes = [models.Index(fields=["pool", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.pool}, {self.status})"
