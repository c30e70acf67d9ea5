"""The ``http`` tool (DSL sections 5.2, 8, 10.10, 10.12; DESIGN-NOTES R8, R9).

One request with a synchronous httpx client. The request runs on a helper
thread while the calling thread watches ``ctx.cancelled`` and the task's
overall deadline, so a cancel returns at once (the client is closed and the
helper thread ends with its own timeout at the latest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stopwatch,
    ToolContext,
    error,
    ok,
    parse_seconds,
)

_QUERY_METHODS = {"GET", "DELETE", "HEAD", "OPTIONS"}
_FALSE = {"false", "no", "off", "0", ""}
_POLL_S = 0.05
_SNIPPET = 200


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)  # httpx content/json/data
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(30.0))
    verify: Any = True
    follow_redirects: bool = False

    @property
    def label(self) -> str:
        return f"{self.method} {self.url}"


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    try:
        request = build_request(config, ctx)
    except CredentialError as exc:
        return watch.stamp(error("credential", str(exc)))
    except ConfigError as exc:
        return watch.stamp(error("config", str(exc)))
    if ctx.cancelled.is_set():
        return watch.stamp(error("cancelled", f"{request.label}: cancelled"))
    return watch.stamp(_send(request, ctx))


# --- Building the request. ----------------------------------------------------


def build_request(config: dict[str, Any], ctx: ToolContext) -> _Request:
    """The request a config describes. Raises ConfigError or CredentialError."""
    method = str(config.get("method") or "GET").upper()
    request = _Request(method=method, url=_url(config))
    request.headers = _headers(config.get("headers"))
    request.params = dict(config.get("params") or {})
    _set_body(request, config)
    for name, value in _auth_headers(config.get("auth"), ctx).items():
        _set_default_header(request.headers, name, value)
    _set_idempotency_key(request, config, ctx)
    request.timeout = _timeout(config, ctx)
    request.verify = _verify(config)
    request.follow_redirects = _flag(config.get("follow_redirects"), False)
    return request


def _url(config: dict[str, Any]) -> str:
    given = config.get("input")
    sources = [given if isinstance(given, dict) else {}, config]
    for source in sources:
        for key in ("url", "endpoint"):
            if source.get(key):
                return str(source[key])
    raise ConfigError("no url given: set url or endpoint")


def _headers(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("headers must be a map")
    return {str(k): _header_value(v) for k, v in raw.items() if v is not None}


def _header_value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _find_header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _set_default_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header unless the user already set it (in any letter case)."""
    if _find_header(headers, name) is None:
        headers[name] = value


def _drop_header(headers: dict[str, str], name: str) -> None:
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)


def _verify(config: dict[str, Any]) -> Any:
    value = config.get("verify_ssl", config.get("verify"))
    if isinstance(value, str) and value.strip().lower() not in _FALSE | {"true"}:
        return value  # a CA bundle path
    return _flag(value, True)


def _timeout(config: dict[str, Any], ctx: ToolContext) -> httpx.Timeout:
    raw = config.get("timeout", config.get("timeout_seconds"))
    default = ctx.timeout if ctx.timeout and ctx.timeout > 0 else None
    try:
        if isinstance(raw, dict):
            connect = parse_seconds(raw.get("connect"), default)
            read = parse_seconds(raw.get("read"), default)
            write = parse_seconds(raw.get("write"), read)
            pool = parse_seconds(raw.get("pool"), connect)
            return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)
        return httpx.Timeout(parse_seconds(raw, default))
    except ValueError as exc:
        raise ConfigError(f"bad timeout: {exc}") from exc


def _set_idempotency_key(
    request: _Request, config: dict[str, Any], ctx: ToolContext
) -> None:
    """Non-GET requests carry a key derived from the effect key (DSL 10.25)."""
    setting = config.get("idempotency_key", True)
    if request.method == "GET" or not _flag(setting, True):
        return
    if isinstance(setting, str) and setting.strip().lower() not in {"true", "yes"}:
        key = setting  # an explicit key
    elif ctx.effect_key:
        key = hashlib.sha256(ctx.effect_key.encode("utf-8")).hexdigest()
    else:
        return  # no effect key: a constant key would merge unrelated requests
    _set_default_header(request.headers, "Idempotency-Key", key)


# --- The body. ----------------------------------------------------------------


def _set_body(request: _Request, config: dict[str, Any]) -> None:
    """Fill params/body from json | form | payload | body | data (DSL 5.2)."""
    if config.get("json") is not None:
        request.body = {"json": config["json"]}
        return
    if config.get("form") is not None:
        request.body = _encode(config["form"], request, form=True)
        return
    for key in ("payload", "body"):
        if config.get(key) is not None:
            _set_plain_body(request, config[key])
            return
    data = config.get("data")
    if isinstance(data, dict) and data and set(data) <= {"query", "body"}:
        request.params.update(data.get("query") or {})
        if data.get("body") is not None:
            request.body = _encode(data["body"], request)
    elif data is not None:
        _set_plain_body(request, data)


def _set_plain_body(request: _Request, value: Any) -> None:
    """A map given to GET/DELETE is the query string; otherwise the body."""
    if request.method in _QUERY_METHODS and isinstance(value, dict):
        request.params.update(value)
    else:
        request.body = _encode(value, request)


def _encode(value: Any, request: _Request, form: bool = False) -> dict[str, Any]:
    content_type = (_find_header(request.headers, "Content-Type") or "").lower()
    if isinstance(value, bytes):
        return {"content": value}
    if isinstance(value, str):
        return {"content": value.encode("utf-8")}
    if form or "application/x-www-form-urlencoded" in content_type:
        if not isinstance(value, dict):
            raise ConfigError("a form-encoded body must be a map")
        return {"data": {k: _form_value(v) for k, v in value.items()}}
    if "multipart/form-data" in content_type and isinstance(value, dict):
        _drop_header(request.headers, "Content-Type")  # httpx adds the boundary
        return {"files": {k: (None, _form_value(v)) for k, v in value.items()}}
    return {"json": value}


def _form_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_form_value(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


# --- Credentials. -------------------------------------------------------------


def _auth_headers(auth: Any, ctx: ToolContext) -> dict[str, str]:
    """Headers from ``auth``: a credential name, or a map (DSL section 8)."""
    if not auth:
        return {}
    if isinstance(auth, str):
        return _headers_from_fields(ctx.credential(auth), f"credential {auth!r}")
    if not isinstance(auth, dict):
        raise CredentialError("auth must be a credential name or a map")
    name = auth.get("key") or auth.get("name") or auth.get("credential")
    if str(auth.get("source", "")).lower() == "credential" or (name and len(auth) == 1):
        if not name:
            raise CredentialError("auth source is credential but names none")
        return _headers_from_fields(ctx.credential(str(name)), f"credential {name!r}")
    fields = auth.get("fields") if isinstance(auth.get("fields"), dict) else auth
    return _headers_from_fields(fields, "inline auth")


def _headers_from_fields(fields: dict[str, Any], label: str) -> dict[str, str]:
    kind = str(fields.get("type") or "").lower()
    headers = _headers(fields.get("headers"))
    token = fields.get("token") or fields.get("access_token")
    token = token or fields.get("bearer_token")
    user = fields.get("username", fields.get("user"))
    password = fields.get("password")
    if kind == "bearer" or (not kind and token):
        if not token:
            raise CredentialError(f"{label}: bearer auth needs a token")
        headers.setdefault("Authorization", f"Bearer {token}")
    elif kind == "basic" or (not kind and user is not None and password is not None):
        pair = f"{user or ''}:{password or ''}".encode()
        headers.setdefault("Authorization", f"Basic {base64.b64encode(pair).decode()}")
    elif kind in {"api_key", "apikey"} or (not kind and fields.get("api_key")):
        name = str(fields.get("header") or "X-API-Key")
        headers.setdefault(name, str(fields.get("api_key") or fields.get("value")))
    if not headers:
        raise CredentialError(
            f"{label} has no token, username/password, api_key or headers for http"
        )
    return headers


# --- Sending, and the outcome. -------------------------------------------------


def _send(request: _Request, ctx: ToolContext) -> dict[str, Any]:
    client = httpx.Client(
        timeout=request.timeout,
        verify=request.verify,
        follow_redirects=request.follow_redirects,
    )
    box: dict[str, Any] = {}
    worker = threading.Thread(target=_perform, args=(client, request, box))
    worker.daemon = True
    worker.start()
    deadline = time.monotonic() + max(ctx.timeout or 0, _longest(request.timeout))
    try:
        stopped = _wait(worker, ctx, deadline)
    finally:
        client.close()
    if stopped == "cancelled":
        return error("cancelled", f"{request.label}: cancelled")
    if stopped == "timeout":
        return error("timeout", f"{request.label}: timed out", retryable=True)
    if "error" in box:
        return _failure(request, box["error"])
    return _response_outcome(request, box["response"])


def _perform(client: httpx.Client, request: _Request, box: dict[str, Any]) -> None:
    try:
        box["response"] = client.request(
            request.method,
            request.url,
            headers=request.headers,
            params=request.params or None,
            **request.body,
        )
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        box["error"] = exc


def _longest(timeout: httpx.Timeout) -> float:
    """An overall bound: every phase at its limit (infinite if one has none)."""
    parts = [timeout.connect, timeout.read, timeout.write, timeout.pool]
    if any(p is None for p in parts):
        return math.inf
    return sum(p for p in parts if p is not None)


def _wait(worker: threading.Thread, ctx: ToolContext, deadline: float) -> str:
    while True:
        worker.join(_POLL_S)
        if not worker.is_alive():
            return "done"
        if ctx.cancelled.is_set():
            return "cancelled"
        if time.monotonic() >= deadline:
            return "timeout"


def _failure(request: _Request, exc: Exception) -> dict[str, Any]:
    label = request.label
    if isinstance(exc, httpx.TimeoutException):
        phase = _timeout_phase(exc)
        limit = getattr(request.timeout, phase, None)
        return error(
            "timeout",
            f"{label}: timed out after {limit:g}s ({phase})"
            if limit
            else f"{label}: timed out ({phase})",
            retryable=True,
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return error("client_error", f"{label}: too many redirects")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return error("config", f"{label}: bad URL: {exc}")
    if isinstance(exc, httpx.TransportError):
        return error(
            "connection", f"{label}: {_connect_reason(request, exc)}", retryable=True
        )
    if isinstance(exc, TypeError | ValueError):
        return error("config", f"{label}: cannot build the request: {exc}")
    raise exc


def _timeout_phase(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx.WriteTimeout):
        return "write"
    if isinstance(exc, httpx.PoolTimeout):
        return "pool"
    return "read"


def _connect_reason(request: _Request, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(s in lowered for s in ("name or service", "nodename", "getaddrinfo")) or (
        "name resolution" in lowered or "no address associated" in lowered
    ):
        host = httpx.URL(request.url).host
        return f"cannot resolve host {host!r}"
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return f"TLS error: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {text}"
    return f"connection failed: {text}"


def _response_outcome(request: _Request, response: httpx.Response) -> dict[str, Any]:
    headers = dict(response.headers.items())
    http = {"status": response.status_code, "headers": headers}
    result = {
        "status_code": response.status_code,
        "headers": headers,
        "url": str(response.url),
        "elapsed": response.elapsed.total_seconds(),
        "data": response.text,
    }
    parsed, decode_problem = _parse_body(response)
    if decode_problem is None:
        result["data"] = parsed
    if not response.is_success:
        return _status_error(request, response, result, http)
    if decode_problem is not None:
        message = f"{request.label}: response is not valid JSON: {decode_problem}"
        return error("decode", message, data=result, http=http)
    return ok(result, http=http)


def _parse_body(response: httpx.Response) -> tuple[Any, str | None]:
    """The body as JSON when the content type says JSON, else text."""
    content_type = response.headers.get("content-type", "").lower()
    if "json" not in content_type:
        return response.text, None
    text = response.text
    if not text.strip():
        return None, None
    try:
        return json.loads(text), None
    except ValueError as exc:
        return text, str(exc)


def _status_error(
    request: _Request,
    response: httpx.Response,
    result: dict[str, Any],
    http: dict[str, Any],
) -> dict[str, Any]:
    code = response.status_code
    kind, retryable = _status_kind(code)
    message = f"{request.label}: HTTP {code} {response.reason_phrase}".rstrip()
    snippet = " ".join(response.text.split())[:_SNIPPET]
    if snippet:
        message += f": {snippet}"
    outcome = error(
        kind, message, retryable=retryable, code=code, data=result, http=http
    )
    outcome["error"]["status_code"] = code
    retry_after = _retry_after(response)
    if retry_after is not None:
        outcome["error"]["retry_after"] = retry_after
    return outcome


def _status_kind(code: int) -> tuple[str, bool]:
    if code in (401, 403):
        return "auth", False
    if code == 429:
        return "rate_limit", True
    if code >= 500:
        return "server_error", True
    return "client_error", False  # other 4xx, and 1xx/3xx not followed


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: left to the caller's backoff
