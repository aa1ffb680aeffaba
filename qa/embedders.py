"""Which embedder a build or a server uses: the factory above the embedders and the index format (it reads the
index's manifest to keep the kind the index was built with)."""

from __future__ import annotations

import json
from pathlib import Path

from qa.embed import INT8_SUFFIX, SentenceTransformerEmbedder
from qa.errors import QAError
from qa.store import MANIFEST, current_generation_path

KINDS = ("auto", "int8", "fp32")


def make_embedder(
    model: str | Path | None = None,
    kind: str | None = None,
    index_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
):
    """The embedder a build or a server should use (their settings: qa.config.Settings model, embedder, index,
    cache_dir).

    kind "int8": the model in int8 on ONNX Runtime (qa/embed_onnx.py), twice the fp32 rate on CPUs with the same
    retrieval quality (docs/benchmarks.md), and no torch import when its cached model exists. "fp32": the
    sentence-transformers model, on a CUDA GPU when there is one. "auto" (the default): the kind
    the index at `index_dir` was built with, so its vectors are never mixed or redone; for a new index, fp32 on
    a CUDA GPU and int8 otherwise.
    """
    kind = kind or "auto"
    if kind not in KINDS:
        raise QAError(f"embedder {kind!r} (from --embedder or $QA_EMBEDDER): choose one of {', '.join(KINDS)}")
    if kind == "auto":
        built_with = _index_model_id(index_dir) if index_dir is not None else None
        if built_with is not None:
            kind = "int8" if built_with.endswith(INT8_SUFFIX) else "fp32"
        else:
            kind = "fp32" if cuda_available() else "int8"
    if kind == "fp32":
        return SentenceTransformerEmbedder(model)
    from qa.embed_onnx import OnnxInt8Embedder

    return OnnxInt8Embedder(model, cache_dir)


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU; torch is imported only where an NVIDIA device node exists."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver or a CPU-only torch: embed on the CPU
        return False


def _index_model_id(index_dir: str | Path) -> str | None:
    """The model the current generation of `index_dir` was built with; None when there is no readable one."""
    try:
        return str(json.loads((current_generation_path(index_dir) / MANIFEST).read_text())["model"])
    except (QAError, OSError, ValueError, KeyError, TypeError):  # QAError: IndexNotFound
        return None
