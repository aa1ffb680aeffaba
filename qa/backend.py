"""The search-backend interface: what build, retrieval, duplicate detection and answers ask of an index.

A backend keeps generations of passages (text offsets, a vector, keyword terms) grouped by article. A build
opens a writer on the live generation, adds, replaces or deletes articles, and commits: the new generation
becomes live in one step, the previous one stays readable. Passage ids are stable: the same passage of the
same article text has the same id in every generation and in every backend (`passage_id`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from qa.errors import BuildInProgress, ModelMismatch
from qa.types import Article, Sentence, SourceFile

STORE_VERSION = 5  # the generation layout every backend writes; bumped on a change: a build then reuses vectors
LOCK = ".build.lock"
DayRange = tuple[int, int]  # first and last publication day (date.toordinal()), both included


def passage_id(doc_id: str, start: int, end: int, embed_hash: str) -> int:
    """A passage's id: 63 bits of a hash of its article, offsets and embedded text (a signed 64-bit integer
    for FAISS, an unsigned one for Qdrant)."""
    digest = hashlib.blake2b(
        f"{doc_id}\0{start}\0{end}\0{embed_hash}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class StoredPassage:
    passage_id: int
    doc_id: str
    start: int
    end: int
    embed_hash: str


@dataclass(frozen=True)
class ArticleFacts:
    """What ranking needs of a passage's article for every question: its day and its story."""

    day: int  # publication day as date.toordinal(); -1 when undated
    group: str  # doc_id of the first copy of its story (itself when it has no other copies)


class BuiltWith:
    """What every generation's manifest says: the model its vectors are from (a base of each backend's
    generations)."""

    manifest: dict

    @property
    def model_id(self) -> str:
        return self.manifest["model"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    def check_model(self, model_id: str, dimension: int) -> None:
        if (self.model_id, self.dimension) != (model_id, dimension):
            raise ModelMismatch(self.model_id, self.dimension, model_id, dimension)


@dataclass(frozen=True)
class FusedHits:
    """One question's candidates as a backend fused them by reciprocal rank: passage ids best first, each with its
    fused score, its cosine to the question and its BM25 score."""

    ids: list[int]
    scores: list[float]
    dense: list[float]
    keyword: list[float]


class HybridSearch(Protocol):
    """What a backend that fuses in its engine offers besides SearchIndex (retrieval uses it when present)."""

    def hybrid_search(
        self, vectors: np.ndarray, terms: Sequence[Sequence[str]], k: int, rrf_k: int, days: DayRange | None = None
    ) -> list[FusedHits]:
        """Per question: its k best dense and k best keyword passages fused as sum 1 / (rrf_k + rank)."""


class ReusableIndex(Protocol):
    """What a build reuses of the live generation. One of an older layout offers only this (its vectors, so
    that they are not embedded again); one of this layout is a whole SearchIndex."""

    name: str
    manifest: dict

    @property
    def model_id(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    def close(self) -> None: ...
    def article_hashes(self) -> dict[str, str]: ...
    def sources(self) -> dict[str, SourceFile]: ...
    def vectors_by_hash(self, embed_hashes: Sequence[str]) -> dict[str, np.ndarray]: ...


@runtime_checkable
class SearchIndex(ReusableIndex, Protocol):
    """One generation, read-only and safe to share between threads."""

    fallback_from: tuple[str, str] | None

    def passage_count(self) -> int: ...
    def check_model(self, model_id: str, dimension: int) -> None: ...

    def dense_search(self, vectors: np.ndarray, k: int, days: DayRange | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, passage ids) per query vector, best first by inner product; ids of -1 pad short rows."""

    def keyword_search(
        self, terms: Sequence[str], k: int, days: DayRange | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(BM25 scores, passage ids) of the passages holding any of the terms, best first, at most k."""

    def keyword_scores(self, terms: Sequence[str], ids: Sequence[int]) -> np.ndarray: ...
    def idf(self, term: str) -> float: ...
    def passages(self, ids: Sequence[int]) -> list[StoredPassage]: ...
    def vectors(self, ids: Sequence[int]) -> np.ndarray: ...
    def facts(self, doc_id: str) -> ArticleFacts: ...
    def article(self, doc_id: str) -> Article: ...
    def sentences(self, doc_id: str) -> list[Sentence]: ...
    def passage_text(self, passage_id: int) -> str: ...
    def doc_ids(self) -> list[str]: ...
    def iter_articles(self) -> Iterator[Article]: ...
    def newest_date(self) -> date | None: ...

    # what a build adding to this generation reuses, besides ReusableIndex's
    def article_passages(self, doc_id: str) -> list[StoredPassage]: ...
    def article_means(self) -> tuple[list[str], np.ndarray]: ...
    def duplicate_pairs(self) -> list[tuple[str, str]]: ...


class GenerationWriter(Protocol):
    """A new generation, begun as a copy of the live one (or empty)."""

    written: dict[str, int]  # after commit: the generation's articles, passages and sentences

    def put_article(
        self, article: Article, passages: Sequence[StoredPassage], vectors: np.ndarray, sentences: Sequence[Sentence]
    ) -> None:
        """Add an article, or replace the one with its doc_id (its old passages go)."""

    def delete_article(self, doc_id: str) -> None: ...
    def commit(
        self,
        manifest: dict,
        duplicate_of: dict[str, str],
        duplicate_pairs: Sequence[tuple[str, str]],
        sources: dict[str, SourceFile],
    ) -> str:
        """Write everything, make it the live generation and return its name; on failure the live one stays."""


class Backend(Protocol):
    location: str

    def lock(self) -> AbstractContextManager[None]:
        """One build at a time; a second is refused at once (BuildInProgress)."""

    def open(self, model_id: str | None = None, dimension: int | None = None, fallback: bool = True) -> SearchIndex:
        """The live generation (IndexNotFound when there is none)."""

    def open_for_reuse(self) -> ReusableIndex | None:
        """The live generation for a build to copy from, or None when there is none or it cannot be read."""

    def writer(self, previous: SearchIndex | None, dimension: int) -> GenerationWriter: ...
    def live_name(self) -> str: ...


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index folder; a second one is refused at once."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildInProgress(str(index_dir)) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
