"""Index generations on disk (FAISS vectors, SQLite store, manifest): build, load, atomic switch."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from qa.chunk import ChunkSettings, chunk_article, embed_text
from qa.dedupe import find_duplicates
from qa.embed import Embedder
from qa.errors import BuildInProgress, IndexCorrupt, IndexNotFound, ModelMismatch, NothingIndexed, QAError
from qa.ingest import read_corpus
from qa.keyword import KeywordIndex
from qa.types import Article, Passage, Sentence, Skipped

STORE_VERSION = 4  # bump when the on-disk layout changes: forces a new generation, reusing vectors
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
DATABASE = "store.sqlite"
KEYWORD = "keyword"
LOCK = ".build.lock"
GENERATION_PREFIX = "gen-"
TEMP_PREFIX = ".tmp-"
KEEP_GENERATIONS = 2
# Exact (flat) search while its scan fits the answer's time budget: one question costs about 0.1 ms per 1,000
# passages on one core (20 ms at 200,000, 45 ms at 400,000), against 1 to 1.5 ms for HNSW at any of these sizes,
# whose recall@10 was 0.995 on the evaluation corpus's own vectors (benchmarks/faiss_crossover.py,
# docs/benchmarks.md). Above this, a flat scan alone would take half the 50 ms an answer may take.
FLAT_LIMIT = 200_000
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128

_SCHEMA = """
CREATE TABLE articles (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, url TEXT NOT NULL,
    publish_date TEXT, authors TEXT NOT NULL, source TEXT NOT NULL, origin TEXT NOT NULL,
    content_hash TEXT NOT NULL, duplicate_of TEXT);
CREATE TABLE passages (
    passage_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    embed_hash TEXT NOT NULL);
CREATE TABLE sentences (doc_id TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX sentences_by_doc ON sentences (doc_id, start);
CREATE INDEX passages_by_doc ON passages (doc_id);
"""


class BuildFailed(QAError):
    """The new generation could not be written (disk full, permissions); nothing of it is left behind."""

    def __init__(self, index_dir: str, error: Exception):
        if _disk_full(error):
            why = f"no space left on the device of {index_dir}: free some space, or build into another --index"
        else:
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
            why = f"cannot write the index in {index_dir}: {detail}"
        super().__init__(f"{why}; the previous generation stays in use")


def _disk_full(error: Exception) -> bool:
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
        words in str(error).lower() for words in ("no space left", "disk is full", "disk quota"))


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


@dataclass(frozen=True)
class StoredPassage:
    passage_id: int
    doc_id: str
    start: int
    end: int
    embed_hash: str


class Generation:
    """One complete, read-only index generation; safe to share between threads."""

    def __init__(self, path: Path, for_reuse: bool = False):
        """Load a generation; `for_reuse` loads only what a rebuild copies (works on older layouts)."""
        import faiss

        self.path = path
        self.name = path.name
        try:
            self.manifest = json.loads((path / MANIFEST).read_text())
            _check_files(path, self.manifest)
            self.vectors = faiss.read_index(str(path / VECTORS))
            if hasattr(self.vectors, "hnsw"):
                self.vectors.hnsw.efSearch = HNSW_EF_SEARCH
            self._db = sqlite3.connect(f"file:{path / DATABASE}?mode=ro", uri=True, check_same_thread=False)
            rows = self._db.execute("SELECT passage_id, doc_id, start, end, embed_hash FROM passages ORDER BY passage_id")
            self.passages = [StoredPassage(*row) for row in rows]
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, sqlite3.Error) as error:
            raise IndexCorrupt(str(path), str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        self.fallback_from: tuple[str, str] | None = None  # (generation, why) when CURRENT could not be loaded
        if self.vectors.ntotal != len(self.passages) or self.manifest.get("passages") != len(self.passages):
            raise IndexCorrupt(str(path), "vector and passage counts differ")
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._sentences: dict[str, list[Sentence]] = {}
        if for_reuse:
            return
        layout = self.manifest.get("store_version")
        if layout != STORE_VERSION:  # a build reuses its vectors, so the rebuild the message asks for is quick
            raise IndexCorrupt(str(path), f"written in index layout {layout}; this version reads layout {STORE_VERSION}")
        try:
            self._load_article_table()
        except (sqlite3.Error, ValueError) as error:
            raise IndexCorrupt(str(path), f"{DATABASE}: {error}") from None
        try:
            self.keyword = KeywordIndex.load(path / KEYWORD)
        except (OSError, ValueError, KeyError) as error:
            raise IndexCorrupt(str(path), f"keyword index: {error}") from None
        if self.keyword.passages != len(self.passages):
            raise IndexCorrupt(str(path), "keyword index and passage counts differ")

    def _load_article_table(self) -> None:
        """Per-article arrays that retrieval needs for every query: dates and duplicate groups."""
        from datetime import date

        rows = self._db.execute("SELECT doc_id, publish_date, duplicate_of, source FROM articles ORDER BY doc_id").fetchall()
        self.article_ids = [row[0] for row in rows]
        number = {doc_id: i for i, doc_id in enumerate(self.article_ids)}
        self.article_source = [row[3] for row in rows]
        self.article_day = np.array([date.fromisoformat(row[1]).toordinal() if row[1] else -1 for row in rows])
        self.article_group = np.array([number.get(row[2], i) if row[2] else i for i, row in enumerate(rows)])
        self.passage_article = np.array([number[p.doc_id] for p in self.passages], dtype=np.int64)

    @property
    def model_id(self) -> str:
        return self.manifest["model"]

    @property
    def dimension(self) -> int:
        return int(self.manifest["dimension"])

    def check_model(self, model_id: str, dimension: int) -> None:
        if (self.model_id, self.dimension) != (model_id, dimension):
            raise ModelMismatch(self.model_id, self.dimension, model_id, dimension)

    def search(self, query_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product search: (scores, passage ids) per query, best first; ids of -1 pad short lists."""
        k = max(1, min(k, self.vectors.ntotal))
        return self.vectors.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)

    def newest_date(self):
        from datetime import date

        known = self.article_day[self.article_day > 0]
        return date.fromordinal(int(known.max())) if known.size else None

    def article(self, doc_id: str) -> Article:
        cached = self._articles.get(doc_id)
        if cached is not None:
            return cached
        with self._lock:
            row = self._db.execute(
                "SELECT doc_id, title, text, url, publish_date, authors, source, origin, content_hash "
                "FROM articles WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
        if row is None:
            raise KeyError(doc_id)
        article = Article(*row[:5], tuple(json.loads(row[5])), *row[6:])
        if len(self._articles) < 4096:
            self._articles[doc_id] = article
        return article

    def sentences(self, doc_id: str) -> list[Sentence]:
        """The article's sentences in order (kept for the articles asked about most: the reader reads them for
        every retrieved passage)."""
        cached = self._sentences.get(doc_id)
        if cached is not None:
            return cached
        with self._lock:
            rows = self._db.execute(
                "SELECT start, end FROM sentences WHERE doc_id = ? ORDER BY start", (doc_id,)
            ).fetchall()
        found = [Sentence(doc_id, start, end) for start, end in rows]
        if len(self._sentences) < 4096:
            self._sentences[doc_id] = found
        return found

    def passage_text(self, passage_id: int) -> str:
        stored = self.passages[passage_id]
        return self.article(stored.doc_id).text[stored.start : stored.end]

    def doc_ids(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT doc_id FROM articles ORDER BY doc_id")]

    def iter_articles(self) -> Iterator[Article]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, title, text, url, publish_date, authors, source, origin, content_hash FROM articles"
            ).fetchall()
        for row in rows:
            yield Article(*row[:5], tuple(json.loads(row[5])), *row[6:])

    def close(self) -> None:
        self._db.close()


def current_generation_path(index_dir: str | Path) -> Path:
    index_dir = Path(index_dir)
    try:
        name = (index_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        raise IndexNotFound(str(index_dir)) from None
    return index_dir / name


def load_generation(
    index_dir: str | Path, model_id: str | None = None, dimension: int | None = None, fallback: bool = True
) -> Generation:
    """Load the generation CURRENT points to; with a model given, refuse one built under another.

    When CURRENT's generation is damaged, the newest older generation that loads is served instead
    (`fallback_from` then says what was wrong); when none loads, the error says how to rebuild.
    """
    path = current_generation_path(index_dir)
    try:
        if not path.is_dir():
            raise IndexCorrupt(str(path), "generation folder is missing")
        generation = Generation(path)
    except IndexCorrupt as damaged:
        if not fallback:
            raise
        generation = _older_generation(Path(index_dir), path.name)
        if generation is None:
            raise damaged from None
        generation.fallback_from = (path.name, str(damaged))
    if model_id is not None:
        generation.check_model(model_id, dimension if dimension is not None else generation.dimension)
    return generation


def _older_generation(index_dir: Path, current: str) -> Generation | None:
    older = sorted((p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(GENERATION_PREFIX)
                    and p.name < current), reverse=True)
    for path in older:
        try:
            return Generation(path)
        except IndexCorrupt:
            continue
    return None


def _check_files(path: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its size and SHA-256 (truncation, bit rot)."""
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ValueError(f"{name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise ValueError(f"{name} has {file.stat().st_size} bytes, expected {expected['bytes']}")
        with open(file, "rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != expected["sha256"]:
                raise ValueError(f"{name} does not match its checksum")


def _file_checksums(folder: Path) -> dict[str, dict]:
    checksums = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.name != MANIFEST:
            with open(file, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            checksums[str(file.relative_to(folder))] = {"bytes": file.stat().st_size, "sha256": digest}
    return checksums


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


def build_index(
    corpus: str | Path,
    index_dir: str | Path,
    embedder: Embedder,
    settings: ChunkSettings = ChunkSettings(),
    progress: bool = False,
) -> BuildReport:
    """Read the corpus, embed only what is new or changed, and switch CURRENT to a new generation."""
    started = time.perf_counter()
    index_dir = Path(index_dir)
    report = BuildReport(corpus=str(corpus), index_dir=str(index_dir))
    with build_lock(index_dir):
        _prune(index_dir)  # folders of killed builds go first: on a nearly full disk they hold the space
        ingested = read_corpus(corpus)
        report.files, report.skipped = ingested.files, ingested.skipped
        report.articles_read = len(ingested.articles)
        if not ingested.articles:
            raise NothingIndexed(str(corpus), report)
        previous = _load_previous(index_dir, embedder)
        fingerprint = corpus_fingerprint(ingested.articles, settings, embedder.model_id)
        old_hashes = _article_hashes(previous)
        _count_changes(report, ingested.articles, old_hashes)
        if previous is not None and previous.manifest.get("fingerprint") == fingerprint:
            report.up_to_date, report.generation = True, previous.name
            report.passages = len(previous.passages)
        else:
            report.generation = _write_generation(
                index_dir, ingested.articles, previous, old_hashes, embedder, settings, fingerprint, report, progress
            )
        if previous is not None:
            previous.close()
        _prune(index_dir)
    report.seconds = time.perf_counter() - started
    return report


def corpus_fingerprint(articles: list[Article], settings: ChunkSettings, model_id: str) -> str:
    digest = hashlib.sha256(json.dumps([STORE_VERSION, model_id, settings.as_dict()]).encode())
    for article in sorted(articles, key=lambda a: a.doc_id):
        digest.update(f"{article.doc_id}\0{article.content_hash}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _load_previous(index_dir: Path, embedder: Embedder) -> Generation | None:
    """The current generation, when it exists, loads and was built by this model (else no reuse)."""
    try:
        generation = Generation(current_generation_path(index_dir), for_reuse=True)
    except (IndexNotFound, IndexCorrupt):
        return None
    if (generation.model_id, generation.dimension) != (embedder.model_id, embedder.dimension):
        generation.close()
        return None
    return generation


def _article_hashes(previous: Generation | None) -> dict[str, str]:
    if previous is None:
        return {}
    with previous._lock:
        return dict(previous._db.execute("SELECT doc_id, content_hash FROM articles"))


def _count_changes(report: BuildReport, articles: list[Article], old_hashes: dict[str, str]) -> None:
    current = {a.doc_id for a in articles}
    for article in articles:
        old = old_hashes.get(article.doc_id)
        if old is None:
            report.new += 1
        elif old != article.content_hash:
            report.changed += 1
        else:
            report.unchanged += 1
    report.removed = len(set(old_hashes) - current)


def _write_generation(
    index_dir: Path,
    articles: list[Article],
    previous: Generation | None,
    old_hashes: dict[str, str],
    embedder: Embedder,
    settings: ChunkSettings,
    fingerprint: str,
    report: BuildReport,
    progress: bool,
) -> str:
    same_chunking = previous is not None and previous.manifest.get("chunking") == settings.as_dict()
    old_vectors = previous.vectors.reconstruct_n(0, previous.vectors.ntotal) if previous is not None else None
    old_by_hash = {p.embed_hash: p.passage_id for p in previous.passages} if previous is not None else {}
    old_by_doc: dict[str, list[StoredPassage]] = {}
    if previous is not None:
        for stored in previous.passages:
            old_by_doc.setdefault(stored.doc_id, []).append(stored)

    rows: list[tuple[str, int, int, str]] = []  # doc_id, start, end, embed_hash
    sentences: list[Sentence] = []
    sources: list[int] = []  # per passage: old passage id to copy the vector from, or -1
    to_embed: list[str] = []
    chunk_iter = articles
    if progress:
        from tqdm import tqdm

        chunk_iter = tqdm(articles, desc="chunking", unit="article")
    for article in chunk_iter:
        unchanged = same_chunking and old_hashes.get(article.doc_id) == article.content_hash
        if unchanged:
            for stored in old_by_doc.get(article.doc_id, []):
                rows.append((article.doc_id, stored.start, stored.end, stored.embed_hash))
                sources.append(stored.passage_id)
            sentences.extend(previous.sentences(article.doc_id))
            continue
        passages, article_sentences = chunk_article(article, embedder.count_tokens, settings)
        sentences.extend(article_sentences)
        for passage in passages:
            text = embed_text(article.title, passage.text)
            embed_hash = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
            rows.append((article.doc_id, passage.start, passage.end, embed_hash))
            source = old_by_hash.get(embed_hash, -1)
            sources.append(source)
            if source < 0:
                to_embed.append(text)

    embed_started = time.perf_counter()
    fresh = embedder.embed(to_embed, progress=progress)
    report.embed_seconds = time.perf_counter() - embed_started
    report.embedded, report.passages = len(to_embed), len(rows)
    report.reused_vectors = len(rows) - len(to_embed)

    vectors = np.zeros((len(rows), embedder.dimension), dtype=np.float32)
    fresh_i = 0
    for i, source in enumerate(sources):
        if source >= 0:
            vectors[i] = old_vectors[source]
        else:
            vectors[i] = fresh[fresh_i]
            fresh_i += 1

    name = GENERATION_PREFIX + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    temp = index_dir / (TEMP_PREFIX + name)
    try:
        _write_folder(temp, name, articles, rows, sentences, vectors, embedder, settings, fingerprint, report)
        os.rename(temp, index_dir / name)
        _fsync_dir(index_dir)
        _switch_current(index_dir, name)
    except (OSError, RuntimeError, sqlite3.Error) as error:  # faiss reports a failed write as RuntimeError
        shutil.rmtree(temp, ignore_errors=True)
        switched = (index_dir / CURRENT).exists() and current_generation_path(index_dir).name == name
        if not switched:
            shutil.rmtree(index_dir / name, ignore_errors=True)  # complete, but never switched to
        raise BuildFailed(str(index_dir), error) from error
    return name


def _write_folder(
    temp: Path,
    name: str,
    articles: list[Article],
    rows: list,
    sentences: list[Sentence],
    vectors: np.ndarray,
    embedder: Embedder,
    settings: ChunkSettings,
    fingerprint: str,
    report: BuildReport,
) -> None:
    """Write a complete generation into the temporary folder `temp`, fsynced, manifest last."""
    import faiss

    temp.mkdir(parents=True)
    index = make_vector_index(embedder.dimension, len(vectors))
    index.add(vectors)
    faiss.write_index(index, str(temp / VECTORS))
    by_id = {a.doc_id: a for a in articles}
    KeywordIndex.build([embed_text(by_id[d].title, by_id[d].text[a:b]) for d, a, b, _ in rows], temp / KEYWORD)
    article_number = {a.doc_id: i for i, a in enumerate(articles)}
    passage_article = np.array([article_number[row[0]] for row in rows], dtype=np.int64)
    duplicate_of = find_duplicates(articles, passage_article, vectors)
    report.duplicates = len(duplicate_of)
    _write_database(temp / DATABASE, articles, rows, sentences, duplicate_of)
    manifest = {
        "store_version": STORE_VERSION,
        "generation": name,
        "model": embedder.model_id,
        "dimension": embedder.dimension,
        "normalized": True,
        "metric": "inner_product",
        "faiss_index": type(index).__name__,
        "chunking": settings.as_dict(),
        "articles": len(articles),
        "passages": len(rows),
        "sentences": len(sentences),
        "duplicates": len(duplicate_of),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": str(Path(report.corpus).resolve()),
        "fingerprint": fingerprint,
        "versions": _library_versions(),
        "files": _file_checksums(temp),
    }
    (temp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for file in temp.rglob("*"):
        if file.is_file():
            _fsync_file(file)
    _fsync_dir(temp / KEYWORD)
    _fsync_dir(temp)


def make_vector_index(dimension: int, count: int):
    """Flat inner product up to FLAT_LIMIT vectors, an HNSW graph (same metric) above it."""
    import faiss

    if count <= FLAT_LIMIT:
        return faiss.IndexFlatIP(dimension)
    index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    return index


def _write_database(
    path: Path, articles: list[Article], rows: list, sentences: list[Sentence], duplicate_of: dict[str, str]
) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a fresh file in a temporary folder: fsynced as a whole later
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (a.doc_id, a.title, a.text, a.url, a.publish_date, json.dumps(a.authors), a.source, a.origin,
                 a.content_hash, duplicate_of.get(a.doc_id))
                for a in articles
            ),
        )
        db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?)", ((i, *row) for i, row in enumerate(rows)))
        db.executemany("INSERT INTO sentences VALUES (?, ?, ?)", ((s.doc_id, s.start, s.end) for s in sentences))
        db.commit()
    finally:
        db.close()


def _switch_current(index_dir: Path, name: str) -> None:
    """Point CURRENT at a complete generation with one atomic rename."""
    temp = index_dir / (CURRENT + ".tmp")
    with open(temp, "w") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, index_dir / CURRENT)
    _fsync_dir(index_dir)


def _prune(index_dir: Path) -> None:
    """Keep the newest generations (the current one always) and drop folders of killed builds."""
    current = current_generation_path(index_dir).name if (index_dir / CURRENT).exists() else None
    generations = sorted(p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(GENERATION_PREFIX))
    keep = {p.name for p in generations[-KEEP_GENERATIONS:]} | {current}
    for path in index_dir.iterdir():
        stale_temp = path.is_dir() and path.name.startswith(TEMP_PREFIX)
        old = path.is_dir() and path.name.startswith(GENERATION_PREFIX) and path.name not in keep
        if stale_temp or old:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("sentence-transformers", "faiss-cpu", "torch", "transformers", "sentencex", "bm25s"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
