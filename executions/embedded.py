"""Embedded mode: the whole system in one process over a SQLite file.

One writer thread performs every database write (DESIGN-NOTES R2); worker
threads run tools and reach it through ``LocalControlPlane``, which speaks
the same protocol as the HTTP control plane and passes only JSON across, so
nothing works here that would not work distributed. A duty thread expires
leases and applies inbox rows, as ``runscheduler`` does in distributed mode.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, connection

from executions import service
from executions.engine.values import dumps, loads
from executions.models import Execution
from workers import worker as worker_mod

log = logging.getLogger("noetl.executions.embedded")


def _json(value: Any) -> Any:
    return loads(dumps(value))


class LocalControlPlane:
    """The worker protocol as direct calls on the single writer thread."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime

    def claim(self, worker_id: str, pool: str, limit: int) -> list[dict[str, Any]]:
        return _json(self.runtime.write(service.claim, worker_id, pool=pool, limit=limit))

    def report(self, report: dict[str, Any], worker_id: str, pool: str,
               claim_next: int) -> list[dict[str, Any]]:
        report = _json(report)

        def fold() -> list[dict[str, Any]]:
            with self.runtime.rings_after() as rings:
                try:
                    if not claim_next:
                        service.report(report, worker_id)
                        return []
                    _, tasks = service.report_and_claim(
                        report, worker_id, pool=pool, limit=claim_next)
                except (service.Stale, service.Gone) as exc:
                    raise worker_mod.Stale(str(exc)) from exc
                rings.taken += len(tasks)
                return tasks

        return _json(self.runtime.write(fold))

    def heartbeat(self, worker_id: str, held: list[dict[str, Any]]) -> dict[str, Any]:
        return _json(self.runtime.write(service.heartbeat, worker_id, held))

    def credential(self, name: str, command_id: str, delivery: int) -> dict[str, Any]:
        return _json(
            self.runtime.write(service.credential_for, name, command_id, "embedded")
        )

    def put_blob(self, sha256: str, data: bytes) -> None:
        self.runtime.write(service.put_blob, sha256, data)

    def get_blob(self, sha256: str) -> bytes:
        return self.runtime.write(service.get_blob, sha256)

    def new_execution_id(self) -> str:
        return service.new_execution_id()


class _Rings:
    """Doorbell rings held back while a report claims what it caused."""

    def __init__(self) -> None:
        self.dispatched = 0
        self.taken = 0


class EmbeddedRuntime:
    def __init__(self, workers: int = 4, task_timeout_s: float = 600.0,
                 duty_interval_s: float = 1.0, fire_schedules: bool = False) -> None:
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noetl-writer")
        self.doorbell = worker_mod.Doorbell()
        self.control_plane = LocalControlPlane(self)
        self.worker = worker_mod.Worker(
            self.control_plane, concurrency=workers, doorbell=self.doorbell,
            worker_id="embedded", idle_poll_s=1.0, task_timeout_s=task_timeout_s)
        self.duty_interval_s = duty_interval_s
        # Only `noetl schedule serve` fires schedules: a one-off `noetl run`
        # must not start unrelated runs it would abandon on exit.
        self.fire_schedules = fire_schedules
        self._ended = threading.Condition()
        self.interrupted = threading.Event()
        self._stop = threading.Event()
        self.listeners: list[Callable[[str, list[dict[str, Any]]], None]] = []
        # Set by rings_after() on the writer thread only.
        self._held_rings: _Rings | None = None

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> EmbeddedRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from workers.tools.python import start_zygote

        start_zygote()  # fork the python zygote before this process starts threads
        service.listeners.append(self._on_commit)
        self.worker.start()
        threading.Thread(target=self._duties, name="noetl-duties", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.worker.stop(timeout=5.0)
        if self._on_commit in service.listeners:
            service.listeners.remove(self._on_commit)
        self.writer.submit(lambda: connection.close()).result()
        self.writer.shutdown(wait=True)

    # -- the single writer --------------------------------------------------

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            future = self.writer.submit(self._call, fn, args, kwargs)
        except RuntimeError:  # the writer was shut down: the process is exiting
            raise worker_mod.Closed("the embedded runtime has stopped") from None
        return future.result()

    def _call(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        result = fn(*args, **kwargs)
        service.settle()
        return result

    @contextlib.contextmanager
    def rings_after(self) -> Iterator[_Rings]:
        """Hold the doorbell while a report folds and claims its successor:
        then ring for what is left, so idle slots don't all wake to find the
        reporting slot already took the work."""
        rings = self._held_rings = _Rings()
        try:
            yield rings
        finally:
            self._held_rings = None
            if rings.dispatched > rings.taken:
                self.doorbell.ring(rings.dispatched - rings.taken)

    def _on_commit(self, execution_id: str, events: list[dict[str, Any]],
                   status: str, dispatched: list[str]) -> None:
        if dispatched:
            if self._held_rings is not None:
                self._held_rings.dispatched += len(dispatched)
            else:
                self.doorbell.ring(len(dispatched))
        for listener in self.listeners:
            try:
                listener(execution_id, events)
            except Exception:
                log.exception("event listener failed")
        if status != "running":
            with self._ended:
                self._ended.notify_all()

    def _duties(self) -> None:
        while not self._stop.wait(self.duty_interval_s):
            try:
                self.write(self._duty_round)
            except Exception:
                if not self._stop.is_set():
                    log.exception("duty round failed")

    def _duty_round(self) -> None:
        close_old_connections()
        if self.fire_schedules:
            from schedules import duty

            duty.fire_due(duty.db_now())
            duty.start_queued()
            service.settle()
        if service.duty_round():
            self.doorbell.ring()

    # -- runs ---------------------------------------------------------------

    def start_run(self, path: str, version: Any = None,
                  payload: dict[str, Any] | None = None) -> str:
        execution, _ = self.write(service.start_execution, path, version,
                                  _json(payload or {}), trigger={"kind": "cli"})
        return execution.id

    def status(self, execution_id: str) -> str:
        return self.write(
            lambda: Execution.objects.values_list("status", flat=True).get(id=execution_id))

    def wait(self, execution_id: str, timeout: float | None = None,
             interruptible: bool = False) -> str:
        """Block until the run ends (or, if interruptible, until interrupt()).

        Return the run's status: "running" when the wait was cut short.
        """
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(execution_id)
            if status != "running" or (interruptible and self.interrupted.is_set()):
                return status
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return status
            with self._ended:
                self._ended.wait(min(0.5, remaining) if remaining else 0.5)

    def interrupt(self) -> None:
        """Cut an interruptible wait() short; safe to call from a signal handler.

        The handler runs on the main thread, which may hold the (reentrant)
        condition lock already, so taking it here cannot deadlock.
        """
        self.interrupted.set()
        with self._ended:
            self._ended.notify_all()

    def cancel(self, execution_id: str, reason: str = "cancelled by user") -> bool:
        cancelled = self.write(service.cancel, execution_id, reason)
        # A heartbeat now, not at the next tick: its answer names the
        # cancelled commands, and the worker interrupts their tools at once.
        self.worker.beat()
        return cancelled
