"""Pulls command pointers from the pool's JetStream consumer for a worker.

While the worker has free slots, the feeder fetches up to that many
pointers, claims their commands by id in one call, hands what was granted
to the slots and acks every pointer whose claim was answered, granted or
not (the lease is the only timer from then on). If the claim call fails,
the pointers are nak'ed with a delay and come back. The feeder binds to
the durable consumer ``manage.py nats_setup`` made; if it is missing the
worker still runs, claiming directly, and says what to do.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import nats.errors
import nats.js.errors

from executions.engine.values import loads
from workers import dispatch
from workers.worker import Worker

log = logging.getLogger("noetl.workers.feeder")


class PointerFeeder:
    def __init__(self, url: str, worker: Worker, claim_ids: Any) -> None:
        self.url = url
        self.worker = worker
        self.claim_ids = claim_ids
        self.bound = threading.Event()
        self._thread = threading.Thread(target=self._main, name="noetl-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:
            log.exception("the pointer feeder stopped; the worker goes on claiming directly")

    async def _run(self) -> None:
        pool = self.worker.pool
        nc = await dispatch.connect(self.url)
        try:
            js = nc.jetstream()
            while not self.worker.stopping.is_set():
                try:
                    sub = await js.pull_subscribe_bind(
                        durable=dispatch.consumer_name(pool), stream=dispatch.stream_name())
                    break
                except nats.js.errors.NotFoundError:
                    log.error("JetStream consumer %s for pool %r is missing; run "
                              "`manage.py nats_setup --pool %s`. Claiming directly meanwhile.",
                              dispatch.consumer_name(pool), pool, pool)
                    await asyncio.sleep(10)
            else:
                return
            self.bound.set()
            self.worker.pointer_fed = True
            loop = asyncio.get_running_loop()
            while not self.worker.stopping.is_set():
                free = self.worker.free_slots()  # offered tasks count as held
                if free <= 0:
                    await asyncio.sleep(0.02)
                    continue
                try:
                    messages = await sub.fetch(batch=free, timeout=1.0)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                except Exception as exc:  # reconnecting: the fallback covers
                    log.warning("fetching pointers failed: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                await self._claim(loop, messages)
        finally:
            self.worker.pointer_fed = False
            await nc.close()

    async def _claim(self, loop: asyncio.AbstractEventLoop, messages: list[Any]) -> None:
        ids = []
        for message in messages:
            try:
                ids.append(loads(message.data)["command_id"])
            except Exception:
                log.warning("dropping a malformed pointer: %r", message.data[:200])
        try:
            tasks = await loop.run_in_executor(None, self.claim_ids, ids) if ids else []
        except Exception as exc:
            log.warning("claiming %d pointed command(s) failed: %s", len(ids), exc)
            for message in messages:
                await message.nak(delay=1.0)
            return
        self.worker.offer(tasks)
        for message in messages:
            await message.ack()
