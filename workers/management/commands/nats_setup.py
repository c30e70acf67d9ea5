"""``manage.py nats_setup``: create or update the JetStream stream for
command pointers and one durable pull consumer per pool. Idempotent; run it
on deploy. Workers only bind to what it made (DESIGN-NOTES R7)."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers import dispatch


class Command(BaseCommand):
    help = "Create or update the NATS JetStream stream and consumers for command pointers."

    def add_arguments(self, parser):
        parser.add_argument("--pool", action="append", dest="pools",
                            help="a worker pool (repeatable; default: default)")
        parser.add_argument("--nats", default=settings.NOETL_NATS_URL)

    def handle(self, *args, **options):
        url = options["nats"]
        if not url:
            raise CommandError("no NATS URL: pass --nats or set NATS_URL")
        pools = options["pools"] or ["default"]

        async def setup() -> None:
            nc = await dispatch.connect(url, allow_reconnect=False)
            try:
                await dispatch.ensure_stream(nc.jetstream(), pools)
            finally:
                await nc.close()

        try:
            asyncio.run(setup())
        except Exception as exc:
            raise CommandError(f"NATS setup at {url} failed: {type(exc).__name__}: {exc}")
        self.stdout.write(f"stream {dispatch.STREAM} ready; consumers: "
                          + ", ".join(dispatch.consumer_name(p) for p in pools))
