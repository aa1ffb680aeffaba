"""The embedded backend at 1,000,000 passages: build time without embedding, peak memory, size on disk, answer
latency with flat and HNSW search, and HNSW recall@10 against flat on real question vectors.

Usage: python benchmarks/scale.py [--passages 1000000] [--work /tmp/scale] [--rounds 3] [--like INDEX]

The corpus is made here and never committed: the sample corpus's articles (corpus/) joined into one article and
chunked once, then repeated under new ids and titles until there are enough passages, each passage given a
synthetic unit vector: an article's passages clustered around one random direction (as
benchmarks/faiss_crossover.py makes them), or with --like, a built index's real passage vectors moved by noise
(random directions have no structure that real questions match: every cosine is near 0, and HNSW's recall@10 on
them says little about real data). The build is the backend's own writer (qa.store: term counts for
BM25, vectors, SQLite, the HNSW graph above qa.segments.FLAT_LIMIT), timed and measured in a child process;
reading files, chunking, embedding and duplicate detection are left out. Questions: the development questions
of ../shared/eval/realtimeqa when present (else the sample corpus's), embedded by the int8 embedder; answers go
through qa.answer.ask as the chat's do, first with the segment's HNSW graph, then with a flat index over the
same vectors. Prints one Markdown table row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEV = ROOT.parent / "shared" / "eval" / "realtimeqa" / "dev.jsonl"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_vectors(like: Path | None, rng: np.random.Generator):
    """A maker of `count` unit vectors for one article: clustered random directions, or with `like` (a built
    index) real passage vectors of that index, a run of neighbouring rows, each moved by noise (cosine about 0.94
    to its original), so that real questions have near and far passages as in real data."""
    from faiss_crossover import unit_vectors

    if like is None:
        return lambda count: unit_vectors(count, 384, rng)
    from qa.store import load_generation

    generation = load_generation(like)
    base = np.concatenate([np.asarray(segment.vectors, dtype=np.float32) for segment in generation.segments])

    def near_real(count: int) -> np.ndarray:
        start = int(rng.integers(0, len(base) - count))
        noise = rng.standard_normal((count, base.shape[1]), dtype=np.float32) * (0.35 / np.sqrt(base.shape[1]))
        vectors = base[start : start + count] + noise
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return near_real


def build(work: Path, wanted: int, like: Path | None) -> dict:
    """Write a generation of `wanted` passages (or a few more) through the embedded backend's writer."""

    from qa.backend import StoredPassage, passage_id
    from qa.chunk import ChunkSettings, chunk_article, embed_text
    from qa.embedders import make_embedder
    from qa.ingest import read_corpus
    from qa.store import EmbeddedBackend

    embedder = make_embedder(kind="int8")
    settings = ChunkSettings()
    articles = read_corpus(ROOT / "corpus").articles
    # one long article of all the sample texts: about as many passages per article as the evaluation corpus has
    digest = replace(articles[0], doc_id="digest", text="\n\n".join(a.text for a in articles))
    sample = [(digest, *chunk_article(digest, embedder.count_tokens, settings))]
    rng = np.random.default_rng(0)
    vectors_for = synthetic_vectors(like, rng)
    backend = EmbeddedBackend(work / "index")
    started = time.perf_counter()
    written = 0
    with backend.lock():
        writer = backend.writer(None, embedder.dimension)
        copy = 0
        while written < wanted:
            for article, passages, sentences in sample:
                doc_id = f"{article.doc_id}-{copy}"
                title = f"{article.title} ({copy})"
                stored = []
                for p in passages:
                    text = embed_text(title, p.text)
                    embed_hash = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
                    stored.append(
                        StoredPassage(
                            passage_id(doc_id, p.start, p.end, embed_hash), doc_id, p.start, p.end, embed_hash
                        )
                    )
                copied = replace(article, doc_id=doc_id, title=title)
                writer.put_article(
                    copied, stored, vectors_for(len(stored)), [replace(s, doc_id=doc_id) for s in sentences]
                )
                written += len(stored)
            copy += 1
        manifest = {"model": embedder.model_id, "dimension": embedder.dimension, "chunking": settings.as_dict()}
        generation = writer.commit(manifest, {}, [], {})
    return {
        "passages": written,
        "articles": copy * len(sample),
        "build_s": time.perf_counter() - started,
        "build_peak_mib": peak_mib(),
        "generation": generation,
    }


def query(work: Path, rounds: int) -> dict:
    import faiss

    from qa.answer import ask
    from qa.embedders import make_embedder
    from qa.evaluate import read_questions
    from qa.store import load_generation

    faiss.omp_set_num_threads(1)  # as app.py runs
    started = time.perf_counter()
    generation = load_generation(work / "index")
    load_s = time.perf_counter() - started
    embedder = make_embedder(kind="int8")
    questions = [q.question for q in read_questions(DEV if DEV.exists() else ROOT / "corpus" / "questions.jsonl")]
    vectors = embedder.embed(questions)
    segments = generation.segments
    graphs = [segment.search_index for segment in segments]
    flats = []
    for segment in segments:
        flat = faiss.IndexFlatIP(generation.dimension)
        flat.add(np.ascontiguousarray(segment.vectors, dtype=np.float32))
        flats.append(flat)

    def use(indexes) -> None:
        for segment, index in zip(segments, indexes, strict=True):
            segment._search = index

    found = {}
    latency = {}
    for name, indexes in (("hnsw", graphs), ("flat", flats)):
        use(indexes)
        found[name] = [generation.dense_search(v[None, :], 10)[1][0] for v in vectors]
        ask(generation, embedder, questions[0])  # warm
        times = []
        for _ in range(rounds):
            for question in questions:
                began = time.perf_counter()
                ask(generation, embedder, question)
                times.append((time.perf_counter() - began) * 1000)
        latency[name] = (float(np.percentile(times, 50)), float(np.percentile(times, 95)))
    recall = float(
        np.mean(
            [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found["hnsw"], found["flat"], strict=True)]
        )
    )
    return {
        "load_s": load_s,
        "questions": len(questions),
        "recall@10": recall,
        "hnsw_p50_ms": latency["hnsw"][0],
        "hnsw_p95_ms": latency["hnsw"][1],
        "flat_p50_ms": latency["flat"][0],
        "flat_p95_ms": latency["flat"][1],
        "serve_peak_mib": peak_mib(),
        "segments": [s.manifest.get("faiss_index") for s in segments],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked per search kind")
    parser.add_argument(
        "--like",
        type=Path,
        help="an index whose passage vectors the synthetic ones are drawn "
        "around (default: clustered random directions, which real questions have no neighbours in)",
    )
    parser.add_argument("--phase", choices=("build", "query"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(build(args.work, args.passages, args.like)))
        return
    if args.phase == "query":
        print(json.dumps(query(args.work, args.rounds)))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results = {}
    for phase in ("build", "query"):  # each in its own process: its peak memory is its own
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                phase,
                "--passages",
                str(args.passages),
                "--work",
                str(args.work),
                "--rounds",
                str(args.rounds),
                *(["--like", str(args.like)] if args.like else []),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        results.update(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{phase}: {out.stdout.strip().splitlines()[-1]}", file=sys.stderr, flush=True)
    disk = sum(f.stat().st_size for f in (args.work / "index").rglob("*") if f.is_file()) / 2**20
    print(
        "| passages | build s | build peak MiB | on disk MiB | load s | serve peak MiB | flat p50/p95 ms | "
        "HNSW p50/p95 ms | HNSW recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {results['passages']:,} | {results['build_s']:.0f} | {results['build_peak_mib']:.0f} | {disk:.0f} | "
        f"{results['load_s']:.1f} | {results['serve_peak_mib']:.0f} | {results['flat_p50_ms']:.0f} / "
        f"{results['flat_p95_ms']:.0f} | {results['hnsw_p50_ms']:.0f} / {results['hnsw_p95_ms']:.0f} | "
        f"{results['recall@10']:.3f} |"
    )
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
