"""Which search backend an index lives in, and the factory that opens it from the settings.

The embedded backend (qa.store) is the default. A build with `--backend qdrant` writes `backend.json` in the index
folder (the backend, the server's URL or none for local mode, the collection; never the API key), so `ask`, `eval`
and the web chat open the backend the index was built with when theirs is "auto". An app process on another
machine needs no folder: QA_BACKEND=qdrant and QA_QDRANT_URL name everything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qa.backend import Backend, SearchIndex
from qa.config import Settings
from qa.errors import ModelMismatch, QAError
from qa.store import EmbeddedBackend

RECORD = "backend.json"


def recorded_backend(index: str | Path) -> dict:
    """What the index folder says its backend is ({} when it says nothing: the embedded one)."""
    try:
        record = json.loads((Path(index) / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def open_backend(settings: Settings, for_build: bool = False) -> Backend:
    """The backend of the settings' index: `settings.backend`, or for "auto" the one the index folder records.
    `for_build`: a build is about to write with a backend given by name, so the folder records that one."""
    recorded = recorded_backend(settings.index)
    kind = settings.backend if settings.backend != "auto" else recorded.get("backend", "embedded")
    if for_build and settings.backend != "auto":
        _record(settings, kind)
    if kind == "embedded":
        return EmbeddedBackend(settings.index)
    from qa.qdrant import QdrantBackend

    url = settings.qdrant_url or (recorded.get("url") if recorded.get("backend") == "qdrant" else None)
    collection = settings.qdrant_collection
    if collection == Settings.qdrant_collection and recorded.get("collection"):  # not given: the recorded one
        collection = recorded["collection"]
    return QdrantBackend(
        url=url,
        api_key=settings.qdrant_api_key or None,
        path=None if url else settings.index,
        collection_prefix=collection,
        lock_dir=settings.index,
        shards=settings.qdrant_shards,
        replicas=settings.qdrant_replicas,
        quantization=settings.qdrant_quantization,
    )


def _record(settings: Settings, kind: str) -> None:
    folder = Path(settings.index)
    if kind == "embedded":
        (folder / RECORD).unlink(missing_ok=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).write_text(
        json.dumps({"backend": kind, "url": settings.qdrant_url, "collection": settings.qdrant_collection}, indent=2)
        + "\n"
    )


def embedder_kind(settings: Settings, backend: Backend) -> str:
    """The embedder kind to make (qa.embedders.make_embedder): the settings' own, or for "auto" with a backend whose
    manifest is not in the index folder, the kind its live generation was built with."""
    from qa.embed import INT8_SUFFIX

    live_manifest = getattr(backend, "live_manifest", None)
    if settings.embedder != "auto" or live_manifest is None:
        return settings.embedder
    manifest = live_manifest()
    if not manifest:
        return "auto"
    return "int8" if str(manifest.get("model", "")).endswith(INT8_SUFFIX) else "fp32"


class IndexVectors:
    """An embedder whose vectors are another index's, found by the hash of the text they embed: a build with it moves
    an index to another backend without embedding anything (`python -m qa build --vectors-from INDEX`). Passages are
    chunked with `tokenizer`'s token counts, which must be the source index's model's."""

    def __init__(self, source: SearchIndex, tokenizer):
        if tokenizer.model_id != source.model_id:
            raise ModelMismatch(source.model_id, source.dimension, tokenizer.model_id, tokenizer.dimension)
        self.source, self.tokenizer = source, tokenizer
        self.model_id, self.dimension = source.model_id, source.dimension

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.tokenizer.count_tokens(texts)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        hashes = [hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest() for text in texts]
        found = self.source.vectors_by_hash(hashes)
        missing = sum(1 for h in hashes if h not in found)
        if missing:
            raise QAError(
                f"{missing} of {len(texts)} passages are not in the index the vectors are taken from "
                f"({self.source.name}): build from the corpus and chunking it was built from, or embed "
                "(leave out --vectors-from)"
            )
        return np.array([found[h] for h in hashes], dtype=np.float32).reshape(len(texts), self.dimension)
