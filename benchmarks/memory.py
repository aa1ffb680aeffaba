"""Peak resident memory of the web app serving indexes of three sizes, and how it grows per passage.

Usage: python benchmarks/memory.py --index /tmp/idx_int8 [--fractions 0.25,0.5] [--questions 30]
--index is a build of the whole ../shared/eval/realtimeqa/corpus.jsonl.gz. Smaller indexes are built from the
first 25 % and 50 % of its articles into a scratch folder, taking each passage's vector from the full index
(the same model gave it to the same text; anything not found there is embedded). For each index, app.py is
started on a free loopback port, asked --questions development questions over HTTP, and its peak resident
memory (VmHWM) is read. Prints one row per size and the least-squares slope in MiB per 10,000 passages.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa"


class ReusingEmbedder:
    """The index's own embedder, answering from the full index's vectors for texts it already embedded."""

    def __init__(self, inner, source):
        self.inner, self.model_id, self.dimension = inner, inner.model_id, inner.dimension
        self.by_hash = {p.embed_hash: p.passage_id for p in source.passages}
        self.vectors = source.vectors.reconstruct_n(0, source.vectors.ntotal)

    def embed(self, texts, progress=False):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for row, text in enumerate(texts):
            found = self.by_hash.get(hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())
            if found is None:
                missing.append(row)
            else:
                out[row] = self.vectors[found]
        if missing:
            out[missing] = self.inner.embed([texts[row] for row in missing])
        return out

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)


def serve_and_measure(index: Path, questions: list[str]) -> float:
    from served import ask, peak_rss_mib, served_app

    with served_app(index) as (http, server, _):
        for question in questions:
            ask(http, question)
        return peak_rss_mib(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_int8")
    parser.add_argument("--fractions", default="0.25,0.5")
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()
    from qa.build import build_index
    from qa.embedders import make_embedder
    from qa.evaluate import read_questions
    from qa.store import load_generation

    questions = [q.question for q in read_questions(EVAL / "dev.jsonl")][: args.questions]
    full = load_generation(args.index)
    embedder = ReusingEmbedder(make_embedder(index_dir=args.index), full)
    with gzip.open(EVAL / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines:
        records = lines.readlines()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory-") as scratch:
        for fraction in (float(f) for f in args.fractions.split(",")):
            folder = Path(scratch) / f"part-{fraction}"
            (folder / "corpus").mkdir(parents=True)
            (folder / "corpus" / "part.jsonl").write_text("".join(records[: int(len(records) * fraction)]))
            report = build_index(folder / "corpus", folder / "index", embedder)
            rows.append((report.passages, serve_and_measure(folder / "index", questions)))
        rows.append((len(full.passages), serve_and_measure(Path(args.index), questions)))
    print("| passages | peak RSS MiB |")
    print("|---|---|")
    for passages, rss in rows:
        print(f"| {passages} | {rss:.0f} |")
    slope, intercept = np.polyfit([r[0] for r in rows], [r[1] for r in rows], 1)
    print(f"slope: {slope * 10_000:.1f} MiB per 10,000 passages; intercept (no passages): {intercept:.0f} MiB")


if __name__ == "__main__":
    main()
