"""``HttpControlPlane``: the worker protocol over HTTP, for ``runworker``.

It implements the same ``ControlPlane`` protocol as embedded mode's direct
calls. Calls that are safe to repeat are retried on connection errors and
5xx answers with the same body: a claim carries a ``claim_id`` and a report
its (command, delivery), so the server answers a repeat with the first
grant. A 409 or 410 becomes ``Stale``: the worker drops that work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import httpx

from executions.engine.values import dumps, loads
from workers.tools.base import CredentialError
from workers.worker import Stale

log = logging.getLogger("noetl.workers.control_plane")
PROTOCOL_PATH = "/api/worker/v1/"


class ProtocolError(Exception):
    """The control plane refused a call in a way retrying cannot fix."""


def uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) \
        | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class HttpControlPlane:
    def __init__(self, server: str, enrollment_token: str, *, pool: str = "default",
                 capacity: int = 4, name: str = "", timeout_s: float = 30.0,
                 retries: int = 8) -> None:
        self.base = server.rstrip("/") + PROTOCOL_PATH
        self.enrollment_token = enrollment_token
        self.pool = pool
        self.capacity = capacity
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.retries = retries
        self.client = httpx.Client(timeout=timeout_s)
        self.token = ""
        self.worker_id = ""
        self.settings: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
              params: dict[str, Any] | None = None, token: str | None = None,
              retry: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        content = raw
        if body is not None:
            content = dumps(body)
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        attempts = self.retries if retry else 1
        for attempt in range(attempts):
            try:
                response = self.client.request(method, self.base + path, content=content,
                                               params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt + 1 >= attempts:
                    raise
                # A first failure is most often a kept-alive connection the
                # server had just closed: worth a retry, not a warning.
                level = logging.DEBUG if attempt == 0 else logging.WARNING
                log.log(level, "%s %s failed (%s); retrying", method, path, exc)
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                if attempt + 1 >= attempts:
                    return response
                log.warning("%s %s answered %s; retrying", method, path,
                            response.status_code)
            time.sleep(min(5.0, 0.2 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code in (409, 410):
            raise Stale(response.json().get("message", response.text))
        if response.status_code >= 400:
            try:
                message = response.json().get("message")
            except ValueError:
                message = response.text[:300]
            raise ProtocolError(f"{response.request.method} {response.request.url.path}: "
                                f"{response.status_code} {message}")
        return loads(response.content)

    # -- registration ---------------------------------------------------------

    def register(self, version: str = "", labels: dict[str, Any] | None = None) -> None:
        reply = self._json(self._call("POST", "workers", {
            "name": self.name, "pool": self.pool, "capacity": self.capacity,
            "version": version, "labels": labels or {}, "host": socket.gethostname(),
        }, token=self.enrollment_token))
        self.token = reply["token"]
        self.worker_id = reply["worker_id"]
        self.settings = reply

    def deregister(self) -> None:
        if self.worker_id:
            self._json(self._call("DELETE", f"workers/{self.worker_id}", retry=False))

    # -- the ControlPlane protocol ------------------------------------------------

    def claim(self, worker_id: str, pool: str, limit: int) -> list[dict[str, Any]]:
        reply = self._json(self._call("POST", "claim", {
            "claim_id": uuid.uuid4().hex, "max": limit}))
        return reply["tasks"]

    def claim_ids(self, command_ids: list[str]) -> list[dict[str, Any]]:
        reply = self._json(self._call("POST", "claim", {
            "claim_id": uuid.uuid4().hex, "command_ids": command_ids}))
        return reply["tasks"]

    def report(self, report: dict[str, Any], worker_id: str, pool: str,
               claim_next: int) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"report": report}
        if claim_next:
            body["claim_next"] = {"max": claim_next}
        return self._json(self._call("POST", "report", body))["tasks"]

    def heartbeat(self, worker_id: str, held: list[dict[str, Any]]) -> dict[str, Any]:
        return self._json(self._call("POST", "heartbeat", {"held": held}, retry=False))

    def release(self, command_id: str, delivery: int) -> None:
        self._json(self._call("POST", "release", {"command_id": command_id,
                                                  "delivery": delivery}))

    def credential(self, name: str, command_id: str, delivery: int) -> dict[str, Any]:
        response = self._call("GET", f"credentials/{name}",
                              params={"command_id": command_id, "delivery": delivery})
        if response.status_code in (403, 404):
            raise CredentialError(response.json().get("message")
                                  or f"credential {name!r} is not available")
        return self._json(response)["fields"]

    def put_blob(self, sha256: str, data: bytes) -> None:
        self._json(self._call("PUT", f"blobs/{sha256}", raw=data))

    def get_blob(self, sha256: str) -> bytes:
        response = self._call("GET", f"blobs/{sha256}")
        if response.status_code >= 400:
            self._json(response)
        return response.content

    def new_execution_id(self) -> str:
        return uuid7()
