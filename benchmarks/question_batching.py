"""What one question's embedding costs alone and in a batch, at 1 and 2 torch threads (the web chat's settings).

Usage: python benchmarks/question_batching.py [--repeat 7]
Prints wall and CPU milliseconds per question (medians over --repeat runs) for batches of 1, 4, 8 and 16
short questions with the bundled model, first with torch at 2 threads, then at 1 (what app.py sets).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app import SAMPLE_QUESTIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import torch

    from qa.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    questions = (SAMPLE_QUESTIONS * 4)[:16]
    embedder.embed(questions)  # loads the model
    for threads in (2, 1):
        torch.set_num_threads(threads)
        embedder.embed(questions)
        for size in (1, 4, 8, 16):
            wall, cpu = [], []
            for _ in range(args.repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                embedder.embed(questions[:size])
                wall.append((time.perf_counter() - started) * 1000 / size)
                cpu.append((time.process_time() - started_cpu) * 1000 / size)
            print(
                f"torch threads {threads}, batch {size:2d}: {statistics.median(wall):6.1f} ms wall, "
                f"{statistics.median(cpu):6.1f} ms CPU per question"
            )


if __name__ == "__main__":
    main()
