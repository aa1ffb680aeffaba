"""Article -> Sentences and Passages, each with exact [start, end) offsets into the article text."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from qa.types import Article, Passage, Sentence

TokenCounter = Callable[[Sequence[str]], list[int]]
_WORD = re.compile(r"\S+")
# a list item's marker: sentencex leaves a line that opens with "• " (also ●, ▪, ■, ►, ♦) in one piece, however many
# sentences it holds, so the marker is set aside and the rest is split
_LIST_MARKER = re.compile(r"\s*[•●▪■►♦]\s+")


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are cut into passages; recorded in every index manifest."""

    max_tokens: int = 256  # the model's input limit, special tokens included
    special_tokens: int = 2  # [CLS] and [SEP]
    min_text_tokens: int = 64  # passage budget kept even under a very long title
    overlap_sentences: int = 1
    splitter: str = "sentencex-en, list items"

    def __post_init__(self) -> None:
        if self.max_tokens <= self.special_tokens + self.min_text_tokens:
            raise ValueError(f"max_tokens={self.max_tokens} leaves no room for text")
        if not 0 <= self.overlap_sentences < 4:
            raise ValueError(f"overlap_sentences={self.overlap_sentences} must be between 0 and 3")

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_CHUNKING = ChunkSettings()


def embed_text(title: str, passage_text: str) -> str:
    """What is embedded for a passage: the headline gives every passage its article's subject."""
    return f"{title}\n{passage_text}" if title and passage_text else title or passage_text


def split_sentences(text: str, doc_id: str = "") -> list[Sentence]:
    """Sentences of `text`; they never cross a line break and carry no surrounding whitespace."""
    from sentencex import segment

    sentences = []
    line_start = 0
    for line in text.split("\n"):
        marker = _LIST_MARKER.match(line)
        skipped = marker.end() if marker else 0
        cursor = line_start + skipped
        for piece in segment("en", line[skipped:]) if line.strip() else ():
            start, end = cursor, cursor + len(piece)
            cursor = end
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                sentences.append(Sentence(doc_id, start + lead, start + lead + len(stripped)))
        line_start += len(line) + 1
    return sentences


def chunk_article(
    article: Article, count_tokens: TokenCounter, settings: ChunkSettings = DEFAULT_CHUNKING
) -> tuple[list[Passage], list[Sentence]]:
    """Pack whole sentences into passages that fit the model, overlapping by whole sentences. A page kept without
    text (`qa.ingest.make_article`) is one empty passage, found by its headline, with no sentence to quote."""
    text = article.text
    if not text:
        return [Passage(article.doc_id, 0, 0, "")], []
    sentences = _fit_sentences(split_sentences(text, article.doc_id), text, count_tokens, settings, article)
    if not sentences:
        return [], []
    title_tokens = count_tokens([article.title])[0] + 1 if article.title else 0
    budget = max(settings.min_text_tokens, settings.max_tokens - settings.special_tokens - title_tokens)
    lengths = count_tokens([text[s.start : s.end] for s in sentences])

    passages = []
    first = 0
    while first < len(sentences):
        last, used = first, lengths[first]
        while last + 1 < len(sentences) and used + lengths[last + 1] <= budget:
            last += 1
            used += lengths[last]
        start, end = sentences[first].start, sentences[last].end
        passages.append(Passage(article.doc_id, start, end, text[start:end]))
        if last + 1 >= len(sentences):
            break
        # Overlap by whole sentences, but always move forward.
        first = max(first + 1, last + 1 - settings.overlap_sentences)
    return passages, sentences


def _fit_sentences(
    sentences: list[Sentence], text: str, count_tokens: TokenCounter, settings: ChunkSettings, article: Article
) -> list[Sentence]:
    """Cut sentences longer than a passage budget at word boundaries, so every passage fits."""
    limit = settings.max_tokens - settings.special_tokens - settings.min_text_tokens
    lengths = count_tokens([text[s.start : s.end] for s in sentences]) if sentences else []
    fitted = []
    for sentence, length in zip(sentences, lengths, strict=True):
        if length <= limit:
            fitted.append(sentence)
            continue
        words = [m.span() for m in _WORD.finditer(text, sentence.start, sentence.end)]
        word_tokens = count_tokens([text[a:b] for a, b in words])
        piece_start, used = words[0][0], 0
        previous_end = words[0][1]
        for (a, b), tokens in zip(words, word_tokens, strict=True):
            if used and used + tokens > limit:
                fitted.append(Sentence(article.doc_id, piece_start, previous_end))
                piece_start, used = a, 0
            used += tokens
            previous_end = b
        fitted.append(Sentence(article.doc_id, piece_start, previous_end))
    return fitted
