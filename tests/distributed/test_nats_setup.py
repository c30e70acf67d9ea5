"""``manage.py nats_setup`` against the local NATS server: it makes a
namespace's stream and consumers, leaves other namespaces alone, deletes
its own, and fails at once with a clear message when NATS is unreachable."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from django.core.management import CommandError, call_command

from workers import dispatch

NATS_URL = "nats://127.0.0.1:4222"


def _streams() -> list[str]:
    async def names() -> list[str]:
        nc = await nats.connect(NATS_URL)
        try:
            return [info.config.name for info in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    return asyncio.run(names())


def test_it_creates_and_deletes_only_its_own_namespace(settings, capsys) -> None:
    settings.NOETL_NATS_NAMESPACE = f"t-{uuid.uuid4().hex[:8]}"
    stream = dispatch.stream_name()
    assert stream.endswith("_COMMANDS") and "-" not in stream
    before = set(_streams())

    call_command("nats_setup", "--nats", NATS_URL, "--pool", "p1", "--pool", "p2")
    assert f"consumers: {settings.NOETL_NATS_NAMESPACE}-p1" in capsys.readouterr().out
    assert set(_streams()) == before | {stream}

    call_command("nats_setup", "--nats", NATS_URL, "--delete")
    assert set(_streams()) == before


def test_it_refuses_an_unreachable_server_at_once() -> None:
    with pytest.raises(CommandError, match="cannot reach NATS at nats://127.0.0.1:1"):
        call_command("nats_setup", "--nats", "nats://127.0.0.1:1")


def test_a_namespace_that_nats_cannot_name_is_refused(monkeypatch) -> None:
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import noetl_site.settings as project

    monkeypatch.setenv("NOETL_NATS_NAMESPACE", "bad.name")
    with pytest.raises(ImproperlyConfigured, match="NOETL_NATS_NAMESPACE"):
        importlib.reload(project)
    monkeypatch.delenv("NOETL_NATS_NAMESPACE")
    importlib.reload(project)
