"""The worker loop both run modes share.

A worker has N slots. Each slot claims a command (woken by a doorbell, or
asking directly every couple of seconds so a lost doorbell costs latency,
not a stuck run), runs it with ``CommandRunner`` and reports; the report may
hand back the command it caused, so a chain of steps stays on one slot with
one round trip per step. One heartbeat thread renews every lease the worker
holds and learns which of its commands were cancelled or lost.

The worker talks to the control plane only through the ``ControlPlane``
protocol: in-process calls in embedded mode, HTTP in distributed mode.
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from typing import Any, Protocol

from executions.engine.values import Values
from noetl_site import logs
from noetl_site.text import count
from workers.masking import Masker
from workers.runner import CommandRunner

log = logging.getLogger("noetl.workers.worker")


class Stale(Exception):
    """The control plane refused a report: the lease moved on or the run ended."""


class Closed(Exception):
    """The control plane has shut down (the embedded process is exiting):
    nothing more can be reported, and the run's log says how it ended."""


class ControlPlane(Protocol):
    def claim(self, worker_id: str, pool: str, limit: int) -> list[dict[str, Any]]: ...

    def report(
        self, report: dict[str, Any], worker_id: str, pool: str, claim_next: int
    ) -> list[dict[str, Any]]: ...

    def heartbeat(
        self, worker_id: str, held: list[dict[str, Any]]
    ) -> dict[str, Any]: ...

    def credential(
        self, name: str, command_id: str, delivery: int
    ) -> dict[str, Any]: ...

    def put_blob(self, sha256: str, data: bytes) -> None: ...

    def get_blob(self, sha256: str) -> bytes: ...

    def new_execution_id(self) -> str: ...


class MaskedValues:
    """The worker's ``Values`` for one command: each value is masked before
    it is stored, so no blob ever holds a secret the command has read."""

    def __init__(self, values: Values, masker: Masker) -> None:
        self.values = values
        self.masker = masker

    def externalize(self, value: Any, *, always: bool = False) -> Any:
        return self.values.externalize(self.masker.value(value), always=always)

    def externalize_each(self, mapping: dict[str, Any]) -> dict[str, Any]:
        return {name: self.externalize(value) for name, value in mapping.items()}

    def resolve(self, value: Any) -> Any:
        return self.values.resolve(value)


def _summary(report: dict[str, Any]) -> str:
    """A report in a few words, for the log."""
    ms = (report.get("measures") or {}).get("ms")
    took = f" in {ms:.1f} ms" if ms is not None else ""
    if "suspend" in report:
        return "suspended"
    if "iterations" in report:
        failed = sum(it.get("status") == "error" for it in report["iterations"])
        return f"{count(len(report['iterations']), 'iteration')}, {failed} failed{took}"
    if report.get("status") == "error":
        error = report.get("error") or {}
        return f"error {error.get('kind')}: {error.get('message')}{took}"
    return f"{report.get('status')}{took}"


class Doorbell:
    """Wakes idle slots when work may be waiting. A ring is never lost."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def ring(self, slots: int | None = None) -> None:
        """Wake ``slots`` idle waiters (all of them by default). A slot that
        is busy at the time sees the ring when it next looks."""
        with self._cond:
            self._generation += 1
            if slots is None:
                self._cond.notify_all()
            else:
                self._cond.notify(slots)

    def generation(self) -> int:
        return self._generation

    def wait(self, seen: int, timeout: float) -> bool:
        """Sleep until a ring after generation ``seen`` or the timeout; say
        whether it rang."""
        with self._cond:
            if self._generation == seen:
                self._cond.wait(timeout)
            return self._generation != seen


class Worker:
    def __init__(
        self,
        control_plane: ControlPlane,
        *,
        pool: str = "default",
        concurrency: int = 4,
        doorbell: Doorbell | None = None,
        worker_id: str | None = None,
        idle_poll_s: float = 2.0,
        heartbeat_s: float = 10.0,
        task_timeout_s: float = 600.0,
    ) -> None:
        self.cp = control_plane
        self.pool = pool
        self.concurrency = concurrency
        self.doorbell = doorbell or Doorbell()
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.idle_poll_s = idle_poll_s
        self.heartbeat_s = heartbeat_s
        self.task_timeout_s = task_timeout_s
        self.values = Values(self)
        self.stopping = threading.Event()
        self._held: dict[str, tuple[int, threading.Event]] = {}
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Tasks claimed for this worker by a pointer feeder, not started yet.
        self._ready: collections.deque[dict[str, Any]] = collections.deque()
        # With a feeder, a doorbell ring means "a task is ready", and idle
        # slots claim the next command themselves only every idle_poll_s.
        self.pointer_fed = False

    # Values' blob store, backed by the control plane.
    def put_blob(self, sha256: str, data: bytes) -> None:
        self.cp.put_blob(sha256, data)

    def get_blob(self, sha256: str) -> bytes:
        return self.cp.get_blob(sha256)

    def start(self) -> None:
        for n in range(self.concurrency):
            thread = threading.Thread(
                target=self._slot, name=f"noetl-slot-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(
            target=self._heartbeats, name="noetl-heartbeat", daemon=True
        )
        beat.start()
        self._threads.append(beat)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work; wait for running commands to finish and report."""
        self.stopping.set()
        self.doorbell.ring()
        for thread in self._threads:
            thread.join(timeout)

    def busy(self) -> int:
        return len(self._held)

    def free_slots(self) -> int:
        return 0 if self.stopping.is_set() else self.concurrency - len(self._held)

    def offer(self, tasks: list[dict[str, Any]]) -> None:
        """Hand tasks claimed elsewhere (by the pointer feeder) to idle slots.
        They are held, so heartbeats renew their leases, from now on."""
        with self._held_lock:
            for task in tasks:
                self._held[task["command_id"]] = (task["delivery"], threading.Event())
                self._ready.append(task)
        if tasks:
            self.doorbell.ring()

    def held(self) -> list[dict[str, Any]]:
        with self._held_lock:
            return [
                {"command_id": cid, "delivery": delivery}
                for cid, (delivery, _) in self._held.items()
            ]

    # -- slots --------------------------------------------------------------

    def _slot(self) -> None:
        task: dict[str, Any] | None = None
        claim_next = True
        while not self.stopping.is_set():
            if task is None:
                seen = self.doorbell.generation()
                task = self._take_ready()
                if task is None and (claim_next or not self.pointer_fed):
                    task = self._claim()
                if task is None:
                    claim_next = not self.doorbell.wait(seen, self.idle_poll_s)
                    continue
            task = self._run(task)
        # Stopping: what was handed to this worker but never started goes back.
        while (task := task or self._take_ready()) is not None:
            self._hand_back(task)
            task = None

    def _take_ready(self) -> dict[str, Any] | None:
        with self._held_lock:
            return self._ready.popleft() if self._ready else None

    def _hand_back(self, task: dict[str, Any]) -> None:
        with self._held_lock:
            self._held.pop(task["command_id"], None)
        release = getattr(self.cp, "release", None)
        if release is None:
            return
        try:
            release(task["command_id"], task["delivery"])
        except Exception as exc:  # its lease expires and it is requeued anyway
            log.warning("could not hand back %s: %s", task["command_id"], exc)

    def _claim(self) -> dict[str, Any] | None:
        try:
            tasks = self.cp.claim(self.worker_id, self.pool, 1)
        except Exception:
            log.exception("claim failed; retrying")
            self.stopping.wait(1.0)
            return None
        return tasks[0] if tasks else None

    def _run(self, task: dict[str, Any]) -> dict[str, Any] | None:
        with logs.bound(
            execution_id=task["execution_id"],
            step=task["step_def"]["name"],
            command_id=task["command_id"],
            worker_id=self.worker_id,
        ):
            return self._run_bound(task)

    def _run_bound(self, task: dict[str, Any]) -> dict[str, Any] | None:
        with self._held_lock:
            entry = self._held.get(task["command_id"])
            cancelled = entry[1] if entry else threading.Event()
            self._held[task["command_id"]] = (task["delivery"], cancelled)
        masker = Masker()

        def credential(name: str) -> dict[str, Any]:
            fields = self.cp.credential(name, task["command_id"], task["delivery"])
            masker.learn(fields)
            return fields

        def secret(value: str) -> None:
            if isinstance(value, str) and len(value) >= 4:
                masker.learn_strings({value})

        try:
            runner = CommandRunner(
                task,
                MaskedValues(self.values, masker),  # type: ignore[arg-type]
                credential=credential,
                secret=secret,
                new_id=self.cp.new_execution_id,
                cancelled=cancelled,
                default_timeout=self.task_timeout_s,
            )
            try:
                report = runner.run()
            except Exception as exc:  # the runner must never lose a command
                log.exception("command %s crashed the runner", task["command_id"])
                report = {
                    "command_id": task["command_id"],
                    "delivery": task["delivery"],
                    "status": "error",
                    "error": {
                        "kind": "internal",
                        "retryable": False,
                        "message": f"worker error: {type(exc).__name__}: {exc}",
                    },
                }
                if task.get("iterations") is not None:
                    report = {
                        "command_id": task["command_id"],
                        "delivery": task["delivery"],
                        "iterations": [
                            {
                                "index": it["index"],
                                "status": "error",
                                "error": report["error"],
                            }
                            for it in task["iterations"]
                        ],
                    }
        finally:
            with self._held_lock:
                self._held.pop(task["command_id"], None)
        if cancelled.is_set():
            return None
        report = masker.value(report)
        if log.isEnabledFor(logging.INFO):
            log.info("ran %s: %s", task["command_id"], _summary(report))
        return self._report(report)

    def _report(self, report: dict[str, Any]) -> dict[str, Any] | None:
        claim_next = 0 if self.stopping.is_set() else 1
        for attempt in range(30):
            try:
                tasks = self.cp.report(report, self.worker_id, self.pool, claim_next)
                return tasks[0] if tasks else None
            except Stale as exc:
                log.info("report for %s refused: %s", report["command_id"], exc)
                return None
            except Closed:
                log.info("report for %s dropped: shutting down", report["command_id"])
                return None
            except Exception:
                log.exception(
                    "report for %s failed (attempt %d)",
                    report["command_id"],
                    attempt + 1,
                )
                if self.stopping.wait(min(5.0, 0.2 * 2**attempt)) and attempt > 5:
                    break
        return None

    # -- heartbeats ---------------------------------------------------------

    def _heartbeats(self) -> None:
        while not self.stopping.wait(self.heartbeat_s):
            self.beat()

    def beat(self) -> None:
        held = self.held()
        if not held:
            return
        try:
            reply = self.cp.heartbeat(self.worker_id, held)
        except Exception:
            log.exception("heartbeat failed")
            return
        for command_id in list(reply.get("cancel", ())) + list(reply.get("lost", ())):
            with self._held_lock:
                entry = self._held.get(command_id)
            if entry is not None:
                entry[1].set()
