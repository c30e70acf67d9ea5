"""The ``storage`` tool (DSL section 5.8; also reachable as ``s3``, ``gcs``
and ``artifact``): get, put, list and delete objects by URI.

- ``s3://bucket/key`` through boto3; the credential gives ``key_id``/
  ``secret`` (or the AWS names), ``region``, ``session_token`` and, for an
  S3-compatible server, ``endpoint``.
- ``gs://bucket/key`` through google-cloud-storage; the credential gives a
  service account (``service_account`` map or ``credentials_json`` text), an
  OAuth ``token``, or ``endpoint`` (an emulator, no auth).
- ``file:///path``: local files, only under the installation's roots
  (``NOETL_FILE_ROOTS``, paths separated by ``:``; default
  ``$NOETL_HOME/files``). ``..`` and symlinks cannot leave a root. A
  relative ``file:reports/day1.json`` is under the first root.

``operation`` (or ``action``) is ``get|put|list|delete``. Values are read and
written like the nats tool's: a map or list as JSON, text as UTF-8, bytes
as base64 (``encoding: base64`` on put, ``format: text|json|base64`` on get).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from workers.tools.base import (
    CredentialError,
    Stopwatch,
    ToolContext,
    credential_fields,
    decode_value,
    encode_value,
    error,
    first_field,
    noetl_home,
    ok,
)

OPERATIONS = ("get", "put", "list", "delete")
SCHEMES = ("s3", "gs", "file")
_ALIASES = {"download": "get", "read": "get", "upload": "put", "write": "put"}


class ConfigError(ValueError):
    """The request cannot be made as given."""


class StorageError(Exception):
    """A failure the backend reported, already classified."""

    def __init__(self, kind: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


@dataclass(frozen=True)
class Location:
    scheme: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return (
                f"file://{self.key}" if self.key.startswith("/") else f"file:{self.key}"
            )
        return f"{self.scheme}://{self.bucket}/{self.key}"


class Backend(Protocol):
    def get(self, where: Location) -> bytes: ...

    def put(self, where: Location, data: bytes, content_type: str) -> None: ...

    def list(self, where: Location) -> list[dict[str, Any]]: ...

    def delete(self, where: Location) -> None: ...


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        operation = _operation(config)
        where = parse_uri(_uri(config))
        backend = backend_for(where, config, ctx)
        if ctx.cancelled.is_set():
            return error("cancelled", "cancelled before starting")
        return ok(_perform(operation, where, backend, config))
    except CredentialError as exc:
        return error("credential", str(exc))
    except ConfigError as exc:
        return error("config", str(exc))
    except StorageError as exc:
        return error(exc.kind, str(exc), retryable=exc.retryable)


def _operation(config: dict[str, Any]) -> str:
    raw = config.get("operation") or config.get("action") or config.get("op")
    operation = str(raw or "").strip().lower()
    operation = _ALIASES.get(operation, operation)
    if operation not in OPERATIONS:
        given = f"{raw!r} is not an operation" if raw else "no operation given"
        raise ConfigError(f"{given}: use one of {', '.join(OPERATIONS)}")
    return operation


def _uri(config: dict[str, Any]) -> str:
    uri = first_field(config, "uri", "url", "path", "location")
    if uri is None:
        raise ConfigError("no uri given: set uri to s3://, gs:// or file://")
    return str(uri)


def parse_uri(uri: str) -> Location:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{uri!r} is not a storage URI: use s3://bucket/key, gs://bucket/key "
            "or file:///path"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{uri!r}: file URIs name a local path (file:///...)")
        return Location("file", "", unquote(parts.path))
    if not parts.netloc:
        raise ConfigError(f"{uri!r} has no bucket")
    return Location(scheme, parts.netloc, unquote(parts.path.lstrip("/")))


def _perform(
    operation: str, where: Location, backend: Backend, config: dict[str, Any]
) -> dict[str, Any]:
    if operation == "list":
        objects = backend.list(where)
        return {"uri": where.uri, "objects": objects, "count": len(objects)}
    if not where.key or where.key.endswith("/"):
        raise ConfigError(f"{where.uri!r} names no object (it ends with /)")
    if operation == "get":
        data = backend.get(where)
        value = decode_value(data, str(config.get("format") or ""))
        return {"uri": where.uri, "size": len(data), "value": value}
    if operation == "put":
        data = _payload(config)
        content_type = str(config.get("content_type") or "application/octet-stream")
        backend.put(where, data, content_type)
        return {"uri": where.uri, "size": len(data)}
    backend.delete(where)
    return {"uri": where.uri, "deleted": True}


def _payload(config: dict[str, Any]) -> bytes:
    for key in ("value", "data", "content", "body"):
        if key in config:
            try:
                return encode_value(config[key], str(config.get("encoding") or ""))
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
    raise ConfigError("value is required for put")


# --- Backends. --------------------------------------------------------------------


def backend_for(where: Location, config: dict[str, Any], ctx: ToolContext) -> Backend:
    if where.scheme == "file":
        return FileBackend(file_roots())
    fields = credential_fields(config, ctx)
    if config.get("endpoint"):
        fields["endpoint"] = config["endpoint"]
    seconds = ctx.timeout if ctx.timeout and ctx.timeout > 0 else 600.0
    if where.scheme == "s3":
        return S3Backend(fields, seconds)
    return GcsBackend(fields, seconds)


def file_roots() -> list[Path]:
    raw = os.environ.get("NOETL_FILE_ROOTS", "")
    roots = [Path(p) for p in raw.split(os.pathsep) if p.strip()]
    if not roots:
        roots = [noetl_home() / "files"]
    return [root.resolve() for root in roots]


class FileBackend:
    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots

    def _confined(self, where: Location) -> Path:
        path = Path(where.key)
        if not path.is_absolute():  # file:reports/x.json is under the first root
            path = self.roots[0] / path
        path = path.resolve()
        if not any(path == root or path.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise ConfigError(
                f"{where.uri!r} is outside the allowed file roots ({allowed}); "
                "set NOETL_FILE_ROOTS to allow another directory"
            )
        return path

    def get(self, where: Location) -> bytes:
        path = self._confined(where)
        if not path.is_file():
            raise StorageError("not_found", f"{where.uri} does not exist")
        return path.read_bytes()

    def put(self, where: Location, data: bytes, content_type: str) -> None:
        path = self._confined(where)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.part")
        temporary.write_bytes(data)
        temporary.replace(path)

    def list(self, where: Location) -> list[dict[str, Any]]:
        base = self._confined(where)
        if base.is_file():
            return [_file_entry(base)]
        if not base.is_dir():
            return []
        return [_file_entry(p) for p in sorted(base.rglob("*")) if p.is_file()]

    def delete(self, where: Location) -> None:
        path = self._confined(where)
        if not path.is_file():
            raise StorageError("not_found", f"{where.uri} does not exist")
        path.unlink()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"uri": f"file://{path}", "key": str(path), "size": path.stat().st_size}


class S3Backend:
    def __init__(self, fields: dict[str, Any], seconds: float) -> None:
        import boto3
        from botocore.config import Config

        self.endpoint = first_field(fields, "endpoint", "endpoint_url", "s3_endpoint")
        endpoint = str(self.endpoint) if self.endpoint else None
        if endpoint and "://" not in endpoint:
            use_ssl = str(fields.get("use_ssl", "true")).lower() != "false"
            endpoint = f"{'https' if use_ssl else 'http'}://{endpoint}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=str(first_field(fields, "region", "aws_region") or "us-east-1"),
            aws_access_key_id=first_field(
                fields, "key_id", "access_key_id", "aws_access_key_id"
            ),
            aws_secret_access_key=first_field(
                fields, "secret", "secret_access_key", "aws_secret_access_key"
            ),
            aws_session_token=first_field(fields, "session_token", "token"),
            config=Config(
                connect_timeout=min(10.0, seconds),
                read_timeout=seconds,
                retries={"max_attempts": 1},
                s3={"addressing_style": _url_style(fields)},
            ),
        )

    def _call(self, where: Location, action: str, **kwargs: Any) -> Any:
        from botocore import exceptions as boto_errors

        try:
            return getattr(self.client, action)(Bucket=where.bucket, **kwargs)
        except boto_errors.ClientError as exc:
            raise _s3_error(where, exc) from exc
        except boto_errors.NoCredentialsError as exc:
            raise CredentialError(
                f"{where.uri}: no S3 credentials: set auth to a credential with "
                "key_id and secret"
            ) from exc
        except (
            boto_errors.EndpointConnectionError,
            boto_errors.ConnectionError,
        ) as exc:
            raise StorageError(
                "connection", f"{where.uri}: cannot reach S3: {exc}", retryable=True
            ) from exc
        except boto_errors.ReadTimeoutError as exc:
            raise StorageError("timeout", f"{where.uri}: {exc}", True) from exc

    def get(self, where: Location) -> bytes:
        return self._call(where, "get_object", Key=where.key)["Body"].read()

    def put(self, where: Location, data: bytes, content_type: str) -> None:
        self._call(
            where, "put_object", Key=where.key, Body=data, ContentType=content_type
        )

    def list(self, where: Location) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call(where, "list_objects_v2", Prefix=where.key, **extra)
            for item in page.get("Contents", []):
                found.append(_object_entry(where, item["Key"], item["Size"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def delete(self, where: Location) -> None:
        self._call(where, "head_object", Key=where.key)  # S3 deletes silently
        self._call(where, "delete_object", Key=where.key)


def _url_style(fields: dict[str, Any]) -> str:
    style = str(first_field(fields, "url_style", "addressing_style") or "").lower()
    if style in ("path", "virtual"):
        return style
    return "path" if first_field(fields, "endpoint", "endpoint_url") else "auto"


def _object_entry(where: Location, key: str, size: int) -> dict[str, Any]:
    return {"uri": f"{where.scheme}://{where.bucket}/{key}", "key": key, "size": size}


_S3_AUTH = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "403",
}
_S3_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


def _s3_error(where: Location, exc: Any) -> StorageError:
    details = exc.response.get("Error", {})
    code = str(details.get("Code") or "")
    message = details.get("Message") or code
    if code in _S3_AUTH:
        return StorageError(
            "auth", f"{where.uri}: S3 refused the credentials: {message}"
        )
    if code in _S3_MISSING:
        what = "bucket" if code == "NoSuchBucket" else "object"
        return StorageError("not_found", f"{where.uri}: no such {what}")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500:
        return StorageError("server_error", f"{where.uri}: {message}", retryable=True)
    return StorageError("client_error", f"{where.uri}: {code}: {message}")


class GcsBackend:
    def __init__(self, fields: dict[str, Any], seconds: float) -> None:
        # One attempt within the task timeout: retrying is the task policy's job.
        self.once: dict[str, Any] = {"retry": None, "timeout": seconds}
        from google.cloud import storage as gcs

        self.endpoint = first_field(fields, "endpoint", "api_endpoint")
        options = {"api_endpoint": str(self.endpoint)} if self.endpoint else None
        self.client = gcs.Client(
            project=str(first_field(fields, "project", "project_id") or "noetl"),
            credentials=_gcs_credentials(fields, bool(self.endpoint)),
            client_options=options,
        )

    def _call(self, where: Location, action: Any) -> Any:
        from google.api_core import exceptions as google_errors
        from google.auth import exceptions as auth_errors
        from requests import exceptions as http_errors

        try:
            return action()
        except google_errors.NotFound as exc:
            raise StorageError("not_found", f"{where.uri}: {_gcs_text(exc)}") from exc
        except (google_errors.Unauthorized, google_errors.Forbidden) as exc:
            message = f"{where.uri}: GCS refused the credentials: {_gcs_text(exc)}"
            raise StorageError("auth", message) from exc
        except auth_errors.GoogleAuthError as exc:
            raise StorageError("auth", f"{where.uri}: {exc}") from exc
        except google_errors.ServerError as exc:
            raise StorageError("server_error", f"{where.uri}: {exc}", True) from exc
        except google_errors.GoogleAPICallError as exc:
            raise StorageError(
                "client_error", f"{where.uri}: {_gcs_text(exc)}"
            ) from exc
        except http_errors.Timeout as exc:
            raise StorageError("timeout", f"{where.uri}: {exc}", True) from exc
        except http_errors.ConnectionError as exc:
            raise StorageError(
                "connection", f"{where.uri}: cannot reach GCS: {exc}", retryable=True
            ) from exc

    def _blob(self, where: Location) -> Any:
        return self.client.bucket(where.bucket).blob(where.key)

    def get(self, where: Location) -> bytes:
        blob = self._blob(where)
        return self._call(where, lambda: blob.download_as_bytes(**self.once))

    def put(self, where: Location, data: bytes, content_type: str) -> None:
        blob = self._blob(where)
        self._call(
            where,
            lambda: blob.upload_from_string(
                data, content_type=content_type, **self.once
            ),
        )

    def list(self, where: Location) -> list[dict[str, Any]]:
        def listing() -> list[dict[str, Any]]:
            prefix = where.key or None
            blobs = self.client.list_blobs(where.bucket, prefix=prefix, **self.once)
            return [_object_entry(where, b.name, int(b.size or 0)) for b in blobs]

        return self._call(where, listing)

    def delete(self, where: Location) -> None:
        blob = self._blob(where)
        self._call(where, lambda: blob.delete(**self.once))


def _gcs_credentials(fields: dict[str, Any], emulator: bool) -> Any:
    import json

    from google.auth.credentials import AnonymousCredentials
    from google.oauth2 import credentials as oauth_credentials
    from google.oauth2 import service_account

    info = first_field(fields, "service_account", "credentials_json", "key_json")
    if info is not None:
        try:
            parsed = json.loads(info) if isinstance(info, str) else dict(info)
            return service_account.Credentials.from_service_account_info(
                parsed,
                scopes=["https://www.googleapis.com/auth/devstorage.read_write"],
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CredentialError(
                f"the GCS service account is not usable: {exc}"
            ) from exc
    token = first_field(fields, "token", "access_token")
    if token is not None:
        return oauth_credentials.Credentials(str(token))
    if emulator:
        return AnonymousCredentials()
    raise CredentialError(
        "no GCS credentials: set auth to a credential with service_account "
        "(the key file's JSON) or token"
    )


def _gcs_text(exc: Any) -> str:
    return " ".join(str(getattr(exc, "message", "") or exc).split())
