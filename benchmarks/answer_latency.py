"""Latency of one question end to end (retrieval, fusion, answer composition, quote verification), in-process.

Usage: python benchmarks/answer_latency.py --index /tmp/idx_eval [--repeat 1]
Runs the development questions of ../shared/eval/realtimeqa/dev.jsonl one at a time after a warm-up,
and prints p50/p95/max in milliseconds, plus how long loading took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "realtimeqa"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_eval")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if not (EVAL / "dev.jsonl").exists():
        sys.exit(f"evaluation set not found at {EVAL}")
    started = time.perf_counter()
    from qa.answer import ask
    from qa.embed import SentenceTransformerEmbedder
    from qa.evaluate import read_questions
    from qa.store import load_generation

    imported = time.perf_counter()
    generation = load_generation(args.index)
    loaded = time.perf_counter()
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    warmed = time.perf_counter()
    questions = read_questions(EVAL / "dev.jsonl")
    for q in questions[:10]:
        ask(generation, embedder, q.question, asked_on=q.question_date)
    latencies = []
    for _ in range(args.repeat):
        for q in questions:
            t = time.perf_counter()
            ask(generation, embedder, q.question, asked_on=q.question_date)
            latencies.append((time.perf_counter() - t) * 1000)
    values = np.array(latencies)
    print(f"passages {len(generation.passages)}, questions {len(values)}")
    print(f"import {imported - started:.2f} s, index load {loaded - imported:.2f} s, model load {warmed - loaded:.2f} s")
    print(f"latency ms: p50 {np.percentile(values, 50):.1f}, p95 {np.percentile(values, 95):.1f}, max {values.max():.1f}")


if __name__ == "__main__":
    main()
