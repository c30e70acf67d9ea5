"""The nats tool against real NATS servers: the shared JetStream server on
127.0.0.1:4222, and one started here with a user and password (to prove a
bad credential is refused). Every test uses its own bucket or stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats as nats_client
import pytest

from workers.tools import nats as nats_tool
from workers.tools import run_tool
from workers.tools.base import CredentialError, ToolContext

SHARED_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def secured_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream server that wants user ``noetl`` / password ``pw-7731``."""
    port = _free_port()
    store = tmp_path_factory.mktemp("nats")
    proc = subprocess.Popen(
        [
            NATS_SERVER,
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(store),
            "--user",
            "noetl",
            "--pass",
            "pw-7731",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _ctx(secured_url: str = "", **kwargs: Any) -> ToolContext:
    store = {
        "nats_local": {"type": "nats", "url": SHARED_URL},
        "nats_secured": {
            "type": "nats",
            "url": secured_url,
            "user": "noetl",
            "password": "pw-7731",
        },
        "nats_wrong": {
            "type": "nats",
            "url": secured_url,
            "user": "noetl",
            "password": "nope",
        },
    }

    def credential(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} does not exist")
        return dict(store[name])

    kwargs.setdefault("timeout", 20.0)
    return ToolContext(credential=credential, **kwargs)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _run(config: dict[str, Any], ctx: ToolContext | None = None) -> dict[str, Any]:
    return nats_tool.run({"auth": "nats_local", **config}, ctx or _ctx())


@pytest.fixture
def bucket() -> Iterator[str]:
    name = _unique("noetl_test_kv")
    yield name
    asyncio.run(_drop_buckets(name))


async def _drop_buckets(name: str) -> None:
    nc = await nats_client.connect(SHARED_URL)
    js = nc.jetstream()
    for drop in (js.delete_key_value, js.delete_object_store):
        with contextlib.suppress(Exception):  # only one of the two exists
            await drop(name)
    await nc.close()


def test_kv_put_get_keys_delete_round_trip_maps_and_text(bucket: str) -> None:
    put = _run(
        {
            "operation": "kv_put",
            "bucket": bucket,
            "key": "cfg.a",
            "value": {"n": 1, "tags": ["x"]},
        }
    )
    assert put["status"] == "ok", put
    assert put["data"]["revision"] == 1
    _run({"operation": "kv_put", "bucket": bucket, "key": "note", "value": "plain"})
    got = _run({"operation": "kv_get", "bucket": bucket, "key": "cfg.a"})
    assert got["data"]["value"] == {"n": 1, "tags": ["x"]}
    assert got["data"]["found"] is True
    text = _run({"operation": "kv_get", "bucket": bucket, "key": "note"})
    assert text["data"]["value"] == "plain"
    keys = _run({"operation": "kv_keys", "bucket": bucket})
    assert keys["data"]["keys"] == ["cfg.a", "note"]
    deleted = _run({"operation": "kv_delete", "bucket": bucket, "key": "cfg.a"})
    assert deleted["data"]["deleted"] is True
    after = _run({"operation": "kv_get", "bucket": bucket, "key": "cfg.a"})
    assert after["data"] == {
        "bucket": bucket,
        "key": "cfg.a",
        "found": False,
        "value": None,
    }
    assert _run({"operation": "kv_keys", "bucket": bucket})["data"]["keys"] == ["note"]


def test_object_store_put_get_list_delete(bucket: str) -> None:
    put = _run(
        {
            "operation": "object_put",
            "bucket": bucket,
            "name": "report.csv",
            "value": "a,b\n1,2\n",
        }
    )
    assert put["status"] == "ok", put
    assert put["data"]["size"] == 8
    got = _run({"operation": "object_get", "bucket": bucket, "name": "report.csv"})
    assert got["data"]["value"] == "a,b\n1,2\n"
    binary = _run(
        {
            "operation": "object_put",
            "bucket": bucket,
            "name": "raw.bin",
            "value": "AAEC/w==",
            "encoding": "base64",
        }
    )
    assert binary["data"]["size"] == 4
    raw = _run({"operation": "object_get", "bucket": bucket, "name": "raw.bin"})
    assert raw["data"]["value"] == "AAEC/w=="
    listed = _run({"operation": "object_list", "bucket": bucket})
    assert sorted(o["name"] for o in listed["data"]["objects"]) == [
        "raw.bin",
        "report.csv",
    ]
    _run({"operation": "object_delete", "bucket": bucket, "name": "raw.bin"})
    missing = _run({"operation": "object_get", "bucket": bucket, "name": "raw.bin"})
    assert missing["error"]["kind"] == "not_found"
    assert "object 'raw.bin' does not exist" in missing["error"]["message"]


def test_js_publish_lands_in_the_stream_with_its_sequence() -> None:
    stream = _unique("NOETL_TEST_STREAM")
    subject = f"noetl.test.{stream.lower()}"

    async def make() -> None:
        nc = await nats_client.connect(SHARED_URL)
        await nc.jetstream().add_stream(name=stream, subjects=[subject])
        await nc.close()

    async def drop() -> None:
        nc = await nats_client.connect(SHARED_URL)
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(make())
    try:
        first = _run(
            {
                "operation": "js_publish",
                "subject": subject,
                "value": {"order": 1},
                "headers": {"Nats-Msg-Id": "o-1"},
            }
        )
        again = _run(
            {
                "operation": "js_publish",
                "subject": subject,
                "value": {"order": 1},
                "headers": {"Nats-Msg-Id": "o-1"},
            }
        )
        second = _run({"operation": "js_publish", "subject": subject, "value": "x"})
        assert first["data"] == {
            "subject": subject,
            "stream": stream,
            "seq": 1,
            "duplicate": False,
        }
        assert again["data"]["duplicate"] is True
        assert second["data"]["seq"] == 2
    finally:
        asyncio.run(drop())


def test_publishing_where_no_stream_listens_is_not_found() -> None:
    outcome = _run(
        {"operation": "js_publish", "subject": _unique("noetl.nowhere"), "value": "x"}
    )
    assert outcome["error"]["kind"] == "not_found"
    assert "no JetStream stream captures subject" in outcome["error"]["message"]


def test_reading_a_bucket_that_does_not_exist_is_not_found() -> None:
    name = _unique("noetl_test_absent")
    outcome = _run({"operation": "kv_get", "bucket": name, "key": "k"})
    assert outcome["status"] == "error"
    assert outcome["error"]["kind"] == "not_found"
    assert f"bucket {name!r} does not exist" in outcome["error"]["message"]


def test_malformed_requests_are_config_errors(bucket: str) -> None:
    no_op = _run({"bucket": bucket})
    assert no_op["error"]["kind"] == "config"
    assert "no operation given: use one of kv_get" in no_op["error"]["message"]
    unknown = _run({"operation": "kv_explode", "bucket": bucket})
    assert "'kv_explode' is not an operation" in unknown["error"]["message"]
    no_key = _run({"operation": "kv_put", "bucket": bucket, "value": 1})
    assert no_key["error"] == {
        "kind": "config",
        "retryable": False,
        "message": "nats kv_put: key is required",
    }
    bad_key = _run({"operation": "kv_put", "bucket": bucket, "key": "a b!", "value": 1})
    assert bad_key["error"]["kind"] == "config"
    bad_b64 = _run(
        {
            "operation": "object_put",
            "bucket": bucket,
            "name": "x",
            "value": "%%%",
            "encoding": "base64",
        }
    )
    assert "not valid base64" in bad_b64["error"]["message"]


def test_the_right_credential_is_accepted_and_a_wrong_one_refused(
    secured_url: str,
) -> None:
    ctx = _ctx(secured_url)
    config = {
        "operation": "kv_put",
        "bucket": _unique("noetl_sec"),
        "key": "k",
        "value": "v",
    }
    good = nats_tool.run({**config, "auth": "nats_secured"}, ctx)
    assert good["status"] == "ok", good
    bad = nats_tool.run({**config, "auth": "nats_wrong"}, ctx)
    assert bad["error"]["kind"] == "auth"
    assert bad["error"]["retryable"] is False
    assert "refused the credentials" in bad["error"]["message"]
    assert "nope" not in bad["error"]["message"]
    missing = nats_tool.run({**config, "auth": "nats_nobody"}, ctx)
    assert missing["error"]["kind"] == "credential"


def test_an_unreachable_server_is_a_retryable_connection_error() -> None:
    port = _free_port()
    started = time.monotonic()
    outcome = nats_tool.run(
        {"operation": "kv_keys", "bucket": "b", "url": f"nats://127.0.0.1:{port}"},
        _ctx(),
    )
    assert time.monotonic() - started < 5
    assert outcome["error"]["kind"] == "connection"
    assert outcome["error"]["retryable"] is True
    assert (
        f"cannot connect to nats nats://127.0.0.1:{port}" in outcome["error"]["message"]
    )


def test_it_runs_through_run_tool_with_a_duration(bucket: str) -> None:
    outcome = run_tool(
        "nats",
        {
            "auth": "nats_local",
            "operation": "kv_put",
            "bucket": bucket,
            "key": "k",
            "value": 1,
        },
        _ctx(),
    )
    assert outcome["status"] == "ok"
    assert outcome["meta"]["duration_ms"] > 0
