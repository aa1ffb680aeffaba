"""Index-build embedding throughput: plain sentence-transformers fp32 versus the int8 ONNX embedder, same run.

Usage: python benchmarks/embed_throughput.py [--passages 5000] [--seed 0] [--threads N]
Reads ../shared/eval/realtimeqa/corpus.jsonl.gz (licensed: never copied into the repo), chunks articles in
a seeded random order as the index build does, and takes the first N passages. Embeds them with
`SentenceTransformer(path).encode(texts, batch_size=32)` (fp32, the baseline) and with OnnxInt8Embedder,
in alternating slices, then prints passages per second for each, their ratio, and the cosine between the
two vectors of each passage. Also times making the int8 model from scratch (once per machine), in a
scratch cache folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "realtimeqa"


def sample_passages(count: int, seed: int, count_tokens) -> list[str]:
    """The embed texts of the first `count` passages of the corpus's articles taken in a seeded order."""
    from qa.chunk import chunk_article, embed_text
    from qa.ingest import read_corpus

    articles = read_corpus(EVAL / "corpus.jsonl.gz").articles
    random.Random(seed).shuffle(articles)
    texts: list[str] = []
    for article in articles:
        passages, _ = chunk_article(article, count_tokens)
        texts.extend(embed_text(article.title, passage.text) for passage in passages)
        if len(texts) >= count:
            return texts[:count]
    sys.exit(f"the corpus has only {len(texts)} passages; ask for fewer")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="both sides")
    parser.add_argument("--int8-batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10, help="slices, each embedded by both sides in turn")
    args = parser.parse_args()
    if not (EVAL / "corpus.jsonl.gz").exists():
        sys.exit(f"evaluation corpus not found at {EVAL} (it lives outside the repository); nothing to measure")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from sentence_transformers import SentenceTransformer

    from qa.embed import default_model_path
    from qa.embed_onnx import OnnxInt8Embedder, int8_model_path

    torch.set_num_threads(args.threads)
    path = default_model_path()

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        int8_model_path(path, scratch)
        creation = time.perf_counter() - started

    int8 = OnnxInt8Embedder(path, batch_size=args.int8_batch_size, threads=args.threads)
    texts = sample_passages(args.passages, args.seed, int8.count_tokens)
    tokens = np.array([min(n + 2, int8.max_tokens) for n in int8.count_tokens(texts)])
    baseline = SentenceTransformer(path, local_files_only=True)

    warm = texts[:64]
    baseline.encode(warm, batch_size=32)
    int8.embed(warm)

    # Slices in turn, so that a change in the machine's load (another job) falls on both sides alike.
    fp32_seconds = int8_seconds = 0.0
    reference, vectors = [], []
    for piece in np.array_split(np.arange(len(texts)), args.rounds):
        part = [texts[i] for i in piece]
        started = time.perf_counter()
        reference.append(baseline.encode(part, batch_size=32, convert_to_numpy=True))
        fp32_seconds += time.perf_counter() - started
        started = time.perf_counter()
        vectors.append(int8.embed(part))
        int8_seconds += time.perf_counter() - started
    reference, vectors = np.concatenate(reference), np.concatenate(vectors)

    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cosine = (reference * vectors).sum(axis=1)
    fp32_rate, int8_rate = len(texts) / fp32_seconds, len(texts) / int8_seconds
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("torch", "sentence-transformers", "onnxruntime")
    )
    print(f"cpu: {cpu_name()}, {args.threads} threads; {versions}")
    print(
        f"passages: {len(texts)} (seed {args.seed}), tokens per passage: mean {tokens.mean():.0f}, max {tokens.max()}"
    )
    print(f"fp32 sentence-transformers, batch 32: {fp32_rate:7.1f} passages/s ({fp32_seconds:.1f} s)")
    print(
        f"int8 onnxruntime, batch {args.int8_batch_size}:          {int8_rate:7.1f} passages/s ({int8_seconds:.1f} s)"
    )
    print(f"ratio int8/fp32: {int8_rate / fp32_rate:.2f}x")
    print(
        f"cosine int8 vs fp32 per passage: mean {cosine.mean():.4f}, 1st percentile {np.percentile(cosine, 1):.4f}, "
        f"min {cosine.min():.4f}"
    )
    print(f"making the int8 model (once per machine, cached): {creation:.1f} s")


if __name__ == "__main__":
    main()
