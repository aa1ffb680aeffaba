"""Keyword side of retrieval: BM25 (bm25s) over the same passages, persisted in the generation."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w\w+|\d")
DOC_FREQ = "doc_freq.json"


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words out, Snowball-stemmed words: the terms BM25 and answer scoring share."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words) if words else []


class KeywordIndex:
    """BM25 scores for every passage, and the document frequency of each term (for answer scoring)."""

    def __init__(self, retriever, doc_freq: dict[str, int], passages: int):
        self.retriever = retriever
        self.doc_freq = doc_freq
        self.passages = passages

    @classmethod
    def build(cls, texts: Sequence[str], folder: Path) -> None:
        import bm25s

        tokens = [tokenize(t) or ["\u2205"] for t in texts]  # an empty passage still needs one term
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        folder.mkdir(parents=True, exist_ok=True)
        retriever.save(str(folder), show_progress=False)
        doc_freq = Counter(term for passage in tokens for term in set(passage))
        (folder / DOC_FREQ).write_text(json.dumps(doc_freq))

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        import bm25s

        retriever = bm25s.BM25.load(str(folder), mmap=False, show_progress=False, verbosity=0)
        doc_freq = json.loads((folder / DOC_FREQ).read_text())
        return cls(retriever, doc_freq, int(retriever.scores["num_docs"]))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for the query terms (zeros when no term is known)."""
        known = [t for t in terms if t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(self.passages, dtype=np.float32)
        return self.retriever.get_scores(known)

    def idf(self, term: str) -> float:
        """Inverse document frequency (BM25's, floored at a small positive value)."""
        df = self.doc_freq.get(term, 0)
        return max(0.05, math.log(1 + (self.passages - df + 0.5) / (df + 0.5)))
