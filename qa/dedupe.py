"""Near-duplicate articles (the same wire story from several outlets), found at build time."""

from __future__ import annotations

import re

import numpy as np

from qa.types import Article

CANDIDATE_COSINE = 0.9  # article vectors this close are compared word by word
MIN_CONTAINMENT = 0.8  # share of the shorter article's 5-word shingles found in the other
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = 5) -> set[int]:
    words = _WORD.findall(text.lower())
    return {hash(tuple(words[i : i + size])) for i in range(max(1, len(words) - size + 1))}


def containment(a: set[int], b: set[int]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def find_duplicates(articles: list[Article], passage_article: np.ndarray, vectors: np.ndarray) -> dict[str, str]:
    """Map each duplicate's doc_id to its group's canonical doc_id (the earliest published, then by id).

    Candidates come from the mean passage vector of each article (cheap, any corpus size), and are
    confirmed by word-shingle containment so that two articles merely on the same topic stay apart.
    """
    import faiss

    if len(articles) < 2:
        return {}
    dimension = vectors.shape[1]
    means = np.zeros((len(articles), dimension), dtype=np.float32)
    np.add.at(means, passage_article, vectors)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    means /= np.where(norms == 0, 1, norms)
    index = faiss.IndexFlatIP(dimension)
    index.add(means)
    scores, neighbours = index.search(means, min(8, len(articles)))

    parent = list(range(len(articles)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cache: dict[int, set[int]] = {}
    for i, (row_scores, row_ids) in enumerate(zip(scores, neighbours, strict=True)):
        for score, j in zip(row_scores, row_ids, strict=True):
            if j <= i or score < CANDIDATE_COSINE or root(i) == root(j):
                continue
            a = cache.setdefault(i, shingles(articles[i].text))
            b = cache.setdefault(int(j), shingles(articles[j].text))
            if containment(a, b) >= MIN_CONTAINMENT:
                parent[root(int(j))] = root(i)

    groups: dict[int, list[int]] = {}
    for i in range(len(articles)):
        groups.setdefault(root(i), []).append(i)
    duplicate_of = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (articles[m].publish_date or "9999", articles[m].doc_id))
        for member in members[1:]:
            duplicate_of[articles[member].doc_id] = articles[members[0]].doc_id
    return duplicate_of
