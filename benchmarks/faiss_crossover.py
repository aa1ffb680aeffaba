"""Flat versus HNSW inner-product search: latency, recall@10 and memory by corpus size, on unit vectors.

Usage: python benchmarks/faiss_crossover.py [--sizes 50000,100000,200000,400000] [--queries 200] [--threads 1]
                                            [--index /tmp/idx_int8]
Vectors are random unit vectors mixed with clustered ones (384 dimensions, like MiniLM), so the figures
are about the index structure, not the model. Prints one row per size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def unit_vectors(count: int, dimension: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, count // 50), dimension)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal((count, dimension)).astype(
        np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def compare(vectors: np.ndarray, queries: np.ndarray) -> str:
    """One table row: flat and HNSW (the app's settings) searched one query at a time, top 100."""
    import faiss

    from qa.segments import HNSW_EF_SEARCH, HNSW_NEIGHBOURS

    size, dimension = vectors.shape
    flat = faiss.IndexFlatIP(dimension)
    flat.add(vectors)
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(vectors)
    build = time.perf_counter() - started
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    timings = {}
    results = {}
    for name, index in (("flat", flat), ("hnsw", hnsw)):
        index.search(queries[:5], 100)
        started = time.perf_counter()
        for query in queries:  # one at a time, as questions arrive
            _, ids = index.search(query[None, :], 100)
            results.setdefault(name, []).append(ids[0][:10])
        timings[name] = (time.perf_counter() - started) * 1000 / len(queries)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(results["flat"], results["hnsw"], strict=True)])
    flat_mib = size * dimension * 4 / 2**20
    hnsw_mib = flat_mib + size * HNSW_NEIGHBOURS * 2 * 4 / 2**20
    return (
        f"| {size} | {timings['flat']:.2f} | {timings['hnsw']:.2f} | {recall:.3f} | {build:.1f} | "
        f"{flat_mib:.0f} | {hnsw_mib:.0f} |"
    )


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,100000,200000,400000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads (the app runs 1: app.py)")
    parser.add_argument(
        "--index",
        help="also a row on this built index's own vectors, queried with the 110 "
        "development questions (embedded by the index's model): recall on real data",
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dimension = 384
    print("| passages | flat ms/query | hnsw ms/query | hnsw recall@10 | hnsw build s | flat MiB | hnsw MiB |")
    print("|---|---|---|---|---|---|---|")
    if args.index:
        from qa.embedders import make_embedder
        from qa.evaluate import read_questions
        from qa.store import load_generation

        generation = load_generation(args.index)
        questions = read_questions(
            Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "realtimeqa" / "dev.jsonl"
        )
        queries = make_embedder(index_dir=args.index).embed([q.question for q in questions])
        real = generation.vectors.reconstruct_n(0, generation.vectors.ntotal)
        print(compare(real, queries) + " real passages, dev questions", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = unit_vectors(size, dimension, rng)
        queries = vectors[rng.integers(0, size, args.queries)] + 0.3 * rng.standard_normal(
            (args.queries, dimension)
        ).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        print(compare(vectors, queries), flush=True)


if __name__ == "__main__":
    main()
