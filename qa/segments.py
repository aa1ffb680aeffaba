"""The segment: the embedded backend's unit on disk, written once and never changed.

    segments/seg-<time>/
      store.sqlite     articles (full text and metadata), passages (id, offsets, embedded-text hash), sentences
      vectors.npy      one unit vector per passage, in passage order
      terms.npz        term counts per passage (qa.keyword.TermCounts), vocabulary.json its terms
      means.npy        each article's mean passage vector (where duplicate detection looks)
      graph.faiss      an HNSW graph over the vectors, when the segment is too large to scan
      manifest.json    counts and each file's size and SHA-256, written last

qa/store.py groups segments into generations. This is the only module that imports faiss.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from qa.backend import StoredPassage
from qa.keyword import TermCounts, tokenize
from qa.types import Article, Sentence

if TYPE_CHECKING:
    import faiss

MANIFEST = "manifest.json"
DATABASE = "store.sqlite"
VECTORS = "vectors.npy"
GRAPH = "graph.faiss"
MEANS = "means.npy"
SEGMENT_PREFIX = "seg-"
TEMP_PREFIX = ".tmp-"
# Exact (flat) search while its scan fits the answer's time budget: one question costs about 0.1 ms per 1,000
# passages on one core (20 ms at 200,000, 45 ms at 400,000), against 1 to 1.5 ms for HNSW at any of these sizes,
# whose recall@10 was 0.995 on the evaluation corpus's own vectors (benchmarks/faiss_crossover.py,
# docs/benchmarks.md). Above this, a flat scan alone would take half the 50 ms an answer may take.
FLAT_LIMIT = 200_000
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128
FEW_QUERIES = 4  # a search of at most this many question vectors runs on one thread (`Segment.search`)


@lru_cache(maxsize=1)
def _omp_threads() -> int:
    """OpenMP's thread count for faiss in this process, as it was before any search changed it."""
    import faiss

    return int(faiss.omp_get_max_threads())


_SCHEMA = """
CREATE TABLE articles (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, text TEXT NOT NULL,
    url TEXT NOT NULL, publish_date TEXT, authors TEXT NOT NULL, source TEXT NOT NULL, origin TEXT NOT NULL,
    content_hash TEXT NOT NULL);
CREATE TABLE passages (
    row INTEGER PRIMARY KEY, passage_id INTEGER NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, embed_hash TEXT NOT NULL);
CREATE TABLE sentences (doc_id TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX sentences_by_doc ON sentences (doc_id, start);
CREATE INDEX passages_by_doc ON passages (doc_id);
CREATE INDEX passages_by_hash ON passages (embed_hash);
"""
_ARTICLE_COLUMNS = "doc_id, title, text, url, publish_date, authors, source, origin, content_hash"


def article_from_row(row: Sequence) -> Article:
    """An Article from a row of the _ARTICLE_COLUMNS."""
    doc_id, title, text, url, publish_date, authors, source, origin, content_hash = row
    return Article(doc_id, title, text, url, publish_date, tuple(json.loads(authors)), source, origin, content_hash)


class Segment:
    """One immutable segment; its vectors, graph and term counts load on first use."""

    def __init__(self, path: Path, check: bool):
        self.path = path
        self.name = path.name
        self.manifest = json.loads((path / MANIFEST).read_text())
        check_files(path, self.manifest, digests=check)
        self.db = sqlite3.connect(f"file:{path / DATABASE}?mode=ro", uri=True, check_same_thread=False)
        self.lock = threading.Lock()
        articles = self.db.execute("SELECT doc_id, publish_date, content_hash FROM articles ORDER BY row").fetchall()
        self.articles = [row[0] for row in articles]
        self.article_rows = {row[0]: i for i, row in enumerate(articles)}
        self.dates = [row[1] for row in articles]
        self.hashes = {row[0]: row[2] for row in articles}
        if self.manifest.get("articles") != len(articles):
            raise ValueError(f"segment {self.name}: article count differs from its manifest")
        self._vectors: np.ndarray | None = None
        self._search: faiss.Index | None = None
        self._terms: TermCounts | None = None

    @cached_property
    def passages(self) -> list[StoredPassage]:
        """Every passage of the segment in row order (read when first needed: a build adding articles to a
        large index does not need them)."""
        with self.lock:
            rows = self.db.execute("SELECT passage_id, doc_id, start, end, embed_hash FROM passages ORDER BY row")
            passages = [StoredPassage(*row) for row in rows]
        if self.manifest.get("passages") != len(passages):
            raise sqlite3.DatabaseError(f"segment {self.name}: passage count differs from its manifest")
        return passages

    @cached_property
    def ids(self) -> np.ndarray:
        return np.array([p.passage_id for p in self.passages], dtype=np.int64)

    def passages_of(self, doc_ids: Sequence[str]) -> list[StoredPassage]:
        found = []
        with self.lock:
            for start in range(0, len(doc_ids), 500):
                chunk = list(doc_ids[start : start + 500])
                found += [
                    StoredPassage(*row)
                    for row in self.db.execute(
                        "SELECT passage_id, doc_id, start, end, embed_hash FROM passages WHERE doc_id IN "
                        f"({','.join('?' * len(chunk))}) ORDER BY row",
                        chunk,
                    )
                ]
        return found

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = np.load(self.path / VECTORS, mmap_mode="r")
            if self._vectors.shape[0] != self.manifest.get("passages"):
                raise ValueError(f"segment {self.name}: vector and passage counts differ")
        return self._vectors

    @property
    def search_index(self) -> faiss.Index:
        if self._search is None:
            import faiss

            index: faiss.Index
            if (self.path / GRAPH).exists():
                # read_index returns the index's own class (here HNSW); faiss's stubs say only Index
                graph = cast("faiss.IndexHNSW", faiss.read_index(str(self.path / GRAPH)))
                graph.hnsw.efSearch = HNSW_EF_SEARCH
                index = graph
            else:
                index = faiss.IndexFlatIP(int(self.manifest["dimension"]))
                index.add(np.ascontiguousarray(self.vectors, dtype=np.float32))
            if index.ntotal != self.manifest.get("passages"):
                raise ValueError(f"segment {self.name}: vector and passage counts differ")
            self._search = index
        return self._search

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k best rows per vector by inner product, only `allowed` rows when given."""
        import faiss

        params = None
        if allowed is not None:
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            # faiss's stubs lack SearchParametersHNSW and the keyword constructor its Python wrapper adds
            wrapped = cast(Any, faiss)
            params = (
                wrapped.SearchParametersHNSW(sel=selector, efSearch=HNSW_EF_SEARCH)
                if (self.path / GRAPH).exists()
                else wrapped.SearchParameters(sel=selector)
            )
        few = len(vectors) <= FEW_QUERIES
        if few:  # OpenMP's threads cost more than they give on one query (4.1 against 6.4 ms over 38,953 vectors)
            threads = _omp_threads()  # the process's own count, read once before any change: concurrent
            faiss.omp_set_num_threads(1)  # searches then never restore each other's 1
        try:
            return self.search_index.search(vectors, min(k, self.manifest["passages"]), params=params)
        finally:
            if few:
                faiss.omp_set_num_threads(threads)

    @property
    def terms(self) -> TermCounts:
        if self._terms is None:
            self._terms = TermCounts.load(self.path)
            if len(self._terms.lengths) != self.manifest.get("passages"):
                raise ValueError(f"segment {self.name}: term and passage counts differ")
        return self._terms

    def means(self) -> np.ndarray:
        return np.load(self.path / MEANS)

    def close(self) -> None:
        self.db.close()


class Part:
    """Rows of a segment being written: articles, passages with their vectors and terms, sentences."""

    def __init__(self) -> None:
        self.articles: list[Article] = []
        self.passages: list[StoredPassage] = []
        self.sentences: list[Sentence] = []
        self.vectors: list[np.ndarray] = []
        self.terms: list[tuple[TermCounts, np.ndarray]] = []
        self.texts: list[str] = []  # embedded texts of passages whose terms are still to count

    def add(
        self, article: Article, passages: list[StoredPassage], vectors: np.ndarray, sentences: list[Sentence]
    ) -> None:
        from qa.chunk import embed_text

        self.articles.append(article)
        self.passages += passages
        self.sentences += sentences
        self.vectors.append(vectors.reshape(len(passages), -1) if len(passages) else vectors)
        self.texts += [embed_text(article.title, article.text[p.start : p.end]) for p in passages]


def write_segment(folder: Path, parts: list[Part], dimension: int) -> Path:
    """Write one segment from the parts (kept rows first, then new ones), fsynced, manifest last."""
    name = SEGMENT_PREFIX + stamp()
    temp = folder / (TEMP_PREFIX + name)
    temp.mkdir(parents=True)
    try:
        articles = [a for part in parts for a in part.articles]
        passages = [p for part in parts for p in part.passages]
        sentences = [s for part in parts for s in part.sentences]
        blocks = [v for part in parts for v in part.vectors if len(v)]
        vectors = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, dimension), np.float32)
        terms = [t for part in parts for t in part.terms]
        fresh = [text for part in parts for text in part.texts]
        if fresh:
            counted = TermCounts.from_terms([tokenize(text) for text in fresh])
            terms.append((counted, np.arange(len(fresh))))
        TermCounts.stack(terms).save(temp)
        np.save(temp / VECTORS, vectors)
        np.save(temp / MEANS, _article_means(articles, passages, vectors))
        if len(vectors) > FLAT_LIMIT:
            _write_graph(temp / GRAPH, vectors)
        _write_database(temp / DATABASE, articles, passages, sentences)
        manifest = {
            "segment": name,
            "dimension": dimension,
            "articles": len(articles),
            "passages": len(passages),
            "sentences": len(sentences),
            "faiss_index": "IndexHNSWFlat" if len(vectors) > FLAT_LIMIT else "IndexFlatIP",
            "files": file_checksums(temp),
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        fsync_tree(temp)
        os.rename(temp, folder / name)
        fsync_dir(folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return folder / name


def _article_means(articles: list[Article], passages: list[StoredPassage], vectors: np.ndarray) -> np.ndarray:
    number = {a.doc_id: i for i, a in enumerate(articles)}
    means = np.zeros((len(articles), vectors.shape[1]), dtype=np.float32)
    if len(passages):
        np.add.at(means, np.array([number[p.doc_id] for p in passages]), vectors)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return means / np.where(norms == 0, 1, norms)


def _write_graph(path: Path, vectors: np.ndarray) -> None:
    """An HNSW graph (inner product) over the vectors, for segments too large for a flat scan."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(vectors)
    faiss.write_index(index, str(path))


def _write_database(
    path: Path, articles: list[Article], passages: list[StoredPassage], sentences: list[Sentence]
) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a fresh file in a temporary folder: fsynced as a whole later
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    a.doc_id,
                    a.title,
                    a.text,
                    a.url,
                    a.publish_date,
                    json.dumps(a.authors),
                    a.source,
                    a.origin,
                    a.content_hash,
                )
                for i, a in enumerate(articles)
            ),
        )
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?)",
            ((i, p.passage_id, p.doc_id, p.start, p.end, p.embed_hash) for i, p in enumerate(passages)),
        )
        db.executemany("INSERT INTO sentences VALUES (?, ?, ?)", ((s.doc_id, s.start, s.end) for s in sentences))
        db.commit()
    finally:
        db.close()


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def check_files(path: Path, manifest: dict, digests: bool = True) -> None:
    """Every file the manifest lists is there with its size and (with `digests`) its SHA-256."""
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise ValueError(f"{name} has {file.stat().st_size} bytes, expected {expected['bytes']}")
        if digests:
            with open(file, "rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != expected["sha256"]:
                    raise ValueError(f"{name} does not match its checksum")


def file_checksums(folder: Path) -> dict[str, dict]:
    checksums = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.name != MANIFEST:
            with open(file, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            checksums[str(file.relative_to(folder))] = {"bytes": file.stat().st_size, "sha256": digest}
    return checksums


def fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_faiss(path: Path):
    """A FAISS index file (a layout-4 generation's vectors)."""
    import faiss

    return faiss.read_index(str(path))
