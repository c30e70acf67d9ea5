"""The ``qdrant`` tool (DSL section 5.8): a vector store.

``operation``: ``create_collection`` (``collection``, ``size``, ``distance``,
``recreate``), ``upsert`` (``points: [{id, vector | text, payload}]``),
``search`` (``vector`` or ``text``, ``limit``, ``filter: {field: value}``),
``delete`` (``ids``), ``count``, ``delete_collection``.

Where it runs: by default Qdrant's local mode, an on-disk store under
NOETL_HOME (``path``, default ``qdrant``; confined like shell's working
directory). With ``auth`` naming a credential that has ``url`` (and
``api_key``), or ``url`` given inline, a Qdrant server.

``text`` instead of ``vector`` embeds the text by hashing its words into
``size`` dimensions (signed feature hashing, L2-normalised). That is a
lexical similarity, good for keyword-like matching and for tests; bring
real embeddings as ``vector`` for semantic search.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
import warnings
from typing import Any

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stopwatch,
    ToolContext,
    credential_fields,
    error,
    first_field,
    noetl_home,
    ok,
    truthy,
)

OPERATIONS = (
    "create_collection",
    "upsert",
    "search",
    "delete",
    "count",
    "delete_collection",
)
DISTANCES = {
    "cosine": "Cosine",
    "dot": "Dot",
    "euclid": "Euclid",
    "manhattan": "Manhattan",
}
_WORD = re.compile(r"\w+", re.UNICODE)


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        operation = _operation(config)
        target = _target(config, ctx)
    except CredentialError as exc:
        return error("credential", str(exc))
    except ConfigError as exc:
        return error("config", str(exc))
    if ctx.cancelled.is_set():
        return error("cancelled", "cancelled before connecting")
    from qdrant_client.http import exceptions as qdrant_errors

    try:
        client = _client(target, ctx)
    except (RuntimeError, OSError) as exc:
        message = f"cannot open qdrant {target['label']}: {exc}"
        return error("connection", message, retryable=True)
    try:
        return ok(_HANDLERS[operation](client, config))
    except ConfigError as exc:
        return error("config", f"qdrant {operation}: {exc}")
    except qdrant_errors.UnexpectedResponse as exc:
        return _response_error(operation, target, exc)
    except qdrant_errors.ResponseHandlingException as exc:
        message = f"cannot reach qdrant {target['label']}: {exc}"
        return error("connection", message, retryable=True)
    except ValueError as exc:  # local mode reports bad requests this way
        text = str(exc)
        kind = "not_found" if "not found" in text else "config"
        return error(kind, f"qdrant {operation}: {text}")
    finally:
        client.close()


def _operation(config: dict[str, Any]) -> str:
    raw = config.get("operation") or config.get("action") or config.get("op")
    operation = str(raw or "").strip().lower()
    if operation not in OPERATIONS:
        given = f"{raw!r} is not an operation" if raw else "no operation given"
        raise ConfigError(f"{given}: use one of {', '.join(OPERATIONS)}")
    return operation


# --- Where. -----------------------------------------------------------------------


def _target(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    fields = credential_fields(config, ctx)
    for key in ("url", "api_key"):
        if config.get(key):
            fields[key] = config[key]
    url = first_field(fields, "url", "host", "endpoint")
    if url:
        return {
            "url": str(url),
            "api_key": first_field(fields, "api_key", "key", "token"),
            "label": str(url),
        }
    path = _local_path(config.get("path"))
    return {"path": path, "label": f"local store {path}"}


def _local_path(given: Any) -> str:
    home = noetl_home()
    target = (home / str(given or "qdrant")).resolve()
    if not target.is_relative_to(home):
        raise ConfigError(
            f"path {str(given)!r} is outside NOETL_HOME ({home}); give a path "
            "relative to it"
        )
    target.mkdir(parents=True, exist_ok=True)
    return str(target)


def _client(target: dict[str, Any], ctx: ToolContext) -> Any:
    from qdrant_client import QdrantClient

    if "path" in target:
        return QdrantClient(path=target["path"])
    timeout = int(max(1, min(ctx.timeout or 60, 300)))
    with warnings.catch_warnings():  # an api key over plain http, on purpose
        warnings.simplefilter("ignore", UserWarning)
        return QdrantClient(
            url=target["url"],
            api_key=target["api_key"],
            timeout=timeout,
            check_compatibility=False,  # a request of its own, on a thread
        )


def _response_error(operation: str, target: dict[str, Any], exc: Any) -> dict[str, Any]:
    code = exc.status_code
    text = " ".join(str(exc.content[:300], "utf-8", "replace").split())
    prefix = f"qdrant {operation} on {target['label']}"
    if code in (401, 403):
        return error("auth", f"{prefix}: the server refused the api key", code=code)
    if code == 404:
        return error("not_found", f"{prefix}: {text}", code=code)
    if code >= 500:
        return error("server_error", f"{prefix}: {text}", retryable=True, code=code)
    return error("config", f"{prefix}: {text}", code=code)


# --- Vectors. ----------------------------------------------------------------------


def hashed_embedding(text: str, size: int) -> list[float]:
    """Words hashed into ``size`` signed buckets, L2-normalised."""
    vector = [0.0] * size
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        vector[number % size] += 1.0 if (number >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def _collection(config: dict[str, Any]) -> str:
    name = first_field(config, "collection", "collection_name")
    if name is None:
        raise ConfigError("collection is required")
    return str(name)


def _vector(item: dict[str, Any], size: int | None, where: str) -> list[float]:
    if item.get("vector") is not None:
        vector = item["vector"]
        if not isinstance(vector, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in vector
        ):
            raise ConfigError(f"{where}: vector must be a list of numbers")
        return [float(v) for v in vector]
    if item.get("text") is not None:
        if not size:
            raise ConfigError(f"{where}: text needs the collection's vector size")
        return hashed_embedding(str(item["text"]), size)
    raise ConfigError(f"{where}: give vector or text")


def _point_id(value: Any, where: str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ConfigError(f"{where}: id {value!r} must be a non-negative integer or a UUID")


def _vector_size(client: Any, collection: str) -> int | None:
    info = client.get_collection(collection)
    params = info.config.params.vectors
    return getattr(params, "size", None)


def _filter(raw: Any) -> Any:
    if not raw:
        return None
    from qdrant_client import models

    if not isinstance(raw, dict):
        raise ConfigError("filter must be a map of payload field to value")
    return models.Filter(
        must=[
            models.FieldCondition(key=str(k), match=models.MatchValue(value=v))
            for k, v in raw.items()
        ]
    )


# --- Operations. ---------------------------------------------------------------------


def _create_collection(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    from qdrant_client import models

    name = _collection(config)
    try:
        size = int(config.get("size") or config.get("vector_size") or 0)
    except (TypeError, ValueError) as exc:
        raise ConfigError("size must be a positive integer") from exc
    if size <= 0:
        raise ConfigError("size (the vector dimension) must be a positive integer")
    distance = str(config.get("distance") or "cosine").lower()
    if distance not in DISTANCES:
        raise ConfigError(f"distance must be one of {', '.join(DISTANCES)}")
    exists = client.collection_exists(name)
    if exists and truthy(config.get("recreate")):
        client.delete_collection(name)
        exists = False
    if not exists:
        client.create_collection(
            name,
            vectors_config=models.VectorParams(
                size=size, distance=models.Distance(DISTANCES[distance])
            ),
        )
    return {
        "collection": name,
        "size": size,
        "distance": distance,
        "created": not exists,
    }


def _upsert(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    from qdrant_client import models

    name = _collection(config)
    points = config.get("points")
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError("points must be a list of maps {id, vector | text, payload}")
    size = (
        _vector_size(client, name) if any("vector" not in p for p in points) else None
    )
    structs = []
    for index, point in enumerate(points):
        where = f"point {index}"
        payload = point.get("payload") or {}
        if not isinstance(payload, dict):
            raise ConfigError(f"{where}: payload must be a map")
        structs.append(
            models.PointStruct(
                id=_point_id(point.get("id"), where),
                vector=_vector(point, size, where),
                payload=payload,
            )
        )
    if structs:
        client.upsert(name, points=structs, wait=True)
    return {"collection": name, "upserted": len(structs)}


def _search(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    name = _collection(config)
    size = None if config.get("vector") is not None else _vector_size(client, name)
    vector = _vector(config, size, "search")
    try:
        limit = int(config.get("limit") or 10)
    except (TypeError, ValueError) as exc:
        raise ConfigError("limit must be an integer") from exc
    found = client.query_points(
        name,
        query=vector,
        limit=limit,
        with_payload=True,
        query_filter=_filter(config.get("filter")),
    ).points
    hits = [{"id": p.id, "score": p.score, "payload": p.payload or {}} for p in found]
    return {"collection": name, "hits": hits, "count": len(hits)}


def _delete(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    from qdrant_client import models

    name = _collection(config)
    ids = config.get("ids")
    if not isinstance(ids, list) or not ids:
        raise ConfigError("ids must be a non-empty list")
    selected = [_point_id(i, "delete") for i in ids]
    client.delete(name, points_selector=models.PointIdsList(points=selected), wait=True)
    return {"collection": name, "deleted": len(selected)}


def _count(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    name = _collection(config)
    total = client.count(name, count_filter=_filter(config.get("filter")), exact=True)
    return {"collection": name, "count": total.count}


def _delete_collection(client: Any, config: dict[str, Any]) -> dict[str, Any]:
    name = _collection(config)
    return {"collection": name, "deleted": bool(client.delete_collection(name))}


_HANDLERS = {
    "create_collection": _create_collection,
    "upsert": _upsert,
    "search": _search,
    "delete": _delete,
    "count": _count,
    "delete_collection": _delete_collection,
}
