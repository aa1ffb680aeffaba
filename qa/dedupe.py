"""Near-duplicate articles (the same wire story from several outlets), found at build time."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

import numpy as np

CANDIDATE_COSINE = 0.9  # article vectors this close are compared word by word
MIN_CONTAINMENT = 0.8  # share of the shorter article's 5-word shingles found in the other
NEIGHBOURS = 8  # closest articles compared per article
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = 5) -> set[int]:
    words = _WORD.findall(text.lower())
    if not words:  # pages without text are no copies of each other
        return set()
    return {hash(tuple(words[i : i + size])) for i in range(max(1, len(words) - size + 1))}


def containment(a: set[int], b: set[int]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def find_duplicates(
    doc_ids: Sequence[str],
    means: np.ndarray,
    date_of: Callable[[str], str | None],
    text_of: Callable[[str], str],
    changed: Collection[str] | None = None,
    known_pairs: Sequence[tuple[str, str]] = (),
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Map each duplicate's doc_id to its group's canonical doc_id (the earliest published, then by id), and
    list the confirmed pairs (kept in the generation, so the next build compares only what changed).

    Candidates come from each article's mean passage vector (`means`, normalised), and are confirmed by
    word-shingle containment so that two articles merely on the same topic stay apart. With `changed`, only
    those articles are compared, and `known_pairs` (confirmed earlier between unchanged articles) are kept.
    """
    number = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    pairs = {(a, b) for a, b in known_pairs if a in number and b in number}
    rows = range(len(doc_ids)) if changed is None else [number[d] for d in changed if d in number]
    cache: dict[int, set[int]] = {}

    def words(i: int) -> set[int]:
        if i not in cache:
            cache[i] = shingles(text_of(doc_ids[i]))
        return cache[i]

    for i, j in _candidates(means, list(rows)):
        pair = (doc_ids[min(i, j)], doc_ids[max(i, j)])
        if pair not in pairs and containment(words(i), words(j)) >= MIN_CONTAINMENT:
            pairs.add(pair)
    return _canonical(date_of, pairs), sorted(pairs)


def _candidates(means: np.ndarray, rows: list[int], block: int = 1024) -> list[tuple[int, int]]:
    """(i, j) for each listed article i and its closest others j at CANDIDATE_COSINE or above."""
    found: list[tuple[int, int]] = []
    if len(means) < 2:
        return found
    take = min(NEIGHBOURS, len(means))
    for start in range(0, len(rows), block):
        chunk = np.array(rows[start : start + block])
        scores = means[chunk] @ means.T
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        for i, row_scores, row_best in zip(chunk.tolist(), scores, best, strict=True):
            found += [(i, int(j)) for j in row_best if j != i and row_scores[j] >= CANDIDATE_COSINE]
    return found


def _canonical(date_of: Callable[[str], str | None], pairs: set[tuple[str, str]]) -> dict[str, str]:
    parent = {doc_id: doc_id for pair in pairs for doc_id in pair}

    def root(doc_id: str) -> str:
        while parent[doc_id] != doc_id:
            parent[doc_id] = parent[parent[doc_id]]
            doc_id = parent[doc_id]
        return doc_id

    for a, b in sorted(pairs):
        parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for doc_id in parent:
        groups.setdefault(root(doc_id), []).append(doc_id)
    duplicate_of = {}
    for members in groups.values():
        members.sort(key=lambda m: (date_of(m) or "9999", m))
        for member in members[1:]:
            duplicate_of[member] = members[0]
    return duplicate_of
