"""The embedded search backend: FAISS vectors, term counts (BM25) and SQLite, in immutable segments on disk.

    index/
      CURRENT                   name of the live generation (switched by one atomic rename)
      gen-<time>/manifest.json  a generation: its segments, the articles each one no longer serves, checksums
      gen-<time>/sources.json   the corpus files as read (size, time, articles), for the next build
      segments/seg-<time>/      articles, passages and sentences (SQLite), vectors.npy, terms, article means,
                                and an HNSW graph when the segment is large

A build writes one new segment with the new and changed articles and a new generation naming it; unchanged
articles stay in the segments they are in, so a build costs what changed. When there are too many segments,
or too much of them is replaced, the build merges everything live into one segment (vectors and terms are
copied, never recomputed). Passage ids are stable (qa.backend.passage_id). The segment format, and the only
import of faiss, are in qa/segments.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path

import numpy as np

from qa.backend import STORE_VERSION, ArticleFacts, BuiltWith, DayRange, SearchIndex, StoredPassage, build_lock
from qa.errors import IndexCorrupt, IndexNotFound, QAError
from qa.keyword import BM25
from qa.segments import (
    _ARTICLE_COLUMNS,
    DATABASE,
    MANIFEST,
    SEGMENT_PREFIX,
    TEMP_PREFIX,
    Part,
    Segment,
    article_from_row,
    check_files,
    file_checksums,
    fsync_dir,
    fsync_tree,
    read_faiss,
    stamp,
    write_segment,
)
from qa.types import Article, Sentence, SourceFile

CURRENT = "CURRENT"
SOURCES = "sources.json"
SEGMENTS = "segments"
GENERATION_PREFIX = "gen-"
KEEP_GENERATIONS = 2
MAX_SEGMENTS = 6  # more, and a build merges them into one (each question searches every segment)
MAX_DEAD_SHARE = 0.3  # of the passages in segments, replaced or deleted since: above it, a build merges


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
        words in str(error).lower() for words in ("no space left", "disk is full", "disk quota")
    )


class Generation(BuiltWith):
    """One complete, read-only generation (qa.backend.SearchIndex); safe to share between threads."""

    def __init__(self, path: Path, for_reuse: bool = False):
        """Load a generation; `for_reuse` reads only what a build copies and checks file sizes, not digests."""
        self.path = path
        self.name = path.name
        self.fallback_from: tuple[str, str] | None = None  # (generation, why) when CURRENT could not be loaded
        self._articles: dict[str, Article] = {}
        self._sentences: dict[str, list[Sentence]] = {}
        self.segments: list[Segment] = []
        try:
            self.manifest = json.loads((path / MANIFEST).read_text())
            layout = self.manifest.get("store_version")
            if layout != STORE_VERSION and not for_reuse:  # a rebuild reuses its vectors: quick, as the message says
                raise _OlderLayout(layout)
            check_files(path, self.manifest, digests=not for_reuse)
            segments_dir = path.parent / SEGMENTS
            dead = self.manifest["segments"]
            self.segments = [Segment(segments_dir / entry["name"], check=not for_reuse) for entry in dead]
            self.dead = [set(entry["dead"]) for entry in dead]
            self._index_articles()
            if not for_reuse:
                self._load_search()
        except _OlderLayout as older:
            self.close()
            raise IndexCorrupt(
                str(path), f"written in index layout {older.layout}; this version reads layout {STORE_VERSION}"
            ) from None
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, sqlite3.Error) as error:
            self.close()
            raise IndexCorrupt(str(path), str(error).splitlines()[0] if str(error) else type(error).__name__) from None
        if not for_reuse and self.manifest.get("passages") != self.passage_count():
            self.close()
            raise IndexCorrupt(str(path), "vector and passage counts differ")

    def _index_articles(self) -> None:
        """Where each live article is, and the facts ranking needs of it."""
        self._home: dict[str, int] = {}  # doc_id -> segment holding its live version
        for number, (segment, dead) in enumerate(zip(self.segments, self.dead, strict=True)):
            for doc_id in segment.articles:
                if doc_id not in dead:
                    self._home[doc_id] = number
        duplicate_of = (
            json.loads((self.path / "duplicates.json").read_text()) if (self.path / "duplicates.json").exists() else {}
        )
        self._duplicate_of: dict[str, str] = duplicate_of.get("duplicate_of", {})
        self._pairs = [tuple(pair) for pair in duplicate_of.get("pairs", [])]
        self._lock = threading.Lock()

    @cached_property
    def _facts(self) -> dict[str, ArticleFacts]:
        """Each live article's day and story (made when first asked: a build adding articles needs few)."""
        facts = {}
        for doc_id, number in self._home.items():
            segment = self.segments[number]
            published = segment.dates[segment.article_rows[doc_id]]
            day = date.fromisoformat(published).toordinal() if published else -1
            facts[doc_id] = ArticleFacts(day, self._duplicate_of.get(doc_id, doc_id))
        return facts

    @cached_property
    def live(self) -> list[np.ndarray]:
        """Per segment: which of its passages this generation serves."""
        return [
            np.array([p.doc_id not in dead for p in segment.passages], dtype=bool)
            for segment, dead in zip(self.segments, self.dead, strict=True)
        ]

    @cached_property
    def _where(self) -> dict[int, tuple[int, int]]:
        """Each live passage id's segment and row."""
        where = {}
        for number, (segment, live) in enumerate(zip(self.segments, self.live, strict=True)):
            for row in np.flatnonzero(live).tolist():
                where[int(segment.ids[row])] = (number, row)
        return where

    @cached_property
    def _day_of_row(self) -> list[np.ndarray]:
        return [
            np.array(
                [
                    self._facts[p.doc_id].day if live else -1
                    for p, live in zip(segment.passages, mask.tolist(), strict=True)
                ]
            )
            for segment, mask in zip(self.segments, self.live, strict=True)
        ]

    def _load_search(self) -> None:
        for segment in self.segments:  # loaded now: a damaged file shows at start-up, not at a question, and
            segment.search_index  # noqa: B018 (a pruned segment's files stay readable while they are open)
            segment.vectors  # noqa: B018
        self.bm25 = BM25([(segment.terms, live) for segment, live in zip(self.segments, self.live, strict=True)])

    def passage_count(self) -> int:
        return len(self._where)

    # -- search
    def _allowed(self, number: int, days: DayRange | None) -> np.ndarray | None:
        live = self.live[number]
        if days is None:
            return None if live.all() else live
        day = self._day_of_row[number]
        return live & (day >= days[0]) & (day <= days[1])

    def dense_search(self, vectors: np.ndarray, k: int, days: DayRange | None = None) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        k = max(1, k)
        all_scores, all_ids = [], []
        for number, segment in enumerate(self.segments):
            allowed = self._allowed(number, days)
            if allowed is not None and not allowed.any():
                continue
            scores, rows = segment.search(vectors, k, allowed)
            ids = np.where(rows >= 0, segment.ids[np.maximum(rows, 0)], -1)
            all_scores.append(np.where(rows >= 0, scores, -np.inf))
            all_ids.append(ids)
        if not all_scores:
            return np.full((len(vectors), 1), -np.inf, np.float32), np.full((len(vectors), 1), -1, np.int64)
        scores, ids = np.concatenate(all_scores, axis=1), np.concatenate(all_ids, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1)

    def keyword_search(
        self, terms: Sequence[str], k: int, days: DayRange | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        found_scores, found_ids = [], []
        for number, segment in enumerate(self.segments):
            scores = self.bm25.scores(terms, number)
            allowed = self._allowed(number, days)
            if allowed is not None:
                scores = np.where(allowed, scores, 0.0)
            rows = np.flatnonzero(scores > 0)
            if len(rows) > k:
                rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
            found_scores.append(scores[rows])
            found_ids.append(segment.ids[rows])
        scores = np.concatenate(found_scores) if found_scores else np.zeros(0, np.float32)
        ids = np.concatenate(found_ids) if found_ids else np.zeros(0, np.int64)
        order = np.lexsort((ids, -scores))[:k]  # ties by id: the same order in every run and backend
        return scores[order], ids[order]

    def keyword_scores(self, terms: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        result = np.zeros(len(ids), dtype=np.float32)
        places = [self._where.get(int(i)) for i in ids]
        for number in {place[0] for place in places if place is not None}:
            scores = self.bm25.scores(terms, number)
            for position, place in enumerate(places):
                if place is not None and place[0] == number:
                    result[position] = scores[place[1]]
        return result

    def idf(self, term: str) -> float:
        return self.bm25.idf(term)

    # -- passages and articles
    def passages(self, ids: Sequence[int]) -> list[StoredPassage]:
        places = [self._where[int(i)] for i in ids]
        return [self.segments[number].passages[row] for number, row in places]

    def stored_passages(self) -> Iterator[StoredPassage]:
        """Every live passage, segment by segment."""
        for segment, live in zip(self.segments, self.live, strict=True):
            yield from (p for p, alive in zip(segment.passages, live.tolist(), strict=True) if alive)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        rows = [self._where[int(i)] for i in ids]
        out = np.zeros((len(rows), self.dimension), dtype=np.float32)
        for position, (number, row) in enumerate(rows):
            out[position] = self.segments[number].vectors[row]
        return out

    def facts(self, doc_id: str) -> ArticleFacts:
        return self._facts[doc_id]

    def article(self, doc_id: str) -> Article:
        cached = self._articles.get(doc_id)
        if cached is not None:
            return cached
        number = self._home.get(doc_id)
        if number is None:
            raise KeyError(doc_id)
        segment = self.segments[number]
        with segment.lock:
            row = segment.db.execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(doc_id)
        article = article_from_row(row)
        if len(self._articles) < 4096:
            self._articles[doc_id] = article
        return article

    def sentences(self, doc_id: str) -> list[Sentence]:
        """The article's sentences in order (kept for the articles asked about most: the reader reads them for
        every retrieved passage)."""
        cached = self._sentences.get(doc_id)
        if cached is not None:
            return cached
        number = self._home.get(doc_id)
        if number is None:
            return []
        segment = self.segments[number]
        with segment.lock:
            rows = segment.db.execute(
                "SELECT start, end FROM sentences WHERE doc_id = ? ORDER BY start", (doc_id,)
            ).fetchall()
        found = [Sentence(doc_id, start, end) for start, end in rows]
        if len(self._sentences) < 4096:
            self._sentences[doc_id] = found
        return found

    def passage_text(self, passage_id: int) -> str:
        stored = self.passages([passage_id])[0]
        return self.article(stored.doc_id).text[stored.start : stored.end]

    def doc_ids(self) -> list[str]:
        return sorted(self._home)

    def iter_articles(self) -> Iterator[Article]:
        for number, segment in enumerate(self.segments):
            with segment.lock:
                rows = segment.db.execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles ORDER BY row").fetchall()
            for row in rows:
                if self._home.get(row[0]) == number:
                    yield article_from_row(row)

    def newest_date(self) -> date | None:
        days = [facts.day for facts in self._facts.values() if facts.day > 0]
        return date.fromordinal(max(days)) if days else None

    # -- what a build reuses
    def article_hashes(self) -> dict[str, str]:
        return {doc_id: self.segments[number].hashes[doc_id] for doc_id, number in self._home.items()}

    def sources(self) -> dict[str, SourceFile]:
        """The corpus files as last read for this generation: by the build that wrote it, or by a later build
        that found nothing to change (EmbeddedBackend.save_sources)."""
        try:
            later = json.loads((self.path.parent / SOURCES).read_text())
            saved = later["files"] if later.get("generation") == self.name else None
        except (OSError, ValueError, AttributeError, KeyError):
            saved = None
        try:
            saved = saved if saved is not None else json.loads((self.path / SOURCES).read_text())
            return {path: SourceFile.from_dict(entry) for path, entry in saved.items()}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            return {}  # then every file is read again

    def article_passages(self, doc_id: str) -> list[StoredPassage]:
        number = self._home.get(doc_id)
        if number is None:
            return []
        return self.segments[number].passages_of([doc_id])

    def vectors_by_hash(self, embed_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(embed_hashes))
        found: dict[str, np.ndarray] = {}
        for segment in self.segments:
            rows = []
            with segment.lock:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += segment.db.execute(
                        f"SELECT embed_hash, row FROM passages WHERE embed_hash IN ({marks})", chunk
                    ).fetchall()
            for embed_hash, row in rows:
                found.setdefault(embed_hash, np.array(segment.vectors[row], dtype=np.float32))
        return found

    def article_means(self) -> tuple[list[str], np.ndarray]:
        """Each live article's mean passage vector (normalised): where duplicate detection looks for copies."""
        doc_ids, blocks = [], []
        for number, segment in enumerate(self.segments):
            rows = [i for i, doc_id in enumerate(segment.articles) if self._home.get(doc_id) == number]
            doc_ids += [segment.articles[i] for i in rows]
            blocks.append(segment.means()[rows])
        matrix = np.concatenate(blocks) if blocks else np.zeros((0, self.dimension), np.float32)
        return doc_ids, matrix

    def duplicate_pairs(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def close(self) -> None:
        for segment in self.segments:
            segment.close()


class _OlderLayout(Exception):
    def __init__(self, layout: object):
        self.layout = layout


class LegacyGeneration(BuiltWith):
    """A generation of layout 4 (one FAISS file and one SQLite store): read only for its vectors, so the
    first build of this version embeds nothing it had embedded."""

    def __init__(self, path: Path):
        self.path, self.name = path, path.name
        self.manifest = json.loads((path / MANIFEST).read_text())
        self.fallback_from = None
        self._vectors = read_faiss(path / "vectors.faiss")
        self._db = sqlite3.connect(f"file:{path / DATABASE}?mode=ro", uri=True)
        self._hashes = dict(self._db.execute("SELECT doc_id, content_hash FROM articles"))

    def article_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def sources(self) -> dict[str, SourceFile]:
        return {}

    def vectors_by_hash(self, embed_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        rows = dict(self._db.execute("SELECT embed_hash, passage_id FROM passages"))
        return {h: self._vectors.reconstruct(int(rows[h])) for h in set(embed_hashes) if h in rows}

    def close(self) -> None:
        self._db.close()


class EmbeddedBackend:
    """Generations in a folder on this machine (qa.backend.Backend)."""

    def __init__(self, index_dir: str | Path):
        self.index_dir = Path(index_dir)
        self.location = str(index_dir)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One build at a time; folders of killed builds go first (on a nearly full disk they hold the space),
        and generations beyond the newest two when it ends."""
        with build_lock(self.index_dir):
            _prune(self.index_dir)
            yield
            _prune(self.index_dir)

    def live_name(self) -> str:
        return current_generation_path(self.index_dir).name

    def save_sources(self, generation: str, sources: dict[str, SourceFile]) -> None:
        """Remember files read again by a build that changed nothing (touched, copied), so the next one skips
        them; beside the generations, as it changes no generation."""
        temp = self.index_dir / (SOURCES + ".tmp")
        files = {path: source.__dict__ for path, source in sources.items()}
        temp.write_text(json.dumps({"generation": generation, "files": files}))
        os.replace(temp, self.index_dir / SOURCES)

    def open(self, model_id: str | None = None, dimension: int | None = None, fallback: bool = True) -> Generation:
        return load_generation(self.index_dir, model_id, dimension, fallback)

    def open_for_reuse(self) -> Generation | LegacyGeneration | None:
        try:
            path = current_generation_path(self.index_dir)
            return Generation(path, for_reuse=True)
        except IndexNotFound:
            return None
        except IndexCorrupt:
            try:
                return LegacyGeneration(path)
            except Exception:  # noqa: BLE001 (anything unreadable is simply not reused)
                return None

    def writer(self, previous: SearchIndex | None, dimension: int) -> SegmentWriter:
        return SegmentWriter(self.index_dir, previous if isinstance(previous, Generation) else None, dimension)


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
        older = _older_generation(Path(index_dir), path.name)
        if older is None:
            raise damaged from None
        generation = older
        generation.fallback_from = (path.name, str(damaged))
    if model_id is not None:
        generation.check_model(model_id, dimension if dimension is not None else generation.dimension)
    return generation


def _older_generation(index_dir: Path, current: str) -> Generation | None:
    older = sorted(
        (p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(GENERATION_PREFIX) and p.name < current),
        reverse=True,
    )
    for path in older:
        try:
            return Generation(path)
        except IndexCorrupt:
            continue
    return None


class SegmentWriter:
    """A new generation: the previous one's segments (minus what is replaced) plus one new segment."""

    def __init__(self, index_dir: Path, previous: Generation | None, dimension: int):
        self.index_dir = index_dir
        self.previous = previous
        self.dimension = dimension
        self.dead = [set(d) for d in previous.dead] if previous is not None else []
        self.homes = dict(previous._home) if previous is not None else {}
        self.articles: dict[str, tuple[Article, list[StoredPassage], np.ndarray, list[Sentence]]] = {}
        self.written: dict[str, int] = {}  # articles, passages and sentences of the committed generation

    def put_article(
        self, article: Article, passages: Sequence[StoredPassage], vectors: np.ndarray, sentences: Sequence[Sentence]
    ) -> None:
        self.delete_article(article.doc_id)
        self.articles[article.doc_id] = (article, list(passages), np.asarray(vectors, np.float32), list(sentences))

    def delete_article(self, doc_id: str) -> None:
        self.articles.pop(doc_id, None)
        number = self.homes.pop(doc_id, None)
        if number is not None:
            self.dead[number].add(doc_id)

    def _needs_merge(self) -> bool:
        if self.previous is None:
            return False
        segments = self.previous.segments
        rows = sum(s.manifest["passages"] for s in segments)
        dead = sum(len(s.passages_of(sorted(d))) for s, d in zip(segments, self.dead, strict=True))
        alive = sum(1 for s, d in zip(segments, self.dead, strict=True) if any(a not in d for a in s.articles))
        return alive + bool(self.articles) > MAX_SEGMENTS or (rows and dead / rows > MAX_DEAD_SHARE)

    def commit(
        self,
        manifest: dict,
        duplicate_of: dict[str, str],
        duplicate_pairs: Sequence[tuple[str, str]],
        sources: dict[str, SourceFile],
    ) -> str:
        name = GENERATION_PREFIX + stamp()
        temp = self.index_dir / (TEMP_PREFIX + name)
        written: list[Path] = []
        try:
            entries = []
            if self.previous is not None and not self._needs_merge():
                for segment, dead in zip(self.previous.segments, self.dead, strict=True):
                    if any(doc_id not in dead for doc_id in segment.articles):
                        entries.append({"name": segment.name, "dead": sorted(dead & set(segment.articles))})
                parts = [self._new_parts()] if self.articles else []
            else:
                parts = (
                    [self._kept_parts(self.previous), self._new_parts()]
                    if self.previous is not None
                    else [self._new_parts()]
                )
            if parts:
                folder = write_segment(self.index_dir / SEGMENTS, parts, self.dimension)
                written.append(folder)
                entries.append({"name": folder.name, "dead": []})
            temp.mkdir(parents=True)
            (temp / "duplicates.json").write_text(
                json.dumps({"duplicate_of": duplicate_of, "pairs": [list(pair) for pair in duplicate_pairs]})
            )
            (temp / SOURCES).write_text(json.dumps({path: source.__dict__ for path, source in sources.items()}))
            counts = self.written = _segment_counts(self.index_dir / SEGMENTS, entries)
            full = {
                **manifest,
                "store_version": STORE_VERSION,
                "generation": name,
                "segments": entries,
                **counts,
                "faiss_index": _largest_index(self.index_dir / SEGMENTS, entries),
                "duplicates": len(duplicate_of),
                "files": file_checksums(temp),
            }
            (temp / MANIFEST).write_text(json.dumps(full, indent=2))
            fsync_tree(temp)
            os.rename(temp, self.index_dir / name)
            fsync_dir(self.index_dir)
            _switch_current(self.index_dir, name)
        except (OSError, RuntimeError, sqlite3.Error) as error:  # faiss reports a failed write as RuntimeError
            shutil.rmtree(temp, ignore_errors=True)
            switched = (self.index_dir / CURRENT).exists() and current_generation_path(self.index_dir).name == name
            if not switched:
                shutil.rmtree(self.index_dir / name, ignore_errors=True)  # complete, but never switched to
                for folder in written:
                    shutil.rmtree(folder, ignore_errors=True)
            raise BuildFailed(str(self.index_dir), error) from error
        return name

    def _new_parts(self) -> Part:
        part = Part()
        for article, passages, vectors, sentences in self.articles.values():
            part.add(article, passages, vectors, sentences)
        return part

    def _kept_parts(self, previous: Generation) -> Part:
        """Everything live of the previous generation, copied (vectors and terms included) for a merge."""
        part = Part()
        for segment, dead in zip(previous.segments, self.dead, strict=True):
            rows = np.array([p.doc_id not in dead for p in segment.passages], dtype=bool)
            with segment.lock:
                articles = [
                    article_from_row(row)
                    for row in segment.db.execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles ORDER BY row")
                    if row[0] not in dead
                ]
                sentences = [
                    Sentence(*row)
                    for row in segment.db.execute("SELECT doc_id, start, end FROM sentences ORDER BY doc_id, start")
                    if row[0] not in dead
                ]
            part.articles += articles
            part.sentences += sentences
            part.passages += [p for p, keep in zip(segment.passages, rows.tolist(), strict=True) if keep]
            part.vectors.append(np.asarray(segment.vectors[rows], dtype=np.float32))
            part.terms.append((segment.terms, np.flatnonzero(rows)))
        return part


def _largest_index(folder: Path, entries: list[dict]) -> str:
    """The FAISS index type of the generation's largest segment (IndexFlatIP or IndexHNSWFlat)."""
    manifests = [json.loads((folder / entry["name"] / MANIFEST).read_text()) for entry in entries]
    return max(manifests, key=lambda m: m["passages"])["faiss_index"] if manifests else "IndexFlatIP"


def _segment_counts(folder: Path, entries: list[dict]) -> dict[str, int]:
    """Live articles, passages and sentences of a generation, from its segments' databases."""
    totals = {"articles": 0, "passages": 0, "sentences": 0}
    for entry in entries:
        dead = entry["dead"]
        db = sqlite3.connect(f"file:{folder / entry['name'] / DATABASE}?mode=ro", uri=True)
        try:
            marks = ",".join("?" * len(dead))
            where = f" WHERE doc_id NOT IN ({marks})" if dead else ""
            for table in totals:
                totals[table] += db.execute(f"SELECT count(*) FROM {table}{where}", dead).fetchone()[0]
        finally:
            db.close()
    return totals


def _switch_current(index_dir: Path, name: str) -> None:
    """Point CURRENT at a complete generation with one atomic rename."""
    temp = index_dir / (CURRENT + ".tmp")
    with open(temp, "w") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, index_dir / CURRENT)
    fsync_dir(index_dir)


def _prune(index_dir: Path) -> None:
    """Keep the newest generations (the current one always) and the segments they name; drop folders of
    killed builds."""
    index_dir.mkdir(parents=True, exist_ok=True)
    current = current_generation_path(index_dir).name if (index_dir / CURRENT).exists() else None
    generations = sorted(p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith(GENERATION_PREFIX))
    keep = {p.name for p in generations[-KEEP_GENERATIONS:]}
    if current is not None:
        keep.add(current)
    for path in index_dir.iterdir():
        stale_temp = path.is_dir() and path.name.startswith(TEMP_PREFIX)
        old = path.is_dir() and path.name.startswith(GENERATION_PREFIX) and path.name not in keep
        if stale_temp or old:
            shutil.rmtree(path, ignore_errors=True)
    segments = index_dir / SEGMENTS
    if not segments.is_dir():
        return
    named: set[str] = set()
    for name in keep:
        try:
            named |= {entry["name"] for entry in json.loads((index_dir / name / MANIFEST).read_text())["segments"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for path in segments.iterdir():
        if path.name.startswith(TEMP_PREFIX) or (path.name.startswith(SEGMENT_PREFIX) and path.name not in named):
            shutil.rmtree(path, ignore_errors=True)
