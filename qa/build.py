"""The incremental build: read the corpus, chunk and embed what is new or changed, find copies of stories, and
commit a new generation through a search backend. Its cost follows the change, not the corpus: unchanged files
are not read again, unchanged articles are not chunked, tokenised or compared again, and vectors are reused
by the hash of the text they embed."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from qa.backend import STORE_VERSION, Backend, ReusableIndex, SearchIndex, StoredPassage, passage_id
from qa.chunk import DEFAULT_CHUNKING, ChunkSettings, chunk_article, embed_text
from qa.dedupe import find_duplicates
from qa.embed import Embedder
from qa.errors import NothingIndexed
from qa.ingest import INGEST_VERSION, read_corpus
from qa.store import EmbeddedBackend
from qa.types import Article, Sentence, Skipped

EMBED_BATCH = 256  # passages embedded between two progress reports
Progress = Callable[[str, int, int], None]  # (stage, done, total): "reading", "chunking", "embedding", "writing"


@dataclass
class BuildReport:
    """What a build did; printed by `python -m qa build`."""

    corpus: str
    index_dir: str
    generation: str = ""
    files: int = 0
    articles_read: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    files_unchanged: int = 0
    passages: int = 0
    embedded: int = 0
    reused_vectors: int = 0
    duplicates: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    up_to_date: bool = False

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        data["skipped"] = [{"origin": s.origin, "reason": s.reason} for s in self.skipped]
        data["passages_per_second"] = round(self.passages_per_second, 1)
        return data

    @property
    def passages_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


def build_index(
    corpus: str | Path,
    index: str | Path | Backend,
    embedder: Embedder,
    settings: ChunkSettings = DEFAULT_CHUNKING,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the index up to date with the corpus and make the result the live generation."""
    started = time.perf_counter()
    backend = EmbeddedBackend(index) if isinstance(index, str | os.PathLike) else index
    report = BuildReport(corpus=str(corpus), index_dir=backend.location)
    tell = progress or (lambda stage, done, total: None)
    with backend.lock():
        previous = _reusable(backend.open_for_reuse(), embedder)
        try:
            _build(corpus, backend, previous, embedder, settings, report, tell)
        finally:
            if previous is not None:
                previous.close()
    report.seconds = time.perf_counter() - started
    return report


def _reusable(previous: ReusableIndex | None, embedder: Embedder) -> ReusableIndex | None:
    """The live generation when it was built by this model (else nothing of it is reused)."""
    if previous is not None and (previous.model_id, previous.dimension) != (embedder.model_id, embedder.dimension):
        previous.close()
        return None
    return previous


def _build(
    corpus,
    backend: Backend,
    previous: ReusableIndex | None,
    embedder: Embedder,
    settings: ChunkSettings,
    report: BuildReport,
    tell: Progress,
) -> None:
    # the previous generation when it has this layout (one of an older layout lends only its vectors), and
    # the one this build adds to when its chunking is this build's too
    same_layout = (
        previous
        if isinstance(previous, SearchIndex) and previous.manifest.get("store_version") == STORE_VERSION
        else None
    )
    base = (
        same_layout
        if same_layout is not None
        and same_layout.manifest.get("chunking") == settings.as_dict()
        and same_layout.manifest.get("ingest") == INGEST_VERSION  # articles read as this version reads them
        else None
    )
    incremental = base is not None
    tell("reading", 0, 0)
    ingested = read_corpus(corpus, base.sources() if base is not None else None)
    old_hashes = previous.article_hashes() if previous is not None else {}
    if any(doc_id not in old_hashes for doc_id in ingested.kept):  # the index changed behind the file table
        ingested = read_corpus(corpus)
    report.files, report.skipped = ingested.files, ingested.skipped
    report.files_unchanged = ingested.files_kept
    report.articles_read = len(ingested.articles) + len(ingested.kept)
    if not report.articles_read:
        raise NothingIndexed(str(corpus), report)
    hashes = {
        **{doc_id: old_hashes[doc_id] for doc_id in ingested.kept},
        **{a.doc_id: a.content_hash for a in ingested.articles},
    }
    report.new = sum(1 for d in hashes if d not in old_hashes)
    report.changed = sum(1 for d, h in hashes.items() if d in old_hashes and old_hashes[d] != h)
    report.unchanged = len(hashes) - report.new - report.changed
    report.removed = len(set(old_hashes) - set(hashes))
    calibration = reader_calibration()
    fingerprint = corpus_fingerprint(hashes, settings, embedder.model_id, calibration)
    if same_layout is not None and same_layout.manifest.get("fingerprint") == fingerprint:
        report.up_to_date, report.generation = True, same_layout.name
        report.passages = same_layout.manifest.get("passages", 0)
        if report.files_unchanged < len(ingested.sources) and hasattr(backend, "save_sources"):
            backend.save_sources(same_layout.name, ingested.sources)
        return

    writer = backend.writer(base, embedder.dimension)
    fresh = [a for a in ingested.articles if not incremental or old_hashes.get(a.doc_id) != a.content_hash]
    chunked = _chunk(fresh, embedder, settings, tell)
    vectors = _embed(chunked, previous, embedder, report, tell)
    tell("writing", 0, len(chunked))
    means, means_ids = [], []
    for (article, passages, sentences), article_vectors in zip(chunked, vectors, strict=True):
        writer.put_article(article, passages, article_vectors, sentences)
        means_ids.append(article.doc_id)
        means.append(_mean(article_vectors, embedder.dimension))
    if incremental:
        for doc_id in set(old_hashes) - set(hashes):
            writer.delete_article(doc_id)
    duplicate_of, pairs = _duplicates(chunked, means_ids, means, base, hashes, embedder.dimension)
    report.duplicates = len(duplicate_of)
    manifest = {
        "model": embedder.model_id,
        "dimension": embedder.dimension,
        "normalized": True,
        "metric": "inner_product",
        "chunking": settings.as_dict(),
        "ingest": INGEST_VERSION,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(Path(report.corpus).resolve()),
        "fingerprint": fingerprint,
        "versions": _library_versions(),
        "reader": calibration,  # the abstention threshold and reader weights, with their model's id
    }
    report.generation = writer.commit(manifest, duplicate_of, pairs, ingested.sources)
    report.passages = writer.written["passages"]


def _chunk(
    articles: list[Article], embedder: Embedder, settings: ChunkSettings, tell: Progress
) -> list[tuple[Article, list[StoredPassage], list[Sentence]]]:
    chunked = []
    for done, article in enumerate(articles):
        if done % 200 == 0:
            tell("chunking", done, len(articles))
        passages, sentences = chunk_article(article, embedder.count_tokens, settings)
        stored = []
        for passage in passages:
            text = embed_text(article.title, passage.text)
            embed_hash = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
            stored.append(
                StoredPassage(
                    passage_id(article.doc_id, passage.start, passage.end, embed_hash),
                    article.doc_id,
                    passage.start,
                    passage.end,
                    embed_hash,
                )
            )
        chunked.append((article, stored, sentences))
    tell("chunking", len(articles), len(articles))
    return chunked


def _embed(
    chunked, previous: ReusableIndex | None, embedder: Embedder, report: BuildReport, tell: Progress
) -> list[np.ndarray]:
    """Each article's passage vectors: reused by embedded-text hash where the previous generation has them."""
    hashes = [p.embed_hash for _, passages, _ in chunked for p in passages]
    known = previous.vectors_by_hash(hashes) if previous is not None and hashes else {}
    missing = list(dict.fromkeys(h for h in hashes if h not in known))
    texts_by_hash = {
        p.embed_hash: embed_text(a.title, a.text[p.start : p.end])
        for a, passages, _ in chunked
        for p in passages
        if p.embed_hash not in known
    }
    started = time.perf_counter()
    for start in range(0, len(missing), EMBED_BATCH):  # in batches, so that progress shows between them
        tell("embedding", start, len(missing))
        batch = missing[start : start + EMBED_BATCH]
        known.update(zip(batch, embedder.embed([texts_by_hash[h] for h in batch]), strict=True))
    tell("embedding", len(missing), len(missing))
    report.embed_seconds = time.perf_counter() - started
    report.embedded = len(missing)
    report.reused_vectors = len(hashes) - len(missing)
    return [
        np.array([known[p.embed_hash] for p in passages], dtype=np.float32).reshape(len(passages), -1)
        for _, passages, _ in chunked
    ]


def _mean(vectors: np.ndarray, dimension: int) -> np.ndarray:
    mean = vectors.sum(axis=0) if len(vectors) else np.zeros(dimension, np.float32)
    norm = np.linalg.norm(mean)
    return (mean / norm if norm else mean).astype(np.float32)


def _duplicates(
    chunked,
    fresh_ids: list[str],
    fresh_means: list[np.ndarray],
    previous: SearchIndex | None,
    hashes: dict[str, str],
    dimension: int,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Copies of one story among all live articles; with a previous generation, only the fresh articles are
    compared and its confirmed pairs between articles that stay are kept."""
    fresh = {article.doc_id: article for article, _, _ in chunked}
    doc_ids = list(fresh_ids)
    matrix = np.array(fresh_means, dtype=np.float32).reshape(len(fresh_means), dimension)
    if previous is not None:
        old_ids, old_means = previous.article_means()
        keep = [i for i, doc_id in enumerate(old_ids) if doc_id in hashes and doc_id not in fresh]
        doc_ids += [old_ids[i] for i in keep]
        matrix = np.concatenate([matrix, old_means[keep]])

    def date_of(doc_id: str) -> str | None:  # asked only for the members of a story's copies
        if doc_id in fresh:
            return fresh[doc_id].publish_date
        assert previous is not None
        day = previous.facts(doc_id).day
        return date.fromordinal(day).isoformat() if day > 0 else None

    def text_of(doc_id: str) -> str:
        if doc_id in fresh:
            return fresh[doc_id].text
        assert previous is not None  # an article that is not fresh is the previous generation's
        return previous.article(doc_id).text

    known = previous.duplicate_pairs() if previous is not None else ()
    known = [pair for pair in known if pair[0] not in fresh and pair[1] not in fresh]
    return find_duplicates(doc_ids, matrix, date_of, text_of, set(fresh) if previous is not None else None, known)


def corpus_fingerprint(hashes: dict[str, str], settings: ChunkSettings, model_id: str, calibration: dict) -> str:
    """Changes when an article, the chunking, how articles are read, the model or the reader's calibration does."""
    digest = hashlib.sha256(
        json.dumps([STORE_VERSION, INGEST_VERSION, model_id, settings.as_dict(), calibration]).encode()
    )
    for doc_id in sorted(hashes):
        digest.update(f"{doc_id}\0{hashes[doc_id]}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def reader_calibration() -> dict:
    """What the reader fitted for its model (qa/reader_model.json), kept with the index it answers from."""
    from qa.reader import ReaderModel

    return ReaderModel.load().as_dict()


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("sentence-transformers", "faiss-cpu", "torch", "transformers", "sentencex", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
