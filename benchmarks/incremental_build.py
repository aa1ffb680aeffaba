"""Rebuild times users wait on: nothing changed, and 10 articles added, on a built evaluation index and on a
corpus ten times its size.

Usage: python benchmarks/incremental_build.py --index /tmp/idx [--added 10] [--scale 10] [--rounds 3]

The index must be a build of ../shared/eval/realtimeqa/corpus.jsonl.gz (`python -m qa build`). It is copied
to a scratch folder first (the given index is not changed), with a copy of the corpus file. Times, in separate
processes as a user runs them, `python -m qa build` with the corpus unchanged, then with `--added` articles
added: articles of the corpus under new ids with an update line at the top of the text and the headline (which
every passage's embedded text starts with), so all of their passages are new and must be chunked and embedded.

With --scale N (> 1), the same two builds run on a corpus N times the evaluation corpus, made here and never
kept: each article repeated N - 1 times under a new id and URL with an altered first line ("Copy 3: ...").
Its index is seeded here, not built (embedding N times the passages would take hours on a CPU): each copy gets
its original's passages (offsets shifted by the new first line), sentences, vectors and term counts, written as
one segment with no HNSW graph (a build that adds articles does not read the graph) and no duplicate groups
(the added articles are still compared with every article). The seeded index is what a build of that corpus
would be up to those vectors, so the timed builds do what they would do on it.

Each round adds --added further articles to every corpus in turn (side by side, as the machine's load drifts);
the medians over --rounds rounds are compared.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa"


def timed_build(corpus: Path, index: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qa", "build", "--corpus", str(corpus), "--index", str(index), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"build failed:\n{done.stderr}")
    return time.perf_counter() - started, json.loads(done.stdout)


def altered(record: dict, tag: str, first_line: str, title: bool) -> dict:
    """The record under a new id and URL, with `first_line` put before its text (and its headline)."""
    record = dict(record)
    key = next(k for k in ("doc_id", "id") if k in record)
    record[key] = f"{tag}-{record[key]}"
    for field in ("url", "link"):
        if field in record:
            record[field] = f"{record[field]}#{tag}"
    text_field = next(k for k in ("text", "body", "content") if k in record)
    record[text_field] = f"{first_line}{record[text_field]}"
    if title:
        record["title"] = f"{first_line}{record.get('title', '')}"  # in every passage's embedded text
    return record


def read_records(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def add_articles(corpus: Path, records: list[dict], count: int, round_: int) -> None:
    """The first `count` articles again, under ids and with an update line new in each round (the same work in
    every round), in a file of their own."""
    chosen = records[:count]
    with (corpus / f"added-{round_}.jsonl").open("w", encoding="utf-8") as out:
        for number, record in enumerate(chosen, start=1):
            tag = f"added-{round_}-{number}"
            out.write(json.dumps(altered(record, tag, f"Update {round_}.{number}: ", title=True)) + "\n")


def prepare(label: str, corpus: Path, index: Path) -> None:
    seconds, report = timed_build(corpus, index)  # reads the copied file once and remembers it
    print(
        f"{label}: first build after the copy {seconds:.1f} s (up to date: {report['up_to_date']}, "
        f"{report['passages']} passages)"
    )
    seconds, report = timed_build(corpus, index)
    print(
        f"{label}: nothing changed {seconds:.2f} s wall, up to date: {report['up_to_date']}, "
        f"{report['files_unchanged']} of {report['files']} files not read"
    )


def add_and_time(label: str, corpus: Path, index: Path, records: list[dict], added: int, round_: int) -> float:
    add_articles(corpus, records, added, round_)
    seconds, report = timed_build(corpus, index)
    print(
        f"{label}: {added} articles added {seconds:.2f} s wall ({report['seconds']:.2f} s in the build, "
        f"{report['embed_seconds']:.2f} s embedding), {report['new']} new, {report['embedded']} passages "
        f"embedded, {report['reused_vectors']} reused, {report['passages']} passages"
    )
    return seconds


def seed_scaled_index(source_index: Path, corpus_file: Path, index: Path, scale: int) -> None:
    """Write the index of the scaled corpus from the 1x index's passages, vectors and term counts."""
    import qa.segments as segments
    import qa.store as store
    from qa.backend import StoredPassage, passage_id
    from qa.build import corpus_fingerprint, reader_calibration
    from qa.chunk import ChunkSettings, embed_text
    from qa.ingest import INGEST_VERSION, read_corpus
    from qa.types import Sentence

    original = store.load_generation(source_index)
    if len(original.segments) != 1:
        sys.exit(f"{source_index} has {len(original.segments)} segments: seed from a fresh build of the corpus")
    (segment,) = original.segments
    ingested = read_corpus(corpus_file.parent)
    by_id = {a.doc_id: a for a in ingested.articles}
    part = segments.Part()
    part.articles = ingested.articles
    rows = np.arange(len(segment.passages))
    for copy in range(scale):
        shift = len(f"Copy {copy}: ") if copy else 0
        prefix = f"x{copy}-" if copy else ""
        for passage in segment.passages:
            article = by_id[prefix + passage.doc_id]
            start = passage.start + shift if passage.start else 0
            end = passage.end + shift
            embed_hash = hashlib.sha1(
                embed_text(article.title, article.text[start:end]).encode("utf-8", "surrogatepass")
            ).hexdigest()
            part.passages.append(
                StoredPassage(
                    passage_id(article.doc_id, start, end, embed_hash), article.doc_id, start, end, embed_hash
                )
            )
        for doc_id in segment.articles:
            part.sentences += [
                Sentence(prefix + doc_id, s.start + shift if s.start else 0, s.end + shift)
                for s in original.sentences(doc_id)
            ]
        part.vectors.append(np.asarray(segment.vectors, dtype=np.float32))
        part.terms.append((segment.terms, rows))
    segments.FLAT_LIMIT = 10**12  # no graph: see the module's docstring
    writer = store.SegmentWriter(index, None, original.dimension)
    writer._new_parts = lambda: part
    writer.articles = {"seeded": None}
    hashes = {a.doc_id: a.content_hash for a in ingested.articles}
    manifest = {key: original.manifest[key] for key in ("model", "dimension", "normalized", "metric", "chunking")}
    manifest["reader"], manifest["ingest"] = reader_calibration(), INGEST_VERSION
    manifest["fingerprint"] = corpus_fingerprint(hashes, ChunkSettings(), original.model_id, manifest["reader"])
    writer.commit(manifest, {}, [], ingested.sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx")
    parser.add_argument("--added", type=int, default=10)
    parser.add_argument("--scale", type=int, default=1, help="also time a corpus this many times larger")
    parser.add_argument("--rounds", type=int, default=3, help="additions timed per corpus (the median is used)")
    args = parser.parse_args()
    source = EVAL / "corpus.jsonl.gz"
    if not source.exists():
        sys.exit(f"evaluation corpus not found at {source}")
    records = read_records(source)
    with tempfile.TemporaryDirectory(prefix="incremental-") as scratch:
        scratch = Path(scratch)
        index, corpus = scratch / "index", scratch / "corpus"
        shutil.copytree(args.index, index, ignore=shutil.ignore_patterns(".build.lock"))
        corpus.mkdir()
        shutil.copy(source, corpus / "corpus.jsonl.gz")
        runs = [("1x", corpus, index)]
        if args.scale > 1:
            big_corpus, big_index = scratch / f"corpus{args.scale}", scratch / f"index{args.scale}"
            big_corpus.mkdir()
            started = time.perf_counter()
            with gzip.open(big_corpus / "corpus.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as out:
                for copy in range(args.scale):
                    for record in records:
                        if copy:
                            record = altered(record, f"x{copy}", f"Copy {copy}: ", title=False)
                        out.write(json.dumps(record) + "\n")
            seed_scaled_index(Path(args.index), big_corpus / "corpus.jsonl.gz", big_index, args.scale)
            print(f"{args.scale}x: corpus and index seeded in {time.perf_counter() - started:.0f} s")
            runs.append((f"{args.scale}x", big_corpus, big_index))
        for label, run_corpus, run_index in runs:
            prepare(label, run_corpus, run_index)
        times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
        for round_ in range(args.rounds):  # side by side: each round adds to every corpus in turn
            for label, run_corpus, run_index in runs:
                times[label].append(add_and_time(label, run_corpus, run_index, records, args.added, round_))
        medians = {label: float(np.median(values)) for label, values in times.items()}
        for label, median in medians.items():
            print(f"{label}: {args.added} articles added, median of {args.rounds}: {median:.2f} s")
        if args.scale > 1:
            print(f"{args.added} added, {args.scale}x / 1x: {medians[f'{args.scale}x'] / medians['1x']:.2f}")


if __name__ == "__main__":
    main()
