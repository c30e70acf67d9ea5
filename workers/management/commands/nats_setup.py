"""``manage.py nats_setup``: create or update the JetStream stream for
command pointers and one durable pull consumer per pool. Idempotent; run it
on deploy. Workers only bind to what it made (DESIGN-NOTES R7). ``--delete``
removes this namespace's stream and consumers (for throw-away stacks)."""

from __future__ import annotations

import asyncio

import nats.errors

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers import dispatch


class Command(BaseCommand):
    help = "Create or update the NATS JetStream stream and consumers for command pointers."

    def add_arguments(self, parser):
        parser.add_argument("--pool", action="append", dest="pools",
                            help="a worker pool (repeatable; default: default)")
        parser.add_argument("--nats", default=settings.NOETL_NATS_URL)
        parser.add_argument("--delete", action="store_true",
                            help="delete the stream instead (its pointers are lost)")

    def handle(self, *args, **options):
        url = options["nats"]
        if not url:
            raise CommandError("no NATS URL: pass --nats or set NATS_URL")
        pools = options["pools"] or ["default"]

        async def setup() -> None:
            nc = await dispatch.connect(url, once=True)
            try:
                if options["delete"]:
                    await nc.jetstream().delete_stream(dispatch.stream_name())
                else:
                    await dispatch.ensure_stream(nc.jetstream(), pools)
            finally:
                await nc.close()

        try:
            asyncio.run(setup())
        except nats.errors.NoServersError:
            raise CommandError(f"cannot reach NATS at {url}: is the server running?")
        except Exception as exc:
            raise CommandError(f"NATS setup at {url} failed: {type(exc).__name__}: {exc}")
        if options["delete"]:
            self.stdout.write(f"stream {dispatch.stream_name()} deleted")
            return
        self.stdout.write(f"stream {dispatch.stream_name()} ready; consumers: "
                          + ", ".join(dispatch.consumer_name(p) for p in pools))
