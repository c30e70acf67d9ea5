"""The event log and its projections.

``Event`` is append-only and is the truth of every run. ``Execution.state``,
``Command`` and ``StepRun`` are projections maintained in the same
transaction as the events that change them (see ``executions.service``).
"""

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class Execution(models.Model):
    id = models.CharField(primary_key=True, max_length=36, help_text="UUIDv7")
    playbook = models.ForeignKey("catalog.PlaybookVersion", on_delete=models.PROTECT)
    path = models.CharField(max_length=500)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    parent_command = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    state = models.JSONField(default=dict)
    next_seq = models.PositiveIntegerField(default=1)
    owner = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["-created_at", "-id"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["path", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.path} {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Event(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    ts = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=40)
    step = models.CharField(max_length=200, blank=True, default="")
    command_id = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=16, blank=True, default="")
    delivery = models.PositiveIntegerField(null=True, blank=True)
    worker_id = models.CharField(max_length=100, blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    error = models.JSONField(null=True, blank=True)
    # What analysis needs, as columns so exports and queries need no JSON:
    # when the work ran (the worker's clock), where, on which retry, with
    # which tool, and how much data went in and came out.
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    pool = models.CharField(max_length=100, blank=True, default="")
    attempt = models.PositiveIntegerField(null=True, blank=True)
    tool = models.CharField(max_length=100, blank=True, default="")
    input_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    result_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["execution", "seq"], name="event_execution_seq")
        ]
        indexes = [models.Index(fields=["execution", "step", "seq"])]
        ordering = ["execution", "seq"]

    def __str__(self) -> str:
        return f"{self.execution_id}#{self.seq} {self.kind}"


class CommandState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    CANCELLED = "cancelled"


class Command(models.Model):
    """A unit of work for a worker: a step, or a chunk of loop iterations.

    The database is the queue: a claim is a conditional update that grants a
    lease; ``delivery`` is the fencing counter that refuses stale reports.
    """

    id = models.CharField(primary_key=True, max_length=300)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="commands")
    step = models.CharField(max_length=200)
    epoch = models.PositiveIntegerField(default=1)
    iter_from = models.IntegerField(null=True, blank=True)
    iter_to = models.IntegerField(null=True, blank=True)
    pool = models.CharField(max_length=100, default="default")
    state = models.CharField(max_length=16, choices=CommandState.choices, default=CommandState.QUEUED)
    delivery = models.PositiveIntegerField(default=1)
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claim_id = models.CharField(max_length=100, blank=True, default="")
    not_before = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    publish_gen = models.PositiveIntegerField(default=0)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["pool", "created_at"],
                name="command_queued",
                condition=models.Q(state="queued"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="command_running",
                condition=models.Q(state="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.state})"


class StepRun(models.Model):
    """Per-step summary of a run, for the UI and the CLI (never folded)."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="step_runs")
    step = models.CharField(max_length=200)
    status = models.CharField(max_length=16, default="pending")
    runs = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    iterations = models.PositiveIntegerField(default=0)
    failed_iterations = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["execution", "step"], name="step_run_execution_step")
        ]

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.step} ({self.status})"


class Blob(models.Model):
    """A large value, stored once by its sha256 and referenced from events."""

    sha256 = models.CharField(primary_key=True, max_length=64)
    data = models.BinaryField()
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size} bytes)"


class Inbox(models.Model):
    """A cross-execution effect (a child ended, a parent was cancelled).

    Written without the target's lock, applied by the target's next locked
    transaction, so no transaction ever holds two execution locks.
    """

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="inbox")
    kind = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.execution_id} {self.kind}"


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` a caller sent when starting a run.

    The same key from the same user returns the run it started the first
    time, so a client may retry a start whose answer it never received.
    ``request_digest`` tells a retry from a different request reusing a key.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="idempotency_keys",
    )
    key = models.CharField(max_length=200)
    request_digest = models.CharField(max_length=64)
    execution = models.ForeignKey(Execution, null=True, on_delete=models.CASCADE,
                                  related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"], name="idempotency_user_key",
                condition=models.Q(user__isnull=False),
            ),
            # Anonymous callers (only when authentication is disabled) share one space.
            models.UniqueConstraint(
                fields=["key"], name="idempotency_anonymous_key",
                condition=models.Q(user__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} -> {self.execution_id}"


class TransientVariable(models.Model):
    """A named value attached to one run from outside it (API, operators).

    Each write to a running execution is also recorded in its event log as
    a ``variable.set`` event, so the history shows who changed what, when.
    """

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE,
                                  related_name="variables")
    name = models.CharField(max_length=200)
    value = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["execution", "name"],
                                    name="transient_execution_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.name}"
