"""Question -> ranked passages: dense (FAISS) and keyword (BM25) lists, fused, dated, de-duplicated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from qa.embed import Embedder
from qa.keyword import tokenize
from qa.store import Generation
from qa.timeframe import Timeframe, question_timeframe
from qa.types import Hit

FUSIONS = ("rrf", "dense", "keyword", "weighted")
_FOLLOW_UP = re.compile(
    r"\b(he|she|they|him|her|his|hers|them|their|theirs|it|its|this|that|these|those|there|the same)\b|^(and|what about|how about)\b",
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


@dataclass(frozen=True)
class Query:
    """A question made ready for retrieval: follow-ups carry the earlier question's subject."""

    question: str
    text: str
    asked_on: date | None
    timeframe: Timeframe | None


def make_query(question: str, history: Sequence[str] = (), asked_on: date | None = None,
               settings: RetrievalSettings = RetrievalSettings(), dated: bool = True) -> Query:
    """`dated`: the asked-on date was stated, so a question without time words is about the days before it."""
    text = question
    if history and is_follow_up(question):
        text = f"{history[-1]} {question}"
    timeframe = question_timeframe(question, asked_on, settings.default_days) if asked_on else None
    if timeframe is not None and not timeframe.explicit and not dated:
        timeframe = None
    return Query(question, text, asked_on, timeframe)


_TIME_PHRASE = re.compile(
    r"\b(this|that|these|those|the same)\s+(past\s+|coming\s+)?(week|weekend|month|year|season|day|morning|"
    r"afternoon|evening|night|spring|summer|autumn|fall|winter|time|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)s?\b", re.I)


def is_follow_up(question: str) -> bool:
    """A question that leans on the conversation: a pronoun or "what about" instead of a named subject
    ("this week" and the like name a period, not something said before)."""
    return bool(_FOLLOW_UP.search(_TIME_PHRASE.sub(" ", question))) or len(question.split()) <= 3


def retrieve_many(
    generation: Generation,
    embedder: Embedder,
    queries: Sequence[Query],
    top_k: int = 10,
    settings: RetrievalSettings = RetrievalSettings(),
) -> list[list[Hit]]:
    """Ranked passages per query; copies of one story collapse into one hit naming the other copies."""
    if not queries:
        return []
    vectors = embedder.embed([q.text for q in queries])
    k = min(settings.candidates, len(generation.passages))
    dense_scores, dense_ids = generation.search(vectors, k)
    return [
        _rank(generation, query, vectors[i], dense_scores[i], dense_ids[i], top_k, settings)
        for i, query in enumerate(queries)
    ]


def retrieve(generation: Generation, embedder: Embedder, question: str, top_k: int = 10, **query_args) -> list[Hit]:
    return retrieve_many(generation, embedder, [make_query(question, **query_args)], top_k)[0]


def _rank(generation: Generation, query: Query, vector: np.ndarray, dense_scores: np.ndarray, dense_ids: np.ndarray,
          top_k: int, settings: RetrievalSettings) -> list[Hit]:
    keep = dense_ids >= 0
    dense_ids, dense_scores = dense_ids[keep], dense_scores[keep]
    keyword_all = generation.keyword.scores(tokenize(query.text))
    k = min(settings.candidates, len(keyword_all))
    keyword_ids = np.argpartition(-keyword_all, k - 1)[:k]
    keyword_ids = keyword_ids[np.argsort(-keyword_all[keyword_ids], kind="stable")]
    keyword_ids = keyword_ids[keyword_all[keyword_ids] > 0]

    dense_of = dict(zip(dense_ids.tolist(), dense_scores.tolist(), strict=True))
    keyword_only = [int(pid) for pid in keyword_ids if int(pid) not in dense_of]
    if keyword_only:  # exact cosines for passages only BM25 found
        found = generation.vectors.reconstruct_batch(np.array(keyword_only, dtype=np.int64)) @ vector
        dense_of.update(zip(keyword_only, found.tolist(), strict=True))
    fused: dict[int, float] = {}
    if settings.fusion in ("rrf", "dense"):
        for rank, pid in enumerate(dense_ids.tolist()):
            fused[pid] = 1.0 / (settings.rrf_k + rank + 1)
    if settings.fusion in ("rrf", "keyword"):
        for rank, pid in enumerate(keyword_ids.tolist()):
            fused[pid] = fused.get(pid, 0.0) + settings.keyword_weight / (settings.rrf_k + rank + 1)
    if settings.fusion == "weighted":
        top_keyword = float(keyword_all[keyword_ids[0]]) if len(keyword_ids) else 1.0
        for pid, dense in dense_of.items():
            fused[pid] = dense + settings.keyword_weight * float(keyword_all[pid]) / top_keyword

    ids = np.fromiter(fused, dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    if query.timeframe is not None and (settings.date_weight or settings.future_penalty):
        scores = scores * _date_factor(generation, ids, query, settings)
    order = np.argsort(-scores, kind="stable")

    hits: list[Hit] = []
    per_article: dict[int, int] = {}
    first_of_group: dict[int, int] = {}
    also_in: dict[int, list[str]] = {}
    for position in order:
        pid = int(ids[position])
        article = int(generation.passage_article[pid])
        group = int(generation.article_group[article])
        leader = first_of_group.setdefault(group, article)
        if leader != article:  # another outlet's copy of a story already listed
            names = also_in.setdefault(leader, [])
            doc_id = generation.article_ids[article]
            if doc_id not in names:
                names.append(doc_id)
            continue
        if per_article.get(article, 0) >= settings.per_article or len(hits) >= top_k:
            continue
        per_article[article] = per_article.get(article, 0) + 1
        stored = generation.passages[pid]
        hits.append(Hit(len(hits) + 1, pid, stored.doc_id, float(scores[position]), stored.start, stored.end,
                        dense_score=dense_of[pid],
                        keyword_score=float(keyword_all[pid])))
    return [
        Hit(h.rank, h.passage_id, h.doc_id, h.score, h.start, h.end, h.dense_score, h.keyword_score,
            tuple(also_in.get(int(generation.passage_article[h.passage_id]), ())))
        for h in hits
    ]


def _date_factor(generation: Generation, ids: np.ndarray, query: Query, settings: RetrievalSettings) -> np.ndarray:
    days = generation.article_day[generation.passage_article[ids]]
    timeframe = query.timeframe
    inside = (days >= timeframe.start.toordinal()) & (days <= timeframe.end.toordinal())
    future = days > query.asked_on.toordinal() + 1
    factor = np.ones(len(ids))
    factor[inside] += settings.date_weight * (2.0 if timeframe.explicit else 1.0)
    factor[future] *= 1.0 - settings.future_penalty
    return factor
