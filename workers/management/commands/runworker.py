"""``manage.py runworker``: a stateless worker process for one pool.

It registers with the pool's enrollment token, pulls command pointers from
NATS and claims, heartbeats and reports over the worker protocol; it never
touches the database. SIGTERM (or SIGINT) stops it taking work; running
commands get ``--grace`` seconds to finish and report, the rest are handed
back to run elsewhere, and the worker deregisters.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from noetl_site.text import count
from workers.control_plane import HttpControlPlane, ProtocolError
from workers.feeder import PointerFeeder
from workers.worker import Worker

log = logging.getLogger("noetl.workers.runworker")
lifecycle = logging.getLogger("noetl.lifecycle")


class Command(BaseCommand):
    help = "Run a worker: claim commands of a pool over the worker protocol and run them."

    def add_arguments(self, parser):
        parser.add_argument("--server", default=settings.NOETL_SERVER,
                            help="control plane URL (default NOETL_SERVER)")
        parser.add_argument("--pool", default="default")
        parser.add_argument("--concurrency", type=int, default=settings.NOETL_WORKERS)
        parser.add_argument("--name", default="")
        parser.add_argument("--enrollment-token", default=settings.NOETL_ENROLLMENT_TOKEN,
                            help="the pool's enrollment token (default NOETL_ENROLLMENT_TOKEN)")
        parser.add_argument("--nats", default=settings.NOETL_NATS_URL,
                            help="NATS URL for pointers (default NATS_URL; none: claim only)")
        parser.add_argument("--grace", type=float, default=30.0,
                            help="seconds running commands get to finish on SIGTERM")

    def handle(self, *args, **options):
        from workers.tools.python import start_zygote

        if not options["server"]:
            raise CommandError("no control plane: pass --server URL or set NOETL_SERVER")
        start_zygote()  # fork the Python zygote before any thread starts
        plane = HttpControlPlane(options["server"], options["enrollment_token"],
                                 pool=options["pool"], capacity=options["concurrency"],
                                 name=options["name"])
        try:
            plane.register(version="1")
        except ProtocolError as exc:
            raise CommandError(f"registration refused: {exc}") from None
        except Exception as exc:
            raise CommandError(f"cannot reach the control plane at {options['server']}: "
                               f"{exc}") from None
        worker = Worker(plane, pool=options["pool"], concurrency=options["concurrency"],
                        worker_id=plane.worker_id,
                        idle_poll_s=plane.settings.get("idle_poll_s", 2.0),
                        heartbeat_s=plane.settings.get("heartbeat_s", 10.0),
                        task_timeout_s=settings.NOETL_TASK_TIMEOUT_S)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        worker.start()
        feeder = None
        if options["nats"]:
            feeder = PointerFeeder(options["nats"], worker, plane.claim_ids)
            feeder.start()
        lifecycle.info("worker %s (%s) in pool %r, %s, server %s, %s",
                       plane.worker_id, plane.name, options["pool"],
                       count(options["concurrency"], "slot"), options["server"],
                       f"NATS {options['nats']}" if feeder else "no NATS")
        while not stop.wait(0.5):
            pass
        lifecycle.info("stopping: no new work; waiting for running commands")
        started = time.monotonic()
        worker.stopping.set()
        worker.doorbell.ring()
        while worker.busy() and time.monotonic() - started < options["grace"]:
            time.sleep(0.1)
        for held in worker.held():
            worker._hand_back(held)
        worker.stop(timeout=2.0)
        if feeder is not None:
            feeder.join(timeout=3.0)
        try:
            plane.deregister()
        except Exception as exc:
            log.warning("could not deregister: %s", exc)
        lifecycle.info("worker %s stopped", plane.worker_id)
