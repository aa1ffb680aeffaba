"""Question -> ranked passages: the backend's dense and keyword lists, fused, dated, de-duplicated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from qa.backend import SearchIndex
from qa.embed import Embedder
from qa.keyword import tokenize
from qa.timeframe import Timeframe, question_timeframe
from qa.types import Hit

FUSIONS = ("rrf", "dense", "keyword", "weighted")
_FOLLOW_UP = re.compile(
    r"\b(he|she|they|him|her|his|hers|them|their|theirs|it|its|this|that|these|those|there|the same)\b"
    r"|^(and|what about|how about)\b",
    re.I,
)


@dataclass(frozen=True)
class RetrievalSettings:
    """How the two lists are fused and what else shapes the ranking; chosen by measuring on dev."""

    fusion: str = "rrf"
    rrf_k: int = 60
    keyword_weight: float = 1.0  # weight of the BM25 list against the dense list (1.0 = equal)
    candidates: int = 100  # taken from each list before fusion
    per_article: int = 2  # passages of one article in the ranked list
    date_weight: float = 0.5  # boost of articles inside the question's period (0 = dates ignored)
    future_penalty: float = 0.0  # cut for articles published after the asked-on date
    default_days: int = 8  # period assumed when a question names none

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion={self.fusion!r} is not one of {FUSIONS}")
        if self.candidates < 1 or self.per_article < 1 or self.rrf_k < 1:
            raise ValueError("candidates, per_article and rrf_k must be at least 1")


DEFAULT_RETRIEVAL = RetrievalSettings()


@dataclass(frozen=True)
class Query:
    """A question made ready for retrieval: follow-ups carry the earlier question's subject."""

    question: str
    text: str
    asked_on: date | None
    timeframe: Timeframe | None
    # asked_on is the day of asking (stated, or today), not a static corpus's newest date standing in for it
    now_known: bool = True


def make_query(
    question: str,
    history: Sequence[str] = (),
    asked_on: date | None = None,
    settings: RetrievalSettings = DEFAULT_RETRIEVAL,
    dated: bool = True,
    now_known: bool = True,
) -> Query:
    """`dated`: the asked-on date was stated, so a question without time words is about the days before it;
    `now_known`: it is the day of asking (stated, or today), not the newest article's date of a corpus that ended
    earlier, which retrieval reads time words against but which the asker may not know."""
    text = question
    if history and is_follow_up(question):
        text = f"{history[-1]} {question}"
    timeframe = question_timeframe(question, asked_on, settings.default_days) if asked_on else None
    if timeframe is not None and not timeframe.explicit and not dated:
        timeframe = None
    return Query(question, text, asked_on, timeframe, now_known)


_TIME_PHRASE = re.compile(
    r"\b(this|that|these|those|the same)\s+(past\s+|coming\s+)?(week|weekend|month|year|season|day|morning|"
    r"afternoon|evening|night|spring|summer|autumn|fall|winter|time|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)s?\b",
    re.I,
)


def is_follow_up(question: str) -> bool:
    """A question that leans on the conversation: a pronoun or "what about" instead of a named subject
    ("this week" and the like name a period, not something said before)."""
    return bool(_FOLLOW_UP.search(_TIME_PHRASE.sub(" ", question))) or len(question.split()) <= 3


def retrieve_many(
    generation: SearchIndex,
    embedder: Embedder,
    queries: Sequence[Query],
    top_k: int = 10,
    settings: RetrievalSettings = DEFAULT_RETRIEVAL,
) -> list[list[Hit]]:
    """Ranked passages per query; copies of one story collapse into one hit naming the other copies."""
    if not queries:
        return []
    vectors = embedder.embed([q.text for q in queries])
    k = min(settings.candidates, generation.passage_count())
    hybrid = getattr(generation, "hybrid_search", None)
    if hybrid is not None and settings.fusion == "rrf" and settings.keyword_weight == 1.0:
        # the backend fuses in its engine (one request per question): the same lists and formula as _fuse
        fused = hybrid(vectors, [tokenize(q.text) for q in queries], k, settings.rrf_k)
        candidates = [_candidates(f.ids, f.scores, f.dense, f.keyword) for f in fused]
    else:
        dense_scores, dense_ids = generation.dense_search(vectors, k)
        candidates = [
            _fuse(generation, query, vectors[i], dense_scores[i], dense_ids[i], settings)
            for i, query in enumerate(queries)
        ]
    return [_rank(generation, query, *found, top_k, settings) for query, found in zip(queries, candidates, strict=True)]


def retrieve(generation: SearchIndex, embedder: Embedder, question: str, top_k: int = 10, **query_args) -> list[Hit]:
    return retrieve_many(generation, embedder, [make_query(question, **query_args)], top_k)[0]


Candidates = tuple[dict[int, float], dict[int, float], dict[int, float]]  # fused score, cosine, BM25 by passage id


def _candidates(ids: list[int], scores: list[float], dense: list[float], keyword: list[float]) -> Candidates:
    return dict(zip(ids, scores, strict=True)), dict(zip(ids, dense, strict=True)), dict(zip(ids, keyword, strict=True))


def _fuse(
    generation: SearchIndex,
    query: Query,
    vector: np.ndarray,
    dense_scores: np.ndarray,
    dense_ids: np.ndarray,
    settings: RetrievalSettings,
) -> Candidates:
    keep = dense_ids >= 0
    dense_ids, dense_scores = dense_ids[keep], dense_scores[keep]
    terms = tokenize(query.text)
    keyword_found, keyword_ids = generation.keyword_search(terms, settings.candidates)
    keyword_of = dict(zip(keyword_ids.tolist(), keyword_found.tolist(), strict=True))

    dense_of = dict(zip(dense_ids.tolist(), dense_scores.tolist(), strict=True))
    keyword_only = [pid for pid in keyword_of if pid not in dense_of]
    if keyword_only:  # exact cosines for passages only BM25 found
        found = generation.vectors(keyword_only) @ vector
        dense_of.update(zip(keyword_only, found.tolist(), strict=True))
    fused: dict[int, float] = {}
    if settings.fusion in ("rrf", "dense"):
        for rank, pid in enumerate(dense_ids.tolist()):
            fused[pid] = 1.0 / (settings.rrf_k + rank + 1)
    if settings.fusion in ("rrf", "keyword"):
        for rank, pid in enumerate(keyword_ids.tolist()):
            fused[pid] = fused.get(pid, 0.0) + settings.keyword_weight / (settings.rrf_k + rank + 1)
    if settings.fusion == "weighted":
        ids = list(dense_of)
        bm25 = generation.keyword_scores(terms, ids)
        top_keyword = float(keyword_found[0]) if len(keyword_found) else 1.0
        for pid, keyword in zip(ids, bm25.tolist(), strict=True):
            fused[pid] = dense_of[pid] + settings.keyword_weight * keyword / top_keyword
    return fused, dense_of, keyword_of


def _rank(
    generation: SearchIndex,
    query: Query,
    fused: dict[int, float],
    dense_of: dict[int, float],
    keyword_of: dict[int, float],
    top_k: int,
    settings: RetrievalSettings,
) -> list[Hit]:
    ids = np.fromiter(fused, dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    stored = generation.passages(ids.tolist())
    facts = [generation.facts(p.doc_id) for p in stored]
    if query.timeframe is not None and (settings.date_weight or settings.future_penalty):
        scores = scores * _date_factor(np.array([f.day for f in facts]), query, settings)
    # equal fused scores (one passage's rank in one list, another's same rank in the other) go to the closer
    # passage: the same order whichever backend fused them, and whatever its ids
    cosines = np.fromiter((dense_of[i] for i in fused), dtype=np.float64, count=len(fused))
    order = np.lexsort((-cosines, -scores))

    hits: list[Hit] = []
    per_article: dict[str, int] = {}
    first_of_group: dict[str, str] = {}
    also_in: dict[str, list[str]] = {}
    for position in order.tolist():
        passage, doc_id = stored[position], stored[position].doc_id
        leader = first_of_group.setdefault(facts[position].group, doc_id)
        if leader != doc_id:  # another outlet's copy of a story already listed
            names = also_in.setdefault(leader, [])
            if doc_id not in names:
                names.append(doc_id)
            continue
        if per_article.get(doc_id, 0) >= settings.per_article or len(hits) >= top_k:
            continue
        per_article[doc_id] = per_article.get(doc_id, 0) + 1
        hits.append(
            Hit(
                len(hits) + 1,
                passage.passage_id,
                doc_id,
                float(scores[position]),
                passage.start,
                passage.end,
                dense_score=dense_of[passage.passage_id],
                keyword_score=keyword_of.get(passage.passage_id, 0.0),
            )
        )
    return [replace(h, also_in=tuple(also_in.get(h.doc_id, ()))) for h in hits]


def _date_factor(days: np.ndarray, query: Query, settings: RetrievalSettings) -> np.ndarray:
    timeframe, asked_on = query.timeframe, query.asked_on
    assert timeframe is not None and asked_on is not None  # make_query dates a question only with its day
    inside = (days >= timeframe.start.toordinal()) & (days <= timeframe.end.toordinal())
    future = days > asked_on.toordinal() + 1
    factor = np.ones(len(days))
    factor[inside] += settings.date_weight * (2.0 if timeframe.explicit else 1.0)
    factor[future] *= 1.0 - settings.future_penalty
    return factor
