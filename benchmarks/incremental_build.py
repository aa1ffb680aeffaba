"""Rebuild times users wait on: nothing changed, and 10 articles added, on a built evaluation index.

Usage: python benchmarks/incremental_build.py --index /tmp/idx_int8 [--added 10]
The index must be a build of ../shared/eval/realtimeqa/corpus.jsonl.gz (`python -m qa build`). It is copied
to a scratch folder first (the given index is not changed). Times, in separate processes as a user runs
them, `python -m qa build` with the corpus unchanged, then with `--added` articles added: articles of the
corpus under new ids with an update line at the top of the text and the headline (which every passage's
embedded text starts with), so all of their passages are new and must be chunked and embedded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa"


def timed_build(corpus: Path, index: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "qa", "build", "--corpus", str(corpus), "--index", str(index),
                           "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_int8")
    parser.add_argument("--added", type=int, default=10)
    args = parser.parse_args()
    source = EVAL / "corpus.jsonl.gz"
    if not source.exists():
        sys.exit(f"evaluation corpus not found at {source}")
    with tempfile.TemporaryDirectory(prefix="incremental-") as scratch:
        scratch = Path(scratch)
        index = scratch / "index"
        shutil.copytree(args.index, index, ignore=shutil.ignore_patterns(".build.lock"))
        corpus = scratch / "corpus"
        corpus.mkdir()
        (corpus / "corpus.jsonl.gz").symlink_to(source)
        seconds, report = timed_build(corpus, index)
        print(f"nothing changed: {seconds:.1f} s wall, up to date: {report['up_to_date']}, "
              f"{report['passages']} passages")
        with gzip.open(source, "rt", encoding="utf-8") as lines:
            records = [json.loads(line) for _, line in zip(range(args.added), lines)]
        with (corpus / "added.jsonl").open("w", encoding="utf-8") as out:
            for number, record in enumerate(records, start=1):
                key = next(k for k in ("doc_id", "id") if k in record)
                record[key] = f"added-{number}-{record[key]}"
                for field in ("url", "link"):
                    if field in record:
                        record[field] = f"{record[field]}#added-{number}"
                text_field = next(k for k in ("text", "body", "content") if k in record)
                record[text_field] = f"Update {number}: this article was revised.\n{record[text_field]}"
                record["title"] = f"Update {number}: {record.get('title', '')}"  # in every passage's embed text
                out.write(json.dumps(record) + "\n")
        seconds, report = timed_build(corpus, index)
        print(f"{args.added} articles added: {seconds:.1f} s wall ({report['seconds']:.1f} s in the build), "
              f"{report['new']} new, {report['embedded']} passages embedded, {report['reused_vectors']} reused")


if __name__ == "__main__":
    main()
