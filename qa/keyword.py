"""Keyword side of retrieval: terms, and BM25 over per-segment term counts with corpus-wide statistics.

BM25 is computed at question time from each segment's term-frequency matrix (scipy.sparse), so adding
articles writes a small new segment and never re-tokenises or re-scores the old ones; bm25s (used before)
bakes every score at index time with its own idf, so one added article meant indexing the whole corpus
again. The formula is bm25s's default ("lucene": k1 1.5, b 0.75), so rankings are those it gave.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w\w+|\d")
K1, B = 1.5, 0.75
MIN_IDF_PASSAGES = 10_000
EMPTY = "\u2205"  # the one term of a passage without any
TERMS_FILE, VOCAB_FILE = "terms.npz", "vocabulary.json"

# bm25s's English list (the one used before), plus question words and the commonest pronouns and auxiliaries,
# which would count as rare terms in a small corpus
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with who whom whose what when where which why how did does do doing has have had he she his "
    "her".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


# Irregular past forms that Snowball leaves apart from their verb, frequent in news reporting.
_IRREGULAR = dict(
    pair.split(":")
    for pair in (
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
    ).split()
)


_TERMS: dict[str, str | None] = {}  # word -> its term (None: a stop word); words repeat, stemming is per word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words out, irregular verbs to their base, Snowball-stemmed: the terms BM25 and
    answer scoring share."""
    terms = []
    known = _TERMS.get
    for word in _WORD.findall(text.lower()):
        term = known(word, "")
        if term == "":
            term = None if word in STOPWORDS else _stemmer().stemWord(_IRREGULAR.get(word, word))
            if len(_TERMS) < 2_000_000:  # bounded: a flood of random words cannot grow it without end
                _TERMS[word] = term
        if term is not None:
            terms.append(term)
    return terms


class TermCounts:
    """One segment's passages x its own vocabulary: how often each term occurs in each passage."""

    def __init__(self, vocabulary: list[str], matrix, lengths: np.ndarray):
        self.vocabulary = vocabulary
        self.column = {term: i for i, term in enumerate(vocabulary)}
        self.matrix = matrix.tocsc()  # a term's passages are one contiguous slice
        self.lengths = lengths

    @classmethod
    def count(cls, texts: Sequence[str]) -> TermCounts:
        return cls.from_terms([tokenize(text) for text in texts])

    @classmethod
    def from_terms(cls, passages: Sequence[Sequence[str]]) -> TermCounts:
        from scipy import sparse

        column: dict[str, int] = {}
        rows, cols = [], []
        lengths = np.zeros(len(passages), dtype=np.float32)
        for row, terms in enumerate(passages):
            terms = terms or [EMPTY]
            lengths[row] = len(terms)
            for term in terms:
                rows.append(row)
                cols.append(column.setdefault(term, len(column)))
        matrix = sparse.coo_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(passages), len(column))
        )
        return cls(list(column), matrix.tocsc(), lengths)  # duplicates summed: term frequencies

    @classmethod
    def stack(cls, parts: Sequence[tuple[TermCounts, np.ndarray]]) -> TermCounts:
        """The chosen rows of several segments' counts as one (for a merge), without tokenising again."""
        from scipy import sparse

        vocabulary: dict[str, int] = {}
        blocks, lengths = [], []
        for counts, rows in parts:
            remap = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in counts.vocabulary], dtype=np.int64)
            block = counts.matrix[rows].tocoo()
            blocks.append((block.data, block.row, remap[block.col], block.shape[0]))
            lengths.append(counts.lengths[rows])
        offset, data, row_ids, col_ids = 0, [], [], []
        for values, block_rows, block_cols, height in blocks:
            data.append(values)
            row_ids.append(block_rows + offset)
            col_ids.append(block_cols)
            offset += height
        matrix = sparse.coo_matrix(
            (
                np.concatenate(data) if data else np.zeros(0, np.float32),
                (
                    np.concatenate(row_ids) if row_ids else np.zeros(0, np.int64),
                    np.concatenate(col_ids) if col_ids else np.zeros(0, np.int64),
                ),
            ),
            shape=(offset, len(vocabulary)),
        )
        return cls(list(vocabulary), matrix, np.concatenate(lengths) if lengths else np.zeros(0, np.float32))

    def save(self, folder: Path) -> None:
        matrix = self.matrix
        np.savez(
            folder / TERMS_FILE,
            data=matrix.data,
            indices=matrix.indices,
            indptr=matrix.indptr,
            shape=np.array(matrix.shape),
            lengths=self.lengths,
        )
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocabulary, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> TermCounts:
        from scipy import sparse

        with np.load(folder / TERMS_FILE) as saved:
            matrix = sparse.csc_matrix((saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"]))
            lengths = saved["lengths"]
        return cls(json.loads((folder / VOCAB_FILE).read_text()), matrix, lengths)

    def live_frequencies(self, live: np.ndarray) -> np.ndarray:
        """Per term of the vocabulary: live passages holding it."""
        per_column = np.diff(self.matrix.indptr)
        columns = np.repeat(np.arange(len(per_column)), per_column)
        return np.bincount(columns[live[self.matrix.indices]], minlength=len(per_column))


class BM25:
    """BM25 over the live passages of several segments, as if they were one corpus (one idf, one mean length)."""

    def __init__(self, parts: Sequence[tuple[TermCounts, np.ndarray]]):
        self.parts = list(parts)  # (counts, live mask)
        self.passages = int(sum(live.sum() for _, live in self.parts))
        total = float(sum(counts.lengths[live].sum() for counts, live in self.parts))
        mean_length = total / self.passages if self.passages else 1.0
        self.doc_freq: dict[str, int] = {}
        self._norms = []
        for counts, live in self.parts:
            frequencies = counts.live_frequencies(live)
            if not self.doc_freq:
                self.doc_freq = dict(zip(counts.vocabulary, frequencies.tolist(), strict=True))
            else:
                get = self.doc_freq.get
                for term, df in zip(counts.vocabulary, frequencies.tolist(), strict=True):
                    self.doc_freq[term] = get(term, 0) + df
            self._norms.append(K1 * (1 - B + B * counts.lengths / mean_length))

    def _idf(self, term: str) -> float:
        return bm25_idf(self.doc_freq.get(term, 0), self.passages)

    def scores(self, terms: Sequence[str], part: int) -> np.ndarray:
        """BM25 score of each passage of one segment (dead passages 0); a term asked twice counts twice."""
        counts, live = self.parts[part]
        result = np.zeros(len(counts.lengths), dtype=np.float32)
        matrix, norm = counts.matrix, self._norms[part]
        for term in terms:
            column = counts.column.get(term)
            if column is None or not self.doc_freq.get(term):
                continue
            span = slice(matrix.indptr[column], matrix.indptr[column + 1])
            rows, tf = matrix.indices[span], matrix.data[span]
            result[rows] += np.float32(self._idf(term)) * tf / (tf + norm[rows])
        result[~live] = 0.0
        return result

    def idf(self, term: str) -> float:
        """Inverse document frequency (BM25's, floored at a small positive value), counted as if the corpus
        had at least MIN_IDF_PASSAGES passages (reader_idf)."""
        return reader_idf(self.doc_freq.get(term, 0), self.passages)


def bm25_idf(df: int, passages: int) -> float:
    """BM25's inverse document frequency of a term held by `df` of `passages` passages (also Qdrant's IDF)."""
    return math.log(1 + (passages - df + 0.5) / (df + 0.5))


def reader_idf(df: int, passages: int) -> float:
    """The idf the reader weighs question terms by: BM25's, floored at a small positive value, counted as if the
    corpus had at least MIN_IDF_PASSAGES passages: in a handful of articles every term would look common, and
    the answer's evidence (calibrated on a news corpus) would be understated."""
    return max(0.05, bm25_idf(df, max(passages, MIN_IDF_PASSAGES)))
