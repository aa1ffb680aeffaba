"""Question -> ranked passages."""

from __future__ import annotations

from collections.abc import Sequence

from qa.embed import Embedder
from qa.store import Generation
from qa.types import Hit


def retrieve_many(generation: Generation, embedder: Embedder, questions: Sequence[str], top_k: int = 10) -> list[list[Hit]]:
    """Dense retrieval for a batch of questions: normalised vectors, inner product."""
    if not questions:
        return []
    scores, ids = generation.search(embedder.embed(list(questions)), top_k)
    results = []
    for row_scores, row_ids in zip(scores, ids, strict=True):
        hits = []
        for score, passage_id in zip(row_scores, row_ids, strict=True):
            if passage_id < 0:
                continue
            stored = generation.passages[passage_id]
            hits.append(Hit(len(hits) + 1, int(passage_id), stored.doc_id, float(score), stored.start, stored.end))
        results.append(hits)
    return results


def retrieve(generation: Generation, embedder: Embedder, question: str, top_k: int = 10) -> list[Hit]:
    return retrieve_many(generation, embedder, [question], top_k)[0]
