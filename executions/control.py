"""What callers do to runs from outside: start one (idempotently), start it
again, cancel it with its sub-playbook runs, set its transient variables.

Starting and cancelling go through ``executions.service``. Setting a
variable is the one event append made here: it takes the same execution
row lock, numbers its event from ``execution.next_seq`` and advances it,
and touches no projection the engine folds (the fold ignores the kind).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction

from accounts import audit
from executions import queries, service
from executions.engine.values import dumps
from executions.models import (
    Event,
    Execution,
    IdempotencyKey,
    Status,
    TransientVariable,
)

log = logging.getLogger("noetl.executions.control")
# Who asks: a user, or nobody (the local CLI, or the API with auth disabled).
Caller = AbstractBaseUser | AnonymousUser | None


class Conflict(Exception):
    """The request contradicts the run's state or an earlier request (409)."""


def _username(user: Caller) -> str:
    return user.get_username() if user is not None and user.is_authenticated else ""


def _owner(user: Caller) -> Any:
    return user if user is not None and user.is_authenticated else None


# -- starting -------------------------------------------------------------------


def start(
    path: str,
    version: int | None,
    payload: dict[str, Any],
    *,
    user: Caller,
    idempotency_key: str = "",
    trigger: dict[str, Any] | None = None,
) -> tuple[Execution, bool]:
    """Start a run; returns (execution, created).

    The caller's payload is kept in the started event's trigger (by
    reference when large), so the run can be started again as it was. With
    an idempotency key, a repeat of the same request by the same user
    returns the first run (created False); the same key with a different
    request is a Conflict.
    """
    trigger = {
        "kind": "api",
        **(trigger or {}),
        "user": _username(user),
        "input": service.values().externalize(payload),
    }
    if not idempotency_key:
        execution, _ = service.start_execution(
            path, version, payload, trigger=trigger, owner=_username(user)
        )
        service.settle()
        return execution, True

    digest = hashlib.sha256(
        dumps({"path": path, "version": version, "payload": payload})
    ).hexdigest()
    earlier = _earlier(user, idempotency_key, digest)
    if earlier is not None:
        return earlier, False
    try:
        # The key row is inserted first: a concurrent request with the same key
        # waits on its unique index until this commits, then finds our run.
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                user=_owner(user), key=idempotency_key, request_digest=digest
            )
            execution, _ = service.start_execution(
                path, version, payload, trigger=trigger, owner=_username(user)
            )
            row.execution = execution
            row.save(update_fields=["execution"])
    except IntegrityError:
        earlier = _earlier(user, idempotency_key, digest)
        if earlier is None:
            raise
        return earlier, False
    service.settle()
    return execution, True


def _earlier(user: Caller, key: str, digest: str) -> Execution | None:
    row = (
        IdempotencyKey.objects.select_related("execution")
        .filter(user=_owner(user), key=key)
        .first()
    )
    if row is None:
        return None
    if row.request_digest != digest:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a different request"
        )
    return row.execution


def rerun(
    execution: Execution, *, user: Caller, idempotency_key: str = ""
) -> tuple[Execution, bool]:
    """Start the same playbook version again with the same input."""
    return start(
        execution.path,
        execution.version,
        queries.original_input(execution),
        user=user,
        idempotency_key=idempotency_key,
        trigger={"kind": "rerun", "rerun_of": execution.id},
    )


# -- cancelling -----------------------------------------------------------------


def cancel_tree(execution_id: str, *, user: Caller, reason: str = "") -> list[str]:
    """Cancel a running run and every running run below it.

    Returns the ids cancelled here, the given run first. Each run is
    cancelled in its own transaction under its own lock, parent before
    children (never two execution locks at once). Raises Conflict when the
    run has already ended.
    """
    by = _username(user)
    reason = reason or (f"cancelled by {by}" if by else "cancelled by user")
    running_below = set(
        Execution.objects.filter(
            id__in=queries.descendants(execution_id), status=Status.RUNNING
        ).values_list("id", flat=True)
    )
    if not service.cancel(execution_id, reason, by):
        status = Execution.objects.values_list("status", flat=True).get(id=execution_id)
        raise Conflict(f"execution {execution_id} is already {status}")
    # The parent's cancel leaves inbox rows that cancel its children; apply
    # them now, then sweep any descendant still running (one started meanwhile).
    service.settle()
    for child_id in queries.descendants(execution_id):
        if service.cancel(child_id, f"parent run {execution_id} was cancelled", by):
            running_below.add(child_id)
        service.settle()
    cancelled = Execution.objects.filter(id__in=running_below, status=Status.CANCELLED)
    below = sorted(cancelled.values_list("id", flat=True))
    audit.record(
        "run.cancelled",
        execution_id,
        actor=audit.actor_of(user) if by else "",
        reason=reason,
        runs_below=below,
    )
    log.info(
        "cancelled %s and %d runs below it (by %s)",
        execution_id,
        len(below),
        by or "anonymous",
    )
    return [execution_id, *below]


# -- transient variables --------------------------------------------------------


def set_variable(
    execution_id: str, name: str, value: Any, *, user: Caller
) -> TransientVariable:
    """Store a run's variable and record a ``variable.set`` event, in one
    transaction under the execution lock. A run that ended is a Conflict."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(id=execution_id)
        if execution.status != Status.RUNNING:
            raise Conflict(
                f"execution {execution_id} is {execution.status}; its "
                "variables can no longer change"
            )
        variable, _ = TransientVariable.objects.update_or_create(
            execution=execution, name=name, defaults={"value": value}
        )
        Event.objects.create(
            execution=execution,
            seq=execution.next_seq,
            kind="variable.set",
            payload={
                "name": name,
                "value": service.values().externalize(value),
                "by": _username(user),
            },
        )
        execution.next_seq += 1
        execution.save(update_fields=["next_seq"])
    return variable
