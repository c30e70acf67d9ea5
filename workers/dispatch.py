"""NATS JetStream as the doorbell (DESIGN.md section 5, DESIGN-NOTES R7).

The database is the queue. After a transaction that issued commands
commits, the control plane publishes one pointer per command to
``<namespace>.commands.<pool>``; a worker pulls pointers from its pool's durable
consumer and claims the commands over the worker protocol. A pointer that
is lost costs latency only: idle workers also claim directly, and the
scheduler republishes commands left queued too long with a new publish
generation, so JetStream's duplicate window never swallows the repair.

The stream and consumers are created by ``manage.py nats_setup``; workers
bind to them and never create or delete them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import nats
from nats.js import api

from executions.engine.values import dumps

log = logging.getLogger("noetl.workers.dispatch")

ACK_WAIT_S = 30.0


def namespace() -> str:
    """NOETL_NATS_NAMESPACE: installations sharing one NATS server each use
    their own stream, subjects and consumers (default ``noetl``)."""
    from django.conf import settings

    return settings.NOETL_NATS_NAMESPACE


def stream_name() -> str:
    return f"{namespace().upper().replace('-', '_')}_COMMANDS"


def subject(pool: str) -> str:
    return f"{namespace()}.commands.{pool}"


def consumer_name(pool: str) -> str:
    return f"{namespace()}-{pool}"


def message_id(pointer: dict[str, Any]) -> str:
    return f"{pointer['command_id']}:{pointer['delivery']}:{pointer['publish_gen']}"


async def connect(url: str, *, once: bool = False) -> nats.NATS:
    """A NATS connection that keeps reconnecting while the server is away,
    or with ``once`` (one-shot commands) fails at the first refusal. Errors
    are logged as one line, at most every 30 s, instead of a traceback per
    retry."""
    last = [0.0]

    async def quiet(exc: Exception) -> None:
        now = time.monotonic()
        if now - last[0] >= 30.0:
            last[0] = now
            log.warning("NATS at %s: %s: %s", url, type(exc).__name__, exc)

    return await nats.connect(
        url, connect_timeout=2, reconnect_time_wait=0.5,
        # nats-py drops a server only after more than N failed attempts, and
        # never with N = 0: one retry is the smallest finite number.
        allow_reconnect=not once, max_reconnect_attempts=1 if once else -1,
        error_cb=quiet)


async def ensure_stream(js: Any, pools: list[str]) -> None:
    """Create or update the stream and one durable pull consumer per pool."""
    config = api.StreamConfig(
        name=stream_name(), subjects=[subject("*")], storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.WORK_QUEUE, max_age=24 * 3600.0,
        duplicate_window=120.0)
    try:
        await js.stream_info(config.name)
        await js.update_stream(config)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
    for pool in pools:
        await js.add_consumer(config.name, api.ConsumerConfig(
            durable_name=consumer_name(pool), filter_subject=subject(pool),
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S,
            max_ack_pending=10_000, deliver_policy=api.DeliverPolicy.ALL))


class Publisher:
    """One NATS connection per process, on its own event-loop thread, so
    synchronous Django code can publish. Started lazily (after a gunicorn
    fork) and restarted in a forked child."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: nats.NATS | None = None
        self._lock = threading.Lock()
        # After a failure, publishing is skipped for a few seconds instead of
        # making every request wait for a server that is down.
        self._down_until = 0.0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="noetl-nats-publisher",
                                 daemon=True).start()
                self._loop, self._pid, self._nc = loop, os.getpid(), None
            return self._loop

    async def _publish(self, pointers: list[dict[str, Any]]) -> None:
        if self._nc is None:
            self._nc = await connect(self.url)
        if not self._nc.is_connected:
            raise ConnectionError("NATS is not connected (reconnecting)")
        js = self._nc.jetstream(timeout=self.timeout_s)
        acks = []
        for pointer in pointers:
            body = dumps({k: pointer[k] for k in ("command_id", "execution_id", "delivery")})
            acks.append(await js.publish_async(
                subject(pointer["pool"]), body, headers={"Nats-Msg-Id": message_id(pointer)}))
        await asyncio.wait_for(asyncio.gather(*acks), self.timeout_s)

    def publish(self, pointers: list[dict[str, Any]]) -> bool:
        """Publish and wait for the stream's acks, once for the batch. A
        failure is logged, not raised: the repair duty republishes."""
        if not pointers:
            return True
        if time.monotonic() < self._down_until:
            return False
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._publish(pointers), loop)
        try:
            future.result(self.timeout_s + 1.0)
            return True
        except Exception as exc:
            future.cancel()
            self._down_until = time.monotonic() + 5.0
            log.warning("could not publish %d pointer(s) (%s: %s); the repair duty "
                        "will republish them", len(pointers), type(exc).__name__, exc)
            return False


# -- the commit listener --------------------------------------------------------


class _Deferred(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        self.ids: list[str] = []


_deferred = _Deferred()
_publisher: Publisher | None = None


def publisher() -> Publisher | None:
    global _publisher
    from django.conf import settings

    if _publisher is None and settings.NOETL_NATS_URL:
        _publisher = Publisher(settings.NOETL_NATS_URL)
    return _publisher


def pointers(command_ids: list[str]) -> list[dict[str, Any]]:
    """Pointers for the commands among ``command_ids`` still waiting for a
    claim, read after commit so each carries its current delivery."""
    from executions.models import Command, CommandState

    rows = Command.objects.filter(id__in=command_ids, state=CommandState.QUEUED).values(
        "id", "execution_id", "delivery", "pool", "publish_gen")
    return [{"command_id": r["id"], "execution_id": r["execution_id"],
             "delivery": r["delivery"], "pool": r["pool"], "publish_gen": r["publish_gen"]}
            for r in rows]


def publish(command_ids: list[str]) -> None:
    target = publisher()
    if target is not None and command_ids:
        target.publish(pointers(command_ids))


def on_commit(execution_id: str, events: list[dict[str, Any]], status: str,
              dispatched: list[str]) -> None:
    """``executions.service`` listener: publish what a commit dispatched,
    or hold it while a ``deferred()`` block is open on this thread."""
    if not dispatched:
        return
    if _deferred.depth:
        _deferred.ids.extend(dispatched)
    else:
        publish(dispatched)


@contextlib.contextmanager
def deferred() -> Iterator[set[str]]:
    """Hold the pointers of commits made inside the block and publish them at
    its end, except those the body adds to the yielded set because it
    handled them itself (report-and-claim hands the next command straight to
    the reporting worker)."""
    _deferred.depth += 1
    handled: set[str] = set()
    try:
        yield handled
    finally:
        _deferred.depth -= 1
        if not _deferred.depth:
            held = [i for i in dict.fromkeys(_deferred.ids) if i not in handled]
            _deferred.ids = []
            publish(held)
