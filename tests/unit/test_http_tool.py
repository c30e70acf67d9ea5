"""The http tool against a real local HTTP server (no mocks)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from workers.tools import http as http_tool
from workers.tools import noop
from workers.tools.base import CredentialError, ToolContext


class _Handler(BaseHTTPRequestHandler):
    """JSON echo plus canned failures, keyed by path."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/status/"):
            self._status(int(path.rsplit("/", 1)[1]))
        elif path == "/badjson":
            self._send(200, b"{not json", "application/json")
        elif path == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif path == "/slow":
            time.sleep(1.5)
            self._json(200, {"slow": True})
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(200, self._echo())

    def _echo(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        return {
            "method": self.command,
            "path": urlsplit(self.path).path,
            "query": parse_qs(urlsplit(self.path).query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }

    def _status(self, code: int) -> None:
        extra = {"Retry-After": "7"} if code == 429 else {}
        self._json(code, {"error": f"status {code}"}, extra)

    def _json(self, code: int, value: Any, extra: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(value).encode(), "application/json", extra)

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that timed out or cancelled hang up early, on purpose


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def free_port() -> int:
    """A port nobody listens on: bound, then released."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _ctx(**kwargs: Any) -> ToolContext:
    kwargs.setdefault("step", "fetch")
    kwargs.setdefault("timeout", 10.0)
    return ToolContext(**kwargs)


def _credentials(store: dict[str, dict[str, Any]]):
    def lookup(name: str) -> dict[str, Any]:
        if name not in store:
            raise CredentialError(f"credential {name!r} is not available here")
        return store[name]

    return lookup


# --- Success. -----------------------------------------------------------------


def test_get_json(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/echo", "params": {"a": 1}}, _ctx())
    assert out["status"] == "ok"
    data = out["data"]
    assert data["status_code"] == 200
    assert data["url"] == f"{base_url}/echo?a=1"
    assert data["headers"]["content-type"] == "application/json"
    assert isinstance(data["elapsed"], float)
    assert data["data"]["method"] == "GET"
    assert data["data"]["query"] == {"a": ["1"]}
    assert out["http"]["status"] == 200
    assert "duration_ms" in out["meta"]


def test_url_from_input_wins_and_endpoint_is_a_synonym(base_url: str) -> None:
    config = {"endpoint": f"{base_url}/wrong", "input": {"url": f"{base_url}/right"}}
    out = http_tool.run(config, _ctx())
    assert out["data"]["data"]["path"] == "/right"
    out = http_tool.run({"endpoint": f"{base_url}/ep"}, _ctx())
    assert out["data"]["data"]["path"] == "/ep"


def test_text_body(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/text"}, _ctx())
    assert out["status"] == "ok"
    assert out["data"]["data"] == "plain words"


def test_post_payload_is_json(base_url: str) -> None:
    config = {"method": "post", "url": f"{base_url}/echo", "payload": {"x": [1, 2]}}
    echo = http_tool.run(config, _ctx())["data"]["data"]
    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"x": [1, 2]}
    assert echo["headers"]["content-type"] == "application/json"


def test_json_key_is_a_body(base_url: str) -> None:
    config = {"method": "PUT", "url": f"{base_url}/echo", "json": {"k": "v"}}
    echo = http_tool.run(config, _ctx())["data"]["data"]
    assert json.loads(echo["body"]) == {"k": "v"}


def test_get_payload_becomes_query(base_url: str) -> None:
    config = {"url": f"{base_url}/echo", "payload": {"q": "x"}}
    echo = http_tool.run(config, _ctx())["data"]["data"]
    assert echo["query"] == {"q": ["x"]}
    assert echo["body"] == ""


def test_form_encoding(base_url: str) -> None:
    config = {
        "method": "POST",
        "url": f"{base_url}/echo",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "body": {"grant_type": "client_credentials", "n": 3},
    }
    echo = http_tool.run(config, _ctx())["data"]["data"]
    assert parse_qs(echo["body"]) == {"grant_type": ["client_credentials"], "n": ["3"]}


def test_unified_data_form(base_url: str) -> None:
    config = {
        "method": "POST",
        "url": f"{base_url}/echo",
        "data": {"query": {"page": 2}, "body": {"name": "n"}},
    }
    echo = http_tool.run(config, _ctx())["data"]["data"]
    assert echo["query"] == {"page": ["2"]}
    assert json.loads(echo["body"]) == {"name": "n"}
    get = {"url": f"{base_url}/echo", "data": {"limit": 5}}
    assert http_tool.run(get, _ctx())["data"]["data"]["query"] == {"limit": ["5"]}


def test_redirects_are_not_followed_by_default(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/redirect"}, _ctx())
    assert out["status"] == "error"
    assert out["error"]["kind"] == "client_error"
    assert out["http"]["status"] == 302
    config = {"url": f"{base_url}/redirect", "follow_redirects": True}
    out = http_tool.run(config, _ctx())
    assert out["status"] == "ok"
    assert out["data"]["data"]["path"] == "/echo"


# --- Idempotency-Key. ---------------------------------------------------------


def test_non_get_carries_idempotency_key(base_url: str) -> None:
    ctx = _ctx(effect_key="exec1/step/0/0/t")
    config = {"method": "POST", "url": f"{base_url}/echo", "payload": {}}
    echo = http_tool.run(config, ctx)["data"]["data"]
    expected = hashlib.sha256(b"exec1/step/0/0/t").hexdigest()
    assert echo["headers"]["idempotency-key"] == expected


def test_idempotency_key_is_stable_across_deliveries(base_url: str) -> None:
    config = {"method": "DELETE", "url": f"{base_url}/echo"}
    keys = [
        http_tool.run(config, _ctx(effect_key="k"))["data"]["data"]["headers"][
            "idempotency-key"
        ]
        for _ in range(2)
    ]
    assert keys[0] == keys[1]


def test_get_has_no_idempotency_key(base_url: str) -> None:
    echo = http_tool.run({"url": f"{base_url}/echo"}, _ctx(effect_key="k"))
    assert "idempotency-key" not in echo["data"]["data"]["headers"]


def test_idempotency_key_opt_out_and_user_header(base_url: str) -> None:
    config = {"method": "POST", "url": f"{base_url}/echo", "idempotency_key": False}
    headers = http_tool.run(config, _ctx(effect_key="k"))["data"]["data"]["headers"]
    assert "idempotency-key" not in headers
    config = {
        "method": "POST",
        "url": f"{base_url}/echo",
        "headers": {"idempotency-key": "mine"},
    }
    headers = http_tool.run(config, _ctx(effect_key="k"))["data"]["data"]["headers"]
    assert headers["idempotency-key"] == "mine"


# --- Auth. --------------------------------------------------------------------


def test_auth_credential_bearer_basic_and_headers(base_url: str) -> None:
    store = {
        "tok": {"token": "abc"},
        "pair": {"username": "u", "password": "p"},
        "hdr": {"headers": {"X-Api-Key": "k1"}},
    }
    ctx = _ctx(credential=_credentials(store))
    url = f"{base_url}/echo"

    def sent(auth: Any) -> dict[str, str]:
        return http_tool.run({"url": url, "auth": auth}, ctx)["data"]["data"]["headers"]

    assert sent("tok")["authorization"] == "Bearer abc"
    assert sent("pair")["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert sent("hdr")["x-api-key"] == "k1"
    assert sent({"type": "bearer", "token": "inline"})["authorization"] == (
        "Bearer inline"
    )
    assert sent({"source": "credential", "key": "tok"})["authorization"] == (
        "Bearer abc"
    )


def test_missing_credential_is_a_credential_error(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/echo", "auth": "nope"}, _ctx())
    assert out["status"] == "error"
    assert out["error"]["kind"] == "credential"
    assert out["error"]["retryable"] is False


# --- Error kinds (DSL 10.10). -----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        (400, "client_error", False),
        (401, "auth", False),
        (403, "auth", False),
        (404, "client_error", False),
        (429, "rate_limit", True),
        (500, "server_error", True),
        (503, "server_error", True),
    ],
)
def test_status_error_kinds(
    base_url: str, code: int, kind: str, retryable: bool
) -> None:
    out = http_tool.run({"url": f"{base_url}/status/{code}"}, _ctx())
    assert out["status"] == "error"
    err = out["error"]
    assert (err["kind"], err["retryable"]) == (kind, retryable)
    assert err["code"] == code and err["status_code"] == code
    assert err["message"].startswith(f"GET {base_url}/status/{code}: HTTP {code}")
    # The response is still there for policies to read.
    assert out["data"]["status_code"] == code
    assert out["data"]["data"] == {"error": f"status {code}"}
    assert out["http"]["status"] == code


def test_rate_limit_reports_retry_after(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/status/429"}, _ctx())
    assert out["error"]["retry_after"] == 7.0


def test_bad_json_is_a_decode_error(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/badjson"}, _ctx())
    assert out["status"] == "error"
    assert out["error"]["kind"] == "decode"
    assert out["error"]["retryable"] is False
    assert out["data"]["data"] == "{not json"


@pytest.mark.parametrize("timeout", [0.3, "300ms", {"connect": 2, "read": 0.3}])
def test_timeout(base_url: str, timeout: Any) -> None:
    started = time.monotonic()
    out = http_tool.run({"url": f"{base_url}/slow", "timeout": timeout}, _ctx())
    assert time.monotonic() - started < 1.2
    assert out["error"]["kind"] == "timeout"
    assert out["error"]["retryable"] is True
    assert "timed out" in out["error"]["message"]


def test_task_timeout_is_the_default(base_url: str) -> None:
    out = http_tool.run({"url": f"{base_url}/slow"}, _ctx(timeout=0.3))
    assert out["error"]["kind"] == "timeout"


def test_connection_refused(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/x"
    out = http_tool.run({"url": url}, _ctx())
    assert out["status"] == "error"
    assert out["error"]["kind"] == "connection"
    assert out["error"]["retryable"] is True
    assert out["error"]["message"] == f"GET {url}: connection refused"


def test_unknown_host() -> None:
    out = http_tool.run({"url": "http://no-such-host.invalid/x"}, _ctx(timeout=5))
    assert out["error"]["kind"] == "connection"
    assert "no-such-host.invalid" in out["error"]["message"]


def test_config_errors() -> None:
    assert http_tool.run({}, _ctx())["error"]["kind"] == "config"
    out = http_tool.run({"url": "http://x", "timeout": "soon"}, _ctx())
    assert out["error"]["kind"] == "config"
    assert http_tool.run({"url": "ftp://x/y"}, _ctx())["error"]["kind"] == "config"


def test_cancel_interrupts_a_request(base_url: str) -> None:
    ctx = _ctx()
    threading.Timer(0.2, ctx.cancelled.set).start()
    started = time.monotonic()
    out = http_tool.run({"url": f"{base_url}/slow"}, ctx)
    assert time.monotonic() - started < 1.0
    assert out["error"]["kind"] == "cancelled"


# --- noop (DSL 5.5): the smallest tool, checked here with its sibling. ----------


def test_noop() -> None:
    out = noop.run({"anything": 1}, _ctx(step="router"))
    assert out["status"] == "ok"
    assert out["data"] == {"status": "ok", "step": "router"}
