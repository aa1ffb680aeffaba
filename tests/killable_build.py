"""A build with the fake embedder that marks each phase in a log file and pauses there, so that a test can
SIGKILL it just before or just after any step (tests/test_faults.py runs it in a forked child)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tqdm import tqdm

import qa.build as build
import qa.segments as segments
import qa.store as store
from qa.keyword import TermCounts
from tests.conftest import FakeEmbedder

tqdm.get_lock()  # made once in the fork server: a lock made in each killed child would be left to clean up

# Build steps in the order they run; the kill lands before ("<phase>") or after ("<phase> done") each one.
PHASES = (
    "cleanup",
    "ingest",
    "chunking",
    "embedding",
    "terms",
    "database",
    "checksums",
    "segment rename",
    "rename",
    "switch",
    "prune",
)


def build_with_pauses(corpus: str, index: str, log: str, pause: float) -> None:
    """Run build_index with every phase marked in `log` and followed by a `pause` (seconds)."""

    def mark(phase: str) -> None:
        with open(log, "a") as handle:
            handle.write(phase + "\n")
        time.sleep(pause)

    def paused(function, phase_of):
        """`function`, marking and pausing before and after each call that `phase_of(*args)` names a phase."""

        def wrapper(*args, **kwargs):
            phase = phase_of(*args)
            if phase:
                mark(phase)
            result = function(*args, **kwargs)
            if phase:
                mark(phase + " done")
            return result

        return wrapper

    def calls(*phases):
        """The n-th call is phase n (None after the last)."""
        names = iter(phases)
        return lambda *args: next(names, None)

    store._prune = paused(store._prune, calls("cleanup", "prune"))  # killed builds' folders, then old generations
    build.read_corpus = paused(build.read_corpus, calls("ingest"))
    build.chunk_article = paused(build.chunk_article, calls("chunking"))
    TermCounts.save = paused(TermCounts.save, calls("terms"))
    segments._write_database = paused(segments._write_database, calls("database"))
    checksums = paused(segments.file_checksums, lambda *args: "checksums")  # the segment's, then the generation's
    segments.file_checksums = store.file_checksums = checksums
    # the new segment's and the generation folder's renames into place, and CURRENT's atomic replacement
    os.rename = paused(
        os.rename,
        lambda source, target: (
            "rename"
            if Path(target).name.startswith("gen-")
            else "segment rename"
            if Path(target).name.startswith("seg-")
            else None
        ),
    )
    os.replace = paused(os.replace, lambda source, target: "switch" if Path(target).name == store.CURRENT else None)

    class PausingEmbedder(FakeEmbedder):
        def embed(self, texts, progress=False):
            mark("embedding")
            vectors = super().embed(texts)
            mark("embedding done")
            return vectors

    build.build_index(corpus, index, PausingEmbedder())
