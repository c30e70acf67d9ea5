"""A small Auth0-style identity provider for the sign-in tests, over HTTPS
with its own test certificate authority: ``/authorize`` (consents at once
and sends the browser back with a code), ``/oauth/token`` (trades the code
for an RS256-signed id token) and ``/.well-known/jwks.json``."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CLIENT_ID = "noetl-test-client"
CLIENT_SECRET = "idp-client-secret-for-tests"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = _key(), _key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("noetl test CA"))
        .issuer_name(_name("noetl test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _b64(number: int) -> str:
    data = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdP:
    """Start with ``start(directory)``; ``domain`` is what AUTH0_DOMAIN holds."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.signing_key = _key()
        self.kid = "test-key-1"
        # Set to another key to make the provider sign tokens no JWKS vouches for.
        self.forge_with: rsa.RSAPrivateKey | None = None
        self.codes: dict[str, str] = {}
        self.token_requests: list[dict[str, list[str]]] = []
        self.client_secrets: list[str] = []

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"

    def jwks(self) -> dict[str, Any]:
        numbers = self.signing_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _b64(numbers.n),
                    "e": _b64(numbers.e),
                }
            ]
        }

    def id_token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            **self.claims,
        }
        key = self.forge_with or self.signing_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def start(self, directory: Path) -> str:
        self.ca, cert, key = make_tls(directory)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.domain = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.domain

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(idp: FakeIdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/jwks.json":
                return self._json(200, idp.jwks())
            if url.path == "/authorize":
                if query.get("client_id") != CLIENT_ID:
                    return self._json(400, {"error": "unknown client"})
                code = secrets.token_urlsafe(16)
                idp.codes[code] = query["redirect_uri"]
                back = urlencode({"code": code, "state": query.get("state", "")})
                self.send_response(302)
                joiner = "&" if "?" in query["redirect_uri"] else "?"
                self.send_header("Location", f"{query['redirect_uri']}{joiner}{back}")
                self.end_headers()
                return None
            return self._json(404, {"error": "not found"})

        def _client_secret(self, form: dict[str, list[str]]) -> str:
            # A client authenticates in the form or with HTTP Basic.
            scheme, _, value = self.headers.get("Authorization", "").partition(" ")
            if scheme == "Basic":
                pair = base64.b64decode(value).decode()
                client, _, secret = pair.partition(":")
                return secret if client == CLIENT_ID else ""
            return form.get("client_secret", [""])[0]

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            idp.token_requests.append(form)
            idp.client_secrets.append(self._client_secret(form))
            if urlsplit(self.path).path != "/oauth/token":
                return self._json(404, {"error": "not found"})
            code = form.get("code", [""])[0]
            good = (
                self._client_secret(form) == CLIENT_SECRET
                and idp.codes.pop(code, None) == form.get("redirect_uri", [""])[0]
            )
            if not good:
                return self._json(400, {"error": "invalid_grant"})
            return self._json(
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": idp.id_token(),
                },
            )

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
