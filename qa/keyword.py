"""Keyword side of retrieval: BM25 (bm25s) over the same passages, persisted in the generation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w\w+|\d")
DOC_FREQ = "doc_freq.json"
MIN_IDF_PASSAGES = 10_000


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s's list keeps question words, which would count as rare terms in a small corpus
    return frozenset(STOPWORDS_EN) | {"who", "whom", "whose", "what", "when", "where", "which", "why", "how",
                                      "did", "does", "do", "doing", "has", "have", "had", "he", "she", "his", "her"}


# Irregular past forms that Snowball leaves apart from their verb, frequent in news reporting.
_IRREGULAR = dict(pair.split(":") for pair in (
    "said:say spoke:speak spoken:speak told:tell met:meet won:win took:take taken:take gave:give given:give "
    "made:make went:go gone:go came:come ran:run left:leave held:hold found:find paid:pay sold:sell bought:buy "
    "brought:bring began:begin begun:begin fell:fall fallen:fall rose:rise risen:rise lost:lose struck:strike "
    "chose:choose chosen:choose wrote:write written:write led:lead sent:send built:build spent:spend kept:keep "
    "saw:see seen:see knew:know known:know thought:think flew:fly flown:fly grew:grow grown:grow threw:throw "
    "thrown:throw broke:break broken:break stole:steal stolen:steal shot:shoot fought:fight caught:catch "
    "taught:teach sought:seek stood:stand sat:sit felt:feel heard:hear meant:mean drove:drive driven:drive "
    "ate:eat eaten:eat drank:drink sang:sing sung:sing swam:swim hid:hide hidden:hide bit:bite bitten:bite "
    "forgot:forget forgotten:forget froze:freeze frozen:freeze wore:wear worn:wear tore:tear torn:tear "
    "sank:sink sunk:sink sprang:spring shook:shake shaken:shake woke:wake rode:ride ridden:ride "
    "dealt:deal lent:lend bent:bend fled:flee swore:swear sworn:swear slept:sleep wept:weep"
).split())


_TERMS: dict[str, str | None] = {}  # word -> its term (None: a stop word); words repeat, stemming is per word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words out, irregular verbs to their base, Snowball-stemmed: the terms BM25 and
    answer scoring share."""
    terms = []
    known = _TERMS.get
    for word in _WORD.findall(text.lower()):
        term = known(word, "")
        if term == "":
            term = None if word in _stopwords() else _stemmer().stemWord(_IRREGULAR.get(word, word))
            if len(_TERMS) < 2_000_000:  # bounded: a flood of random words cannot grow it without end
                _TERMS[word] = term
        if term is not None:
            terms.append(term)
    return terms


def document_frequencies(retriever) -> dict[str, int]:
    """Passages holding each term, read off the BM25 matrix (one stored score per passage and term it holds;
    BM25's idf is positive, so none is zero) instead of counting the tokens again."""
    per_term = np.diff(retriever.scores["indptr"])
    return {term: int(per_term[i]) for term, i in retriever.vocab_dict.items() if i < len(per_term)}


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
        (folder / DOC_FREQ).write_text(json.dumps(document_frequencies(retriever)))

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
        """Inverse document frequency (BM25's, floored at a small positive value), counted as if the corpus
        had at least MIN_IDF_PASSAGES passages: in a handful of articles every term would look common,
        and the answer's evidence (calibrated on a news corpus) would be understated."""
        df = self.doc_freq.get(term, 0)
        passages = max(self.passages, MIN_IDF_PASSAGES)
        return max(0.05, math.log(1 + (passages - df + 0.5) / (df + 0.5)))
