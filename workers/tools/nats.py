"""The ``nats`` tool (DSL sections 5.8, 8, 10.10): JetStream key-value and
object stores, and JetStream publish.

``operation`` is one of ``kv_get``, ``kv_put``, ``kv_delete``, ``kv_keys``,
``object_get``, ``object_put``, ``object_delete``, ``object_list``,
``js_publish``. Each call opens one connection (no reconnects: a server
that is down is reported at once), does the operation and closes it.

Values: a map or list is stored as JSON, text as UTF-8, and read back the
same way (``format: text|json|base64`` forces one reading). A missing key
is not an error: ``kv_get`` returns ``found: false``. A missing bucket is
(``error.kind: not_found``), unless a put creates it (``create``, default
true).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
from nats import errors as nats_errors
from nats.js import errors as js_errors

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stop,
    Stopwatch,
    ToolContext,
    credential_fields,
    decode_value,
    encode_value,
    error,
    first_field,
    ok,
    parse_seconds,
    truthy,
)

DEFAULT_URL = "nats://127.0.0.1:4222"
CONNECT_TIMEOUT_S = 5.0
_POLL_S = 0.05
OPERATIONS = (
    "kv_get",
    "kv_put",
    "kv_delete",
    "kv_keys",
    "object_get",
    "object_put",
    "object_delete",
    "object_list",
    "js_publish",
)


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        operation = _operation(config)
        options = connect_options(config, ctx)
        timeout = parse_seconds(config.get("timeout"), ctx.timeout)
    except CredentialError as exc:
        return error("credential", str(exc))
    except (ConfigError, ValueError) as exc:
        return error("config", str(exc))
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before connecting")
    return asyncio.run(_guarded(operation, config, options, ctx, timeout))


def _operation(config: dict[str, Any]) -> str:
    raw = config.get("operation") or config.get("op") or config.get("action")
    operation = str(raw or "").strip().lower()
    if operation not in OPERATIONS:
        given = f"{raw!r} is not an operation" if raw else "no operation given"
        raise ConfigError(f"{given}: use one of {', '.join(OPERATIONS)}")
    return operation


# --- Connecting. -------------------------------------------------------------------


def connect_options(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` from the credential and config."""
    fields = credential_fields(config, ctx)
    for key in ("url", "servers", "user", "password", "token"):
        if config.get(key) not in (None, ""):
            fields[key] = config[key]
    servers = first_field(fields, "servers", "url", "nats_url") or DEFAULT_URL
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    options: dict[str, Any] = {"servers": list(servers)}
    user = first_field(fields, "user", "username")
    if user is not None:
        options["user"] = str(user)
        options["password"] = str(first_field(fields, "password") or "")
    token = first_field(fields, "token", "auth_token")
    if token is not None:
        options["token"] = str(token)
    seed = first_field(fields, "nkeys_seed", "nkey_seed", "seed")
    if seed is not None:
        options["nkeys_seed_str"] = str(seed)
    creds = first_field(fields, "creds", "credentials_file", "user_credentials")
    if creds is not None:
        options["user_credentials"] = str(creds)
    return options


def _label(options: dict[str, Any]) -> str:
    return ",".join(options["servers"])


async def _connect(options: dict[str, Any]) -> Any:
    problems: list[BaseException] = []

    async def remember(exc: BaseException) -> None:
        problems.append(exc)

    try:
        return await nats.connect(
            **options,
            connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=remember,
        )
    except Exception as exc:  # every failure is reported
        raise Stop(_connect_error(options, exc, problems)) from exc


def _connect_error(
    options: dict[str, Any], exc: BaseException, problems: list[BaseException]
) -> dict[str, Any]:
    where = f"cannot connect to nats {_label(options)}"
    text = " ".join(str(p) for p in [exc, *problems])
    if "authorization violation" in text.lower() or "authentication" in text.lower():
        return error("auth", f"{where}: the server refused the credentials")
    if isinstance(exc, nats_errors.NoServersError | OSError | TimeoutError):
        reason = str(problems[-1]) if problems else "no server answered"
        return error("connection", f"{where}: {reason}", retryable=True)
    return error("connection", f"{where}: {exc}", retryable=True)


# --- Running one operation with a deadline and cancellation. ----------------------


async def _guarded(
    operation: str,
    config: dict[str, Any],
    options: dict[str, Any],
    ctx: ToolContext,
    timeout: float | None,
) -> dict[str, Any]:
    task = asyncio.ensure_future(_perform(operation, config, options))
    deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
    while not task.done():
        await asyncio.wait({task}, timeout=_POLL_S)
        if ctx.cancelled.is_set() and not task.done():
            task.cancel()
            return error("cancelled", f"nats {operation}: cancelled")
        if deadline is not None and time.monotonic() >= deadline and not task.done():
            task.cancel()
            message = f"nats {operation}: timed out after {timeout:g}s"
            return error("timeout", message, retryable=True)
    try:
        return task.result()
    except Stop as failed:
        return failed.outcome


async def _perform(
    operation: str, config: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    nc = await _connect(options)
    try:
        js = nc.jetstream()
        try:
            handler = _HANDLERS[operation]
            return ok(await handler(js, config))
        except Stop:
            raise
        except ConfigError as exc:
            return error("config", f"nats {operation}: {exc}")
        except (js_errors.Error, nats_errors.Error) as exc:
            return _operation_error(operation, config, exc)
    finally:
        await nc.close()


def _operation_error(
    operation: str, config: dict[str, Any], exc: Exception
) -> dict[str, Any]:
    prefix = f"nats {operation}"
    if isinstance(exc, js_errors.BucketNotFoundError):
        bucket = config.get("bucket")
        return error("not_found", f"{prefix}: bucket {bucket!r} does not exist")
    if isinstance(exc, js_errors.ObjectNotFoundError):
        return error("not_found", f"{prefix}: object {_name(config)!r} does not exist")
    if isinstance(exc, js_errors.NoStreamResponseError):
        subject = config.get("subject")
        return error(
            "not_found", f"{prefix}: no JetStream stream captures subject {subject!r}"
        )
    if isinstance(exc, js_errors.InvalidKeyError | js_errors.InvalidBucketNameError):
        return error("config", f"{prefix}: {exc}")
    if isinstance(exc, nats_errors.TimeoutError):
        return error("timeout", f"{prefix}: the server did not answer", retryable=True)
    if isinstance(exc, js_errors.APIError):
        text = getattr(exc, "description", None) or str(exc)
        return error("server_error", f"{prefix}: {text}", code=exc.err_code)
    return error("connection", f"{prefix}: {exc}", retryable=True)


# --- Values. -------------------------------------------------------------------------


def _decoded(raw: bytes | None, config: dict[str, Any]) -> Any:
    try:
        return decode_value(raw, str(config.get("format") or ""))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _required(config: dict[str, Any], *keys: str) -> str:
    value = first_field(config, *keys)
    if value is None:
        raise ConfigError(f"{keys[0]} is required")
    return str(value)


def _name(config: dict[str, Any]) -> str | None:
    return first_field(config, "name", "key", "object")


def _payload(config: dict[str, Any]) -> bytes:
    for key in ("value", "data", "payload"):
        if key in config:
            try:
                return encode_value(config[key], str(config.get("encoding") or ""))
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
    raise ConfigError("value is required")


# --- Key-value. ------------------------------------------------------------------


async def _kv(js: Any, config: dict[str, Any], create: bool) -> Any:
    bucket = _required(config, "bucket")
    try:
        return await js.key_value(bucket)
    except js_errors.BucketNotFoundError:
        if not create:
            raise
        return await js.create_key_value(bucket=bucket)


async def _kv_get(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    kv = await _kv(js, config, create=False)
    key = _required(config, "key")
    try:
        entry = await kv.get(key)
    except js_errors.KeyNotFoundError:
        return {
            "bucket": str(config["bucket"]),
            "key": key,
            "found": False,
            "value": None,
        }
    return {
        "bucket": entry.bucket,
        "key": key,
        "found": True,
        "value": _decoded(entry.value, config),
        "revision": entry.revision,
    }


async def _kv_put(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    kv = await _kv(js, config, create=truthy(config.get("create", True)))
    key = _required(config, "key")
    revision = await kv.put(key, _payload(config))
    return {"bucket": str(config["bucket"]), "key": key, "revision": revision}


async def _kv_delete(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    kv = await _kv(js, config, create=False)
    key = _required(config, "key")
    await kv.delete(key)
    return {"bucket": str(config["bucket"]), "key": key, "deleted": True}


async def _kv_keys(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    kv = await _kv(js, config, create=False)
    try:
        keys = sorted(await kv.keys())
    except js_errors.NoKeysError:
        keys = []
    return {"bucket": str(config["bucket"]), "keys": keys, "count": len(keys)}


# --- Object store. --------------------------------------------------------------------


async def _store(js: Any, config: dict[str, Any], create: bool) -> Any:
    bucket = _required(config, "bucket")
    try:
        return await js.object_store(bucket)
    except js_errors.BucketNotFoundError:
        if not create:
            raise
        return await js.create_object_store(bucket=bucket)


async def _object_put(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    store = await _store(js, config, create=truthy(config.get("create", True)))
    name = _required(config, "name", "key", "object")
    info = await store.put(name, _payload(config))
    return {"bucket": info.bucket, "name": info.name, "size": info.size}


async def _object_get(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    store = await _store(js, config, create=False)
    name = _required(config, "name", "key", "object")
    result = await store.get(name)
    return {
        "bucket": result.info.bucket,
        "name": name,
        "size": result.info.size,
        "value": _decoded(result.data, config),
    }


async def _object_delete(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    store = await _store(js, config, create=False)
    name = _required(config, "name", "key", "object")
    await store.delete(name)
    return {"bucket": config["bucket"], "name": name, "deleted": True}


async def _object_list(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    store = await _store(js, config, create=False)
    try:
        infos = await store.list()
    except js_errors.NotFoundError:
        infos = []
    objects = [
        {"name": info.name, "size": info.size} for info in infos if not info.deleted
    ]
    return {"bucket": config["bucket"], "objects": objects, "count": len(objects)}


# --- JetStream publish. ---------------------------------------------------------------


async def _js_publish(js: Any, config: dict[str, Any]) -> dict[str, Any]:
    subject = _required(config, "subject")
    headers = config.get("headers") or None
    if headers is not None and not isinstance(headers, dict):
        raise ConfigError("headers must be a map")
    ack = await js.publish(
        subject,
        _payload(config),
        headers={str(k): str(v) for k, v in headers.items()} if headers else None,
        stream=config.get("stream") or None,
    )
    return {
        "subject": subject,
        "stream": ack.stream,
        "seq": ack.seq,
        "duplicate": bool(ack.duplicate),
    }


_HANDLERS = {
    "kv_get": _kv_get,
    "kv_put": _kv_put,
    "kv_delete": _kv_delete,
    "kv_keys": _kv_keys,
    "object_get": _object_get,
    "object_put": _object_put,
    "object_delete": _object_delete,
    "object_list": _object_list,
    "js_publish": _js_publish,
}
