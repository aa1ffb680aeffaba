"""The Qdrant search backend: generations as collections behind one alias, searched in the engine.

    <prefix>                      alias: the live generation's passage collection, switched in one call
    <prefix>-gen-<time>           passages: "dense" vector (cosine), "keyword" sparse vector (IDF modifier), payload
                                  doc_id, start, end, embed_hash, title, source, day, url, text, terms
    <prefix>-gen-<time>-articles  articles (text, metadata, sentence offsets, mean passage vector) and the build's
                                  tables (file table, copies of stories)
    <prefix>-gen-<time>-terms     keyword terms by id: how many passages hold each (the reader's idf)

A build writes the three collections of a new generation, copying the live one's unchanged points with their
vectors (scroll + upsert: nothing is embedded again), marks it complete in the collection's metadata (which also
holds the manifest) and only then moves the alias. The previous generation stays for rollback; older ones go.

Keyword vectors: a term's id is 32 bits of a hash of the qa.keyword term, its value BM25's saturated term
frequency tf / (tf + k1 (1 - b + b len / mean len)), and the engine multiplies by its IDF, ln(1 + (N - df + 0.5) /
(df + 0.5)), as qa.keyword does; a question's value for a term is how often it asks it. So the engine's sparse
score is the embedded backend's BM25. The mean length is the generation's own: when a build changes it, the
copied points' values are re-saturated (tf is recovered from the value and the passage's `terms` count).

Everything an app process needs is in the engine: another machine needs only the URL. This is the only module
that imports qdrant_client.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa.backend import (
    STORE_VERSION,
    ArticleFacts,
    BuiltWith,
    DayRange,
    FusedHits,
    SearchIndex,
    StoredPassage,
    build_lock,
)
from qa.chunk import embed_text
from qa.errors import IndexCorrupt, IndexNotFound, QAError
from qa.keyword import EMPTY, K1, B, bm25_idf, reader_idf, tokenize
from qa.types import Article, Sentence, SourceFile

DEFAULT_PREFIX = "newsqa"
GENERATION_PREFIX = "gen-"
ARTICLES, TERMS = "-articles", "-terms"
DENSE, KEYWORD, MEAN = "dense", "keyword", "mean"
PAGE = 256  # points per scroll page and per upsert
TABLE_PART = 500_000  # characters of a table's JSON per point
PASSAGE_FIELDS = ["doc_id", "start", "end", "embed_hash"]
ARTICLE_POINT = 1 << 61  # article point ids are above every term id (< 2**32) and below 2**63
_PREFIX = re.compile(r"[A-Za-z0-9_]+")
_CACHE = 100_000  # passages remembered from search results, per generation


class QdrantUnavailable(QAError):
    def __init__(self, where: str, error: Exception):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"cannot use the Qdrant index at {where}: {detail}")


class QdrantBuildFailed(QAError):
    def __init__(self, where: str, error: Exception):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"cannot write the Qdrant index at {where}: {detail}; the previous generation stays in use")


def _models():
    from qdrant_client import models

    return models


def term_id(term: str) -> int:
    """A keyword term's sparse index: 32 bits of a stable hash (Qdrant's sparse indices are unsigned 32-bit)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big")


def article_point_id(doc_id: str) -> int:
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return ARTICLE_POINT | (int.from_bytes(digest, "big") >> 4)


def _table_point_id(name: str, part: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"newsqa-table/{name}/{part}"))


def _length_norm(length: float | np.ndarray, mean_length: float):
    return K1 * (1 - B + B * length / mean_length)


def passage_terms(terms: Sequence[str]) -> list[str]:
    """The terms a passage is counted by (one placeholder when it has none, as qa.keyword counts it)."""
    return list(terms) or [EMPTY]


def keyword_vector(terms: Sequence[str], mean_length: float) -> tuple[list[int], list[float]]:
    """A passage's sparse vector: BM25-saturated term frequencies by term id (the engine applies the IDF)."""
    counts = Counter(term_id(t) for t in terms)
    norm = _length_norm(len(terms), mean_length)
    indices = sorted(counts)
    return indices, [counts[i] / (counts[i] + norm) for i in indices]


def query_vector(terms: Sequence[str]):
    """A question's sparse vector: each term id with how often the question holds it."""
    counts = Counter(term_id(t) for t in terms)
    indices = sorted(counts)
    return _models().SparseVector(indices=indices, values=[float(counts[i]) for i in indices])


def _resaturate(values: Sequence[float], length: int, old_mean: float, new_mean: float) -> list[float]:
    """Values saturated with another mean length: tf is recovered exactly (it is a whole number)."""
    saturated = np.asarray(values, dtype=np.float64)
    tf = np.rint(saturated * _length_norm(length, old_mean) / (1 - saturated))
    return (tf / (tf + _length_norm(length, new_mean))).tolist()


def _day(published: str | None) -> int:
    return date.fromisoformat(published).toordinal() if published else -1


def _day_filter(days: DayRange | None):
    if days is None:
        return None
    models = _models()
    return models.Filter(must=[models.FieldCondition(key="day", range=models.Range(gte=days[0], lte=days[1]))])


def _match(key: str, values: Sequence) -> object:
    models = _models()
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))])


def _scroll(client, collection: str, scroll_filter=None, with_payload=True, with_vectors=False) -> Iterator:
    offset = None
    while True:
        points, offset = client.scroll(
            collection,
            scroll_filter=scroll_filter,
            limit=PAGE,
            offset=offset,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        yield from points
        if offset is None:
            return


def _read_table(client, collection: str, name: str) -> Any:
    parts, part = [], 0
    while True:
        found = client.retrieve(collection, [_table_point_id(name, part)], with_payload=True)
        if not found:
            break
        parts.append(found[0].payload["data"])
        if part + 1 >= found[0].payload["parts"]:
            break
        part += 1
    return json.loads("".join(parts)) if parts else None


def _write_table(client, collection: str, name: str, value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    chunks = [text[i : i + TABLE_PART] for i in range(0, len(text), TABLE_PART)] or [""]
    models = _models()
    for part, chunk in enumerate(chunks):
        client.upsert(
            collection,
            [
                models.PointStruct(
                    id=_table_point_id(name, part),
                    vector={},
                    payload={"kind": "table", "name": name, "part": part, "parts": len(chunks), "data": chunk},
                )
            ],
        )


def _write_sources(client, collection: str, sources: dict[str, SourceFile]) -> None:
    _write_table(client, collection, "sources", {path: source.__dict__ for path, source in sources.items()})


def _article(payload: dict) -> Article:
    return Article(
        payload["doc_id"],
        payload["title"],
        payload["text"],
        payload["url"],
        payload["publish_date"],
        tuple(payload["authors"]),
        payload["source"],
        payload["origin"],
        payload["content_hash"],
    )


class QdrantGeneration(BuiltWith):
    """One complete generation in Qdrant (qa.backend.SearchIndex, with hybrid search); safe to share between
    threads. Article facts (day, story, content hash) are held in memory; passages, texts and vectors are fetched
    from the engine as questions need them."""

    def __init__(self, client, collection: str):
        self.client = client
        self.collection = collection
        self.articles_collection = collection + ARTICLES
        self.terms_collection = collection + TERMS
        self.fallback_from: tuple[str, str] | None = None
        metadata = client.get_collection(collection).config.metadata or {}
        if not metadata.get("complete") or "manifest" not in metadata:
            raise IndexCorrupt(collection, "its build did not finish")
        self.manifest: dict = metadata["manifest"]
        self.name: str = self.manifest["generation"]
        self._facts: dict[str, ArticleFacts] = {}
        self._hashes: dict[str, str] = {}
        fields = ["kind", "doc_id", "day", "group", "content_hash"]
        for point in _scroll(client, self.articles_collection, with_payload=fields):  # a few table points besides
            payload = point.payload
            if payload.get("kind") != "article":
                continue
            self._facts[payload["doc_id"]] = ArticleFacts(payload["day"], payload["group"])
            self._hashes[payload["doc_id"]] = payload["content_hash"]
        self._passages: dict[int, StoredPassage] = {}
        self._articles: dict[str, Article] = {}
        self._sentences: dict[str, list[Sentence]] = {}
        self._df: dict[int, int] = {}

    def passage_count(self) -> int:
        return int(self.manifest["passages"])

    # -- search
    def _remember(self, points: Iterable) -> dict[int, StoredPassage]:
        """The points' passages, kept (a bounded cache: questions ask for what their search returned)."""
        if len(self._passages) > _CACHE:
            self._passages = {}
        found = {}
        for point in points:
            p = point.payload
            found[int(point.id)] = StoredPassage(int(point.id), p["doc_id"], p["start"], p["end"], p["embed_hash"])
        self._passages.update(found)
        return found

    def dense_search(self, vectors: np.ndarray, k: int, days: DayRange | None = None) -> tuple[np.ndarray, np.ndarray]:
        models = _models()
        k = max(1, k)
        requests = [
            models.QueryRequest(
                query=vector.tolist(), using=DENSE, limit=k, filter=_day_filter(days), with_payload=PASSAGE_FIELDS
            )
            for vector in np.asarray(vectors, dtype=np.float32)
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        scores = np.full((len(requests), k), -np.inf, dtype=np.float32)
        ids = np.full((len(requests), k), -1, dtype=np.int64)
        for row, response in enumerate(responses):
            self._remember(response.points)
            for column, point in enumerate(response.points[:k]):
                scores[row, column], ids[row, column] = point.score, int(point.id)
        return scores, ids

    def keyword_search(
        self, terms: Sequence[str], k: int, days: DayRange | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        query = query_vector(terms)
        if not query.indices:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        points = self.client.query_points(
            self.collection,
            query=query,
            using=KEYWORD,
            limit=max(1, k),
            query_filter=_day_filter(days),
            with_payload=PASSAGE_FIELDS,
        ).points
        self._remember(points)
        points = sorted(points, key=lambda p: (-p.score, int(p.id)))  # ties by id, as the embedded backend
        return (
            np.array([p.score for p in points], dtype=np.float32),
            np.array([int(p.id) for p in points], dtype=np.int64),
        )

    def hybrid_search(
        self, vectors: np.ndarray, terms: Sequence[Sequence[str]], k: int, rrf_k: int, days: DayRange | None = None
    ) -> list[FusedHits]:
        """Dense and keyword lists (k each) fused by reciprocal rank in the engine, one query_points request per
        question (sent as one batch). Qdrant's RRF scores 1 / (k + position) with positions from 0, so our
        1 / (rrf_k + rank) with ranks from 1 is its k = rrf_k + 1."""
        models = _models()
        vectors = np.asarray(vectors, dtype=np.float32)
        queries = [query_vector(t) for t in terms]
        requests = []
        for vector, query in zip(vectors, queries, strict=True):
            prefetch = [models.Prefetch(query=vector.tolist(), using=DENSE, limit=k, filter=_day_filter(days))]
            if query.indices:
                prefetch.append(models.Prefetch(query=query, using=KEYWORD, limit=k, filter=_day_filter(days)))
            requests.append(
                models.QueryRequest(
                    prefetch=prefetch,
                    query=models.RrfQuery(rrf=models.Rrf(k=rrf_k + 1)),
                    limit=2 * k,
                    with_payload=PASSAGE_FIELDS,
                    with_vector=[DENSE, KEYWORD],
                )
            )
        responses = self.client.query_batch_points(self.collection, requests)
        self._document_frequencies([i for q in queries for i in q.indices])
        fused = []
        for vector, query, response in zip(vectors, queries, responses, strict=True):
            self._remember(response.points)
            weights = self._query_weights(query)
            fused.append(
                FusedHits(
                    ids=[int(p.id) for p in response.points],
                    scores=[float(p.score) for p in response.points],
                    dense=[
                        float(np.dot(np.asarray(p.vector[DENSE], dtype=np.float32), vector)) for p in response.points
                    ],
                    keyword=[self._bm25(weights, p.vector.get(KEYWORD)) for p in response.points],
                )
            )
        return fused

    def _query_weights(self, query) -> dict[int, float]:
        """Each question term id's weight in BM25: how often it is asked times its IDF."""
        df = self._document_frequencies(query.indices)
        passages = self.passage_count()
        return {i: v * bm25_idf(df[i], passages) for i, v in zip(query.indices, query.values, strict=True) if df[i]}

    @staticmethod
    def _bm25(weights: dict[int, float], vector) -> float:
        if vector is None or not weights:
            return 0.0
        return float(sum(weights.get(i, 0.0) * v for i, v in zip(vector.indices, vector.values, strict=True)))

    def keyword_scores(self, terms: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        weights = self._query_weights(query_vector(terms))
        points = {
            int(p.id): p
            for p in self.client.retrieve(
                self.collection, [int(i) for i in ids], with_payload=False, with_vectors=[KEYWORD]
            )
        }
        return np.array(
            [self._bm25(weights, points[int(i)].vector.get(KEYWORD)) if int(i) in points else 0.0 for i in ids],
            dtype=np.float32,
        )

    def _document_frequencies(self, ids: Sequence[int]) -> dict[int, int]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._df]
        if missing:
            if len(self._df) > _CACHE:
                self._df = {}
            found = {int(p.id): p.payload["df"] for p in self.client.retrieve(self.terms_collection, missing)}
            for i in missing:
                self._df[i] = found.get(i, 0)
        return {i: self._df.get(i, 0) for i in ids}

    def idf(self, term: str) -> float:
        identifier = term_id(term)
        return reader_idf(self._document_frequencies([identifier])[identifier], self.passage_count())

    # -- passages and articles
    def passages(self, ids: Sequence[int]) -> list[StoredPassage]:
        cache = self._passages  # one dict throughout: another thread may start a new one meanwhile
        known = {int(i): cache[int(i)] for i in ids if int(i) in cache}
        missing = [int(i) for i in ids if int(i) not in known]
        if missing:
            known.update(self._remember(self.client.retrieve(self.collection, missing, with_payload=PASSAGE_FIELDS)))
        return [known[int(i)] for i in ids]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        found = {
            int(p.id): p.vector[DENSE]
            for p in self.client.retrieve(
                self.collection, [int(i) for i in ids], with_payload=False, with_vectors=[DENSE]
            )
        }
        return np.array([found[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), self.dimension)

    def facts(self, doc_id: str) -> ArticleFacts:
        return self._facts[doc_id]

    def _load_article(self, doc_id: str) -> Article:
        found = self.client.retrieve(self.articles_collection, [article_point_id(doc_id)], with_payload=True)
        if not found or found[0].payload.get("doc_id") != doc_id:
            raise KeyError(doc_id)
        payload = found[0].payload
        article = _article(payload)
        if len(self._articles) >= 4096:
            self._articles, self._sentences = {}, {}
        self._articles[doc_id] = article
        self._sentences[doc_id] = [Sentence(doc_id, start, end) for start, end in payload["sentences"]]
        return article

    def article(self, doc_id: str) -> Article:
        cached = self._articles.get(doc_id)
        return cached if cached is not None else self._load_article(doc_id)

    def sentences(self, doc_id: str) -> list[Sentence]:
        cached = self._sentences.get(doc_id)
        if cached is not None:
            return cached
        try:
            self._load_article(doc_id)
        except KeyError:
            return []
        return self._sentences.get(doc_id, [])

    def passage_text(self, passage_id: int) -> str:
        found = self.client.retrieve(self.collection, [int(passage_id)], with_payload=["text"])
        if not found:
            raise KeyError(passage_id)
        return found[0].payload["text"]

    def doc_ids(self) -> list[str]:
        return sorted(self._facts)

    def iter_articles(self) -> Iterator[Article]:
        selector = _models().PayloadSelectorExclude(exclude=["sentences"])
        for point in _scroll(self.client, self.articles_collection, _match("kind", ["article"]), selector):
            yield _article(point.payload)

    def newest_date(self) -> date | None:
        days = [facts.day for facts in self._facts.values() if facts.day > 0]
        return date.fromordinal(max(days)) if days else None

    def close(self) -> None:
        self._passages, self._articles, self._sentences, self._df = {}, {}, {}, {}

    # -- what a build reuses
    def article_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def sources(self) -> dict[str, SourceFile]:
        saved = _read_table(self.client, self.articles_collection, "sources") or {}
        return {path: SourceFile.from_dict(entry) for path, entry in saved.items()}

    def article_passages(self, doc_id: str) -> list[StoredPassage]:
        points = self._remember(_scroll(self.client, self.collection, _match("doc_id", [doc_id]), PASSAGE_FIELDS))
        return sorted(points.values(), key=lambda p: (p.start, p.end))

    def vectors_by_hash(self, embed_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(embed_hashes))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), PAGE):
            for point in _scroll(
                self.client,
                self.collection,
                _match("embed_hash", wanted[start : start + PAGE]),
                ["embed_hash"],
                [DENSE],
            ):
                found.setdefault(point.payload["embed_hash"], np.array(point.vector[DENSE], dtype=np.float32))
        return found

    def article_means(self) -> tuple[list[str], np.ndarray]:
        doc_ids, means = [], []
        for point in _scroll(self.client, self.articles_collection, _match("kind", ["article"]), ["doc_id"], [MEAN]):
            doc_ids.append(point.payload["doc_id"])
            means.append(point.vector[MEAN])
        return doc_ids, np.array(means, dtype=np.float32).reshape(len(doc_ids), self.dimension)

    def duplicate_pairs(self) -> list[tuple[str, str]]:
        saved = _read_table(self.client, self.articles_collection, "duplicates") or {}
        return [tuple(pair) for pair in saved.get("pairs", [])]


class QdrantBackend:
    """Generations as collections of a Qdrant server (`url`), or of qdrant-client's local mode in a folder (`path`,
    or ":memory:"), which is a Python re-implementation of the engine's API, not the engine (qa.backend.Backend).
    `lock_dir`: a folder on this machine whose lock keeps builds one at a time (default: `path`). A build's
    collections get `shards` shards with `replicas` copies each (None: the server's defaults) and, with
    `quantization` "int8", int8 copies of the dense vectors in RAM and the float originals on disk; passage
    payloads (texts) are always kept on disk. Local mode ignores all three."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        path: str | Path | None = None,
        collection_prefix: str = DEFAULT_PREFIX,
        client=None,
        lock_dir: str | Path | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        quantization: str = "",
    ):
        if not _PREFIX.fullmatch(collection_prefix):
            raise QAError(
                f"Qdrant collection name {collection_prefix!r} ($QA_QDRANT_COLLECTION): use letters, digits and _ only"
            )
        self.url, self.api_key, self.path = url, api_key, str(path) if path is not None else None
        self.alias = collection_prefix
        self.location = (
            f"{url} (Qdrant, collection {collection_prefix})"
            if url
            else f"{self.path or ':memory:'} (Qdrant local mode)"
        )
        self.lock_dir = (
            Path(lock_dir)
            if lock_dir is not None
            else (Path(self.path) if self.path not in (None, ":memory:") else None)
        )
        self._client = client
        self.shards, self.replicas, self.quantization = shards or None, replicas or None, quantization

    @property
    def client(self):
        if self._client is None:
            from qdrant_client import QdrantClient

            warnings.filterwarnings(
                "ignore",
                message=".*(Local mode is not recommended|Payload indexes have no effect).*",
                category=UserWarning,
            )
            try:
                if self.url:
                    self._client = QdrantClient(url=self.url, api_key=self.api_key or None, timeout=60)
                elif self.path in (None, ":memory:"):
                    self._client = QdrantClient(location=":memory:")
                else:
                    self._client = QdrantClient(path=self.path)
            except (RuntimeError, OSError, ValueError) as error:  # local mode: the folder is another process's
                raise QdrantUnavailable(self.location, error) from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One build at a time (a file lock in `lock_dir`); collections of killed builds go first, generations
        beyond the live one and its predecessor when it ends."""
        with build_lock(self.lock_dir) if self.lock_dir is not None else contextlib.nullcontext():
            self._prune()
            yield
            self._prune()

    def live_collection(self) -> str | None:
        for alias in self._call(lambda: self.client.get_aliases().aliases):
            if alias.alias_name == self.alias:
                return alias.collection_name
        return None

    def live_name(self) -> str:
        collection = self.live_collection()
        if collection is None:
            raise IndexNotFound(self.location)
        return collection.removeprefix(self.alias + "-")

    def live_manifest(self) -> dict | None:
        """The live generation's manifest (the collection's metadata), without loading the generation."""
        collection = self.live_collection()
        if collection is None:
            return None
        metadata = self._call(lambda: self.client.get_collection(collection).config.metadata) or {}
        return metadata.get("manifest")

    def open(
        self, model_id: str | None = None, dimension: int | None = None, fallback: bool = True
    ) -> QdrantGeneration:
        live = self.live_collection()
        if live is None:
            raise IndexNotFound(self.location)
        try:
            generation = self._load(live)
        except IndexCorrupt as damaged:
            older = [c for c in self._generations() if c < live and self._complete(c)] if fallback else []
            if not older:
                raise
            generation = self._load(older[-1])
            generation.fallback_from = (live.removeprefix(self.alias + "-"), str(damaged))
        if model_id is not None:
            generation.check_model(model_id, dimension if dimension is not None else generation.dimension)
        return generation

    def _load(self, collection: str) -> QdrantGeneration:
        try:
            return QdrantGeneration(self.client, collection)
        except IndexCorrupt:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise IndexCorrupt(collection, str(error) or type(error).__name__) from None
        except Exception as error:  # noqa: BLE001 (connection and server errors of the client)
            raise QdrantUnavailable(self.location, error) from None

    def open_for_reuse(self) -> QdrantGeneration | None:
        try:
            return self.open(fallback=False)
        except (IndexNotFound, IndexCorrupt):
            return None

    def save_sources(self, name: str, sources: dict[str, SourceFile]) -> None:
        """Replace the file table of generation `name` (a build that changed nothing read some files again)."""
        self._call(lambda: _write_sources(self.client, f"{self.alias}-{name}{ARTICLES}", sources))

    def writer(self, previous: SearchIndex | None, dimension: int) -> QdrantWriter:
        return QdrantWriter(self, previous if isinstance(previous, QdrantGeneration) else None, dimension)

    def rollback(self) -> str:
        """Make the kept previous generation live again; its name."""
        live = self.live_collection()
        older = [c for c in self._generations() if live is None or c < live]
        if not older or not self._complete(older[-1]):
            raise IndexNotFound(f"{self.location}: no earlier generation")
        self._switch(older[-1])
        return older[-1].removeprefix(self.alias + "-")

    def _call(self, action):
        try:
            return action()
        except QAError:
            raise
        except Exception as error:  # noqa: BLE001 (connection and server errors of the client)
            raise QdrantUnavailable(self.location, error) from None

    def _generations(self) -> list[str]:
        """Passage collections of this prefix, oldest first (their names hold the build time)."""
        start = f"{self.alias}-{GENERATION_PREFIX}"
        names = [c.name for c in self.client.get_collections().collections]
        return sorted(n for n in names if n.startswith(start) and not n.endswith((ARTICLES, TERMS)))

    def _complete(self, collection: str) -> bool:
        try:
            return bool((self.client.get_collection(collection).config.metadata or {}).get("complete"))
        except Exception:  # noqa: BLE001
            return False

    def _switch(self, collection: str) -> None:
        """Point the alias at `collection` in one request (Qdrant applies the operations of one call atomically)."""
        models = _models()
        operations = []
        if self.live_collection() is not None:
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def _prune(self) -> None:
        """Keep the live generation and the newest complete one before it; drop the rest (killed builds too)."""
        live = self.live_collection()
        generations = self._generations()
        kept = [c for c in generations if live is not None and c < live and self._complete(c)][-1:]
        for collection in generations:
            if collection != live and collection not in kept:
                self._drop(collection)

    def _drop(self, collection: str) -> None:
        for name in (collection, collection + ARTICLES, collection + TERMS):
            with contextlib.suppress(Exception):
                self.client.delete_collection(name)


class QdrantWriter:
    """A new generation: the previous one's points minus the replaced and deleted articles, plus the new ones."""

    def __init__(self, backend: QdrantBackend, previous: QdrantGeneration | None, dimension: int):
        self.backend = backend
        self.client = backend.client
        self.previous = previous
        self.dimension = dimension
        self.fresh: dict[str, tuple[Article, list[StoredPassage], np.ndarray, list[Sentence]]] = {}
        self.removed: set[str] = set()  # the previous generation's articles that are replaced or deleted
        self._previous_articles = set(previous.article_hashes()) if previous is not None else set()
        self.written: dict[str, int] = {}

    def put_article(
        self, article: Article, passages: Sequence[StoredPassage], vectors: np.ndarray, sentences: Sequence[Sentence]
    ) -> None:
        self.delete_article(article.doc_id)
        self.fresh[article.doc_id] = (
            article,
            list(passages),
            np.asarray(vectors, np.float32).reshape(len(passages), self.dimension),
            list(sentences),
        )

    def delete_article(self, doc_id: str) -> None:
        self.fresh.pop(doc_id, None)
        if doc_id in self._previous_articles:
            self.removed.add(doc_id)

    def commit(
        self,
        manifest: dict,
        duplicate_of: dict[str, str],
        duplicate_pairs: Sequence[tuple[str, str]],
        sources: dict[str, SourceFile],
    ) -> str:
        name = GENERATION_PREFIX + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        collection = f"{self.backend.alias}-{name}"
        switched = False
        try:
            self._create(collection)
            terms = {
                doc_id: [
                    passage_terms(tokenize(embed_text(article.title, article.text[p.start : p.end]))) for p in passages
                ]
                for doc_id, (article, passages, _, _) in self.fresh.items()
            }
            totals, df = self._statistics(terms)
            mean_length = totals["length"] / totals["passages"] if totals["passages"] else 1.0
            old_mean = self.previous.manifest.get("keyword_mean_length", 1.0) if self.previous else mean_length
            self._upload(collection, self._copied_passages(old_mean, mean_length))
            self._upload(collection, self._fresh_passages(terms, mean_length))
            articles, sentences = self._write_articles(collection + ARTICLES, duplicate_of)
            models = _models()
            self._upload(
                collection + TERMS, (models.PointStruct(id=i, vector={}, payload={"df": n}) for i, n in df.items())
            )
            _write_sources(self.client, collection + ARTICLES, sources)
            _write_table(
                self.client,
                collection + ARTICLES,
                "duplicates",
                {"duplicate_of": duplicate_of, "pairs": [list(pair) for pair in duplicate_pairs]},
            )
            self.written = {"articles": articles, "passages": totals["passages"], "sentences": sentences}
            full = {
                **manifest,
                "backend": "qdrant",
                "store_version": STORE_VERSION,
                "generation": name,
                "collection": collection,
                **self.written,
                "duplicates": len(duplicate_of),
                "keyword_length_total": totals["length"],
                "keyword_mean_length": mean_length,
                "versions": {**manifest.get("versions", {}), "qdrant-client": _client_version()},
            }
            counted = self.client.count(collection, exact=True).count
            if counted != totals["passages"]:
                raise ValueError(f"{counted} passages written, {totals['passages']} expected")
            self.client.update_collection(collection, metadata={"complete": True, "manifest": full})
            self.backend._switch(collection)
            switched = True
        except QAError:
            self.backend._drop(collection)
            raise
        except Exception as error:  # noqa: BLE001 (connection and server errors of the client)
            if not switched:
                self.backend._drop(collection)
            raise QdrantBuildFailed(self.backend.location, error) from error
        return name

    def _create(self, collection: str) -> None:
        models = _models()
        backend = self.backend
        quantized = backend.quantization == "int8"
        self.client.create_collection(
            collection,
            vectors_config={
                DENSE: models.VectorParams(
                    size=self.dimension, distance=models.Distance.COSINE, on_disk=quantized or None
                )
            },
            sparse_vectors_config={KEYWORD: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=backend.shards,
            replication_factor=backend.replicas,
            on_disk_payload=True,
            quantization_config=models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
            if quantized
            else None,
            metadata={"complete": False},
        )
        for field, schema in (
            ("doc_id", models.PayloadSchemaType.KEYWORD),
            ("day", models.PayloadSchemaType.INTEGER),
            ("embed_hash", models.PayloadSchemaType.KEYWORD),
        ):
            self.client.create_payload_index(collection, field, field_schema=schema)
        self.client.create_collection(
            collection + ARTICLES,
            vectors_config={MEAN: models.VectorParams(size=self.dimension, distance=models.Distance.DOT)},
        )
        for field in ("kind", "doc_id"):
            self.client.create_payload_index(
                collection + ARTICLES, field, field_schema=models.PayloadSchemaType.KEYWORD
            )
        self.client.create_collection(collection + TERMS, vectors_config={})

    def _statistics(self, fresh_terms: dict[str, list[list[str]]]) -> tuple[dict[str, int], dict[int, int]]:
        """Passages, their total term count and each term's passages in the new generation: the previous ones'
        updated by what is removed and added (never a pass over everything)."""
        totals = {"passages": 0, "length": 0}
        df: dict[int, int] = {}
        if self.previous is not None:
            totals = {
                "passages": self.previous.passage_count(),
                "length": int(self.previous.manifest["keyword_length_total"]),
            }
            df = {int(p.id): p.payload["df"] for p in _scroll(self.client, self.previous.terms_collection)}
            removed = sorted(self.removed)
            for start in range(0, len(removed), PAGE):
                chunk = _match("doc_id", removed[start : start + PAGE])
                for point in _scroll(self.client, self.previous.collection, chunk, ["terms"], [KEYWORD]):
                    totals["passages"] -= 1
                    totals["length"] -= point.payload["terms"]
                    for i in point.vector[KEYWORD].indices:
                        df[i] = df.get(i, 0) - 1
        for passages in fresh_terms.values():
            for terms in passages:
                totals["passages"] += 1
                totals["length"] += len(terms)
                for i in set(term_id(t) for t in terms):
                    df[i] = df.get(i, 0) + 1
        return totals, {i: n for i, n in df.items() if n > 0}

    def _upload(self, collection: str, points: Iterable) -> None:
        """Points in batches, each acknowledged once applied (the build counts them before it switches)."""
        self.client.upload_points(collection, points, batch_size=PAGE, wait=True)

    def _copied_passages(self, old_mean: float, new_mean: float) -> Iterator:
        """The previous generation's points of articles that stay, with their vectors (never embedded again)."""
        if self.previous is None:
            return
        models = _models()
        for point in _scroll(self.client, self.previous.collection, with_vectors=True):
            if point.payload["doc_id"] in self.removed:
                continue
            vector = point.vector
            if old_mean != new_mean:
                sparse = vector[KEYWORD]
                vector = {
                    **vector,
                    KEYWORD: models.SparseVector(
                        indices=sparse.indices,
                        values=_resaturate(sparse.values, point.payload["terms"], old_mean, new_mean),
                    ),
                }
            yield models.PointStruct(id=point.id, vector=vector, payload=point.payload)

    def _fresh_passages(self, terms: dict[str, list[list[str]]], mean_length: float) -> Iterator:
        models = _models()
        for doc_id, (article, passages, vectors, _) in self.fresh.items():
            day = _day(article.publish_date)
            for passage, vector, passage_terms_ in zip(passages, vectors, terms[doc_id], strict=True):
                indices, values = keyword_vector(passage_terms_, mean_length)
                yield models.PointStruct(
                    id=passage.passage_id,
                    vector={DENSE: vector.tolist(), KEYWORD: models.SparseVector(indices=indices, values=values)},
                    payload={
                        "doc_id": doc_id,
                        "start": passage.start,
                        "end": passage.end,
                        "embed_hash": passage.embed_hash,
                        "title": article.title,
                        "source": article.source,
                        "day": day,
                        "url": article.url,
                        "text": article.text[passage.start : passage.end],
                        "terms": len(passage_terms_),
                    },
                )

    def _write_articles(self, collection: str, duplicate_of: dict[str, str]) -> tuple[int, int]:
        """Article points (copied ones with their story updated, then the new ones); (articles, sentences)."""
        models = _models()
        counts = {"articles": 0, "sentences": 0}

        def counted(points: Iterable) -> Iterator:
            for point in points:
                counts["articles"] += 1
                counts["sentences"] += len(point.payload["sentences"])
                yield point

        def copied() -> Iterator:
            if self.previous is None:
                return
            for point in _scroll(
                self.client, self.previous.articles_collection, _match("kind", ["article"]), with_vectors=[MEAN]
            ):
                doc_id = point.payload["doc_id"]
                if doc_id not in self.removed:
                    yield models.PointStruct(
                        id=point.id,
                        vector={MEAN: point.vector[MEAN]},
                        payload={**point.payload, "group": duplicate_of.get(doc_id, doc_id)},
                    )

        def fresh() -> Iterator:
            for doc_id, (article, _, vectors, article_sentences) in self.fresh.items():
                mean = vectors.sum(axis=0) if len(vectors) else np.zeros(self.dimension, np.float32)
                norm = np.linalg.norm(mean)
                yield models.PointStruct(
                    id=article_point_id(doc_id),
                    vector={MEAN: (mean / norm if norm else mean).tolist()},
                    payload={
                        "kind": "article",
                        "doc_id": doc_id,
                        "title": article.title,
                        "text": article.text,
                        "url": article.url,
                        "publish_date": article.publish_date,
                        "authors": list(article.authors),
                        "source": article.source,
                        "origin": article.origin,
                        "content_hash": article.content_hash,
                        "day": _day(article.publish_date),
                        "group": duplicate_of.get(doc_id, doc_id),
                        "sentences": [[s.start, s.end] for s in article_sentences],
                    },
                )

        self._upload(collection, counted(copied()))
        self._upload(collection, counted(fresh()))
        return counts["articles"], counts["sentences"]


def _client_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("qdrant-client")
    except metadata.PackageNotFoundError:
        return ""
