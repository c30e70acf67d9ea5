"""The worker protocol, version 1 (DESIGN-NOTES R14), as plain Django views.

Every call is JSON in and out and every answer carries ``protocol``. A
worker registers with an enrollment token and receives its own token, which
the other calls require. Errors a worker must act on: 401 (unknown token),
409 ``stale`` (its delivery was fenced off: drop the work), 410 ``gone``
(the run ended), 400 (a malformed request).

These views are the hot path, so they skip DRF; the public API uses DRF.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts import ratelimit
from executions import service
from executions.engine.values import dumps, loads
from executions.models import Command, CommandState
from noetl_site import logs
from noetl_site.middleware import own_body_limit
from workers import dispatch
from workers.models import Pool, WorkerRegistration, WorkerStatus, hash_token, new_token
from workers.tools.base import CredentialError, CredentialNotAllowed

log = logging.getLogger("noetl.workers.api")
PROTOCOL = 1


def answer(data: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(dumps({**data, "protocol": PROTOCOL}), status=status,
                        content_type="application/json")


def problem(status: int, code: str, message: str) -> HttpResponse:
    return answer({"error": code, "message": message}, status)


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""


def _body(request: HttpRequest) -> dict[str, Any]:
    data = loads(request.body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


def worker_call(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate the worker token, parse the body, map protocol errors."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = _bearer(request)
        worker = WorkerRegistration.objects.filter(
            token_hash=hash_token(token), status=WorkerStatus.ACTIVE).first() if token else None
        if worker is None:
            return problem(401, "unauthorized", "a registered worker's token is required")
        worker.touch()
        logs.add(worker_id=worker.id)
        try:
            body = _body(request) if request.method in ("POST", "PUT") and \
                request.content_type == "application/json" else {}
            return view(request, worker, body, *args, **kwargs)
        except service.Stale as exc:
            return problem(409, "stale", str(exc))
        except service.Gone as exc:
            return problem(410, "gone", str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return problem(400, "bad_request", f"{type(exc).__name__}: {exc}")

    return wrapped


# -- registration -----------------------------------------------------------------


def _enrollment_ok(token: str, pool: str) -> bool:
    if not token:
        return False
    shared = settings.NOETL_ENROLLMENT_TOKEN
    if shared and hmac.compare_digest(token, shared):
        return True
    expected = Pool.objects.filter(name=pool).values_list(
        "enrollment_token_hash", flat=True).first()
    return bool(expected) and hmac.compare_digest(hash_token(token), expected)


@csrf_exempt
@require_http_methods(["POST"])
def register(request: HttpRequest) -> HttpResponse:
    try:
        body = _body(request)
        pool = str(body.get("pool") or "default")
        capacity = int(body.get("capacity") or 1)
    except (ValueError, TypeError) as exc:
        return problem(400, "bad_request", str(exc))
    # Only failed enrollments count towards the limit, so a fleet starting at
    # once is never slowed; a guesser is stopped before the token is checked.
    wait = ratelimit.over("enroll", request)
    if wait is not None:
        return ratelimit.too_many(wait)
    if not _enrollment_ok(_bearer(request), pool):
        ratelimit.hit("enroll", request)
        return problem(401, "unauthorized", f"a valid enrollment token for pool {pool!r} "
                       "is required")
    token = new_token("nwt")
    worker = WorkerRegistration.objects.create(
        id=f"w-{uuid.uuid4().hex[:16]}", name=str(body.get("name") or "worker")[:200],
        pool=pool, capacity=capacity, version=str(body.get("version") or "")[:50],
        labels=body.get("labels") or {}, host=str(body.get("host") or "")[:200],
        token_hash=hash_token(token), last_seen_at=timezone.now())
    log.info("worker %s (%s) registered in pool %s", worker.id, worker.name, pool)
    return answer({"worker_id": worker.id, "token": token,
                   "lease_ttl_s": settings.NOETL_LEASE_TTL_S,
                   "heartbeat_s": settings.NOETL_HEARTBEAT_S,
                   "idle_poll_s": settings.NOETL_IDLE_POLL_S}, 201)


@worker_call
@require_http_methods(["DELETE"])
def deregister(request: HttpRequest, worker: WorkerRegistration, body: dict,
               worker_id: str) -> HttpResponse:
    if worker_id != worker.id:
        return problem(403, "forbidden", "a worker may only deregister itself")
    worker.status = WorkerStatus.GONE
    worker.deregistered_at = timezone.now()
    worker.save(update_fields=["status", "deregistered_at"])
    return answer({"worker_id": worker.id, "status": worker.status})


# -- claims, heartbeats, reports --------------------------------------------------


def _claim(worker: WorkerRegistration, want: dict[str, Any], claim_id: str,
           command_ids: list[str] | None = None) -> list[dict[str, Any]]:
    limit = max(0, min(int(want.get("max") or 1), worker.capacity))
    if not limit:
        return []
    return service.claim(worker.id, pool=worker.pool, limit=limit,
                         command_ids=command_ids, claim_id=claim_id)


@worker_call
@require_http_methods(["POST"])
def claim(request: HttpRequest, worker: WorkerRegistration, body: dict) -> HttpResponse:
    """Claim commands by id (a pointer arrived) or the next ones in line."""
    ids = body.get("command_ids")
    if ids is not None and not isinstance(ids, list):
        raise ValueError("command_ids must be a list")
    want = {"max": len(ids)} if ids else body
    tasks = _claim(worker, want, str(body.get("claim_id") or ""), ids)
    return answer({"tasks": tasks})


@worker_call
@require_http_methods(["POST"])
def heartbeat(request: HttpRequest, worker: WorkerRegistration, body: dict) -> HttpResponse:
    held = body.get("held") or []
    reply = service.heartbeat(worker.id, held)
    WorkerRegistration.objects.filter(id=worker.id).update(last_seen_at=timezone.now())
    return answer({**reply, "lease_ttl_s": settings.NOETL_LEASE_TTL_S})


@worker_call
@require_http_methods(["POST"])
def report(request: HttpRequest, worker: WorkerRegistration, body: dict) -> HttpResponse:
    """Fold a final report; with ``claim_next`` hand the reporting worker the
    command its report caused in the same round trip (report-and-claim).
    A repeated report (its answer was lost) is accepted as a duplicate and
    hands back the same grant."""
    data = body["report"]
    command_id = str(data.get("command_id") or "")
    logs.add(execution_id=command_id.split("/", 1)[0], command_id=command_id)
    want = body.get("claim_next") or {}
    limit = max(0, min(int(want.get("max") or 0), worker.capacity))
    with dispatch.deferred() as handled:
        tasks: list[dict[str, Any]] = []
        if limit:
            claim_id = f"r:{data['command_id']}:{data.get('delivery')}"
            _, tasks = service.report_and_claim(data, worker.id, pool=worker.pool,
                                                limit=limit, claim_id=claim_id)
            handled.update(task["command_id"] for task in tasks)
        else:
            service.report(data, worker.id)
        service.settle()
    return answer({"accepted": True, "tasks": tasks})


@worker_call
@require_http_methods(["POST"])
def release(request: HttpRequest, worker: WorkerRegistration, body: dict) -> HttpResponse:
    """Hand back a command the worker will not finish (it is stopping)."""
    service.release(body["command_id"], int(body["delivery"]), worker.id)
    service.settle()
    return answer({"released": body["command_id"]})


@worker_call
@require_http_methods(["GET"])
def credential(request: HttpRequest, worker: WorkerRegistration, body: dict,
               name: str) -> HttpResponse:
    """A credential's fields, for a command this worker holds (the lease is
    the proof)."""
    command_id = request.GET.get("command_id", "")
    delivery = int(request.GET.get("delivery") or 0)
    holds = Command.objects.filter(id=command_id, delivery=delivery, lease_owner=worker.id,
                                   state=CommandState.RUNNING).exists()
    if not holds:
        raise service.Stale(f"worker {worker.id} holds no lease on {command_id} "
                            f"delivery {delivery}")
    try:
        fields = service.credential_for(name, command_id, worker.id)
    except CredentialError as exc:
        status = 403 if isinstance(exc, CredentialNotAllowed) else 404
        return problem(status, "credential", str(exc))
    return answer({"name": name, "fields": fields})


@own_body_limit
@worker_call
@require_http_methods(["GET", "PUT"])
def blob(request: HttpRequest, worker: WorkerRegistration, body: dict,
         sha256: str) -> HttpResponse:
    if request.method == "PUT":
        limit = settings.NOETL_BLOB_MAX_BYTES
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return problem(413, "too_large",
                           f"a blob may hold at most {limit} bytes (NOETL_BLOB_MAX_BYTES)")
        data = _read_body(request)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("the body does not match its sha256")
        service.put_blob(sha256, data)
        return answer({"ref": f"sha256:{sha256}", "size": len(data)}, 201)
    try:
        data = service.get_blob(sha256)
    except Exception:
        return problem(404, "not_found", f"no blob {sha256}")
    return HttpResponse(data, content_type="application/octet-stream")


def _read_body(request: HttpRequest) -> bytes:
    """The raw body, read from the stream: ``request.body`` refuses anything
    above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), a limit meant for forms, and
    large step results are exactly what blobs are for (R11). The size was
    checked against NOETL_BLOB_MAX_BYTES first."""
    chunks = []
    while chunk := request.read(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
