"""Ranked passages -> an Answer made of verified verbatim quotes with [n] citations."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from qa.embed import Embedder
from qa.retrieve import retrieve_many
from qa.store import Generation
from qa.types import Answer, Citation, Hit

NOT_FOUND = "The indexed articles do not answer this question."
_TOKEN = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by did do does for from had has have he her his how in is it its of on or she "
    "that the their they this to was were what when where which who whom why will with".split()
)


def verify_quote(generation: Generation, citation: Citation) -> bool:
    """True when the quote is exactly the stored article text at the offsets it cites."""
    try:
        text = generation.article(citation.doc_id).text
    except KeyError:
        return False
    return 0 <= citation.start < citation.end <= len(text) and text[citation.start : citation.end] == citation.quote


def ask_many(
    generation: Generation,
    embedder: Embedder,
    questions: Sequence[str],
    top_k: int = 10,
    histories: Sequence[Sequence[str]] | None = None,
    asked_on: Sequence[str | None] | None = None,
) -> list[Answer]:
    """Answer each question with the best-matching sentence of its best passage, quoted and cited."""
    answers = []
    for question, hits in zip(questions, retrieve_many(generation, embedder, questions, top_k), strict=True):
        started = time.perf_counter()
        answers.append(compose_answer(generation, question, hits))
        answers[-1].latency_ms = (time.perf_counter() - started) * 1000
    return answers


def ask(
    generation: Generation,
    embedder: Embedder,
    question: str,
    top_k: int = 10,
    history: Sequence[str] = (),
    asked_on: str | None = None,
) -> Answer:
    """Answer one question; `history` is the conversation's earlier questions (oldest first),
    `asked_on` the ISO date the question is asked on (default: today)."""
    started = time.perf_counter()
    answer = ask_many(generation, embedder, [question], top_k, [history], [asked_on])[0]
    answer.latency_ms = (time.perf_counter() - started) * 1000
    return answer


def compose_answer(generation: Generation, question: str, hits: list[Hit]) -> Answer:
    if not hits:
        return Answer(question, NOT_FOUND, True, [], hits)
    best = hits[0]
    article = generation.article(best.doc_id)
    candidates = [s for s in generation.sentences(best.doc_id) if best.start <= s.start and s.end <= best.end]
    words = _keywords(question)
    sentence = max(candidates, key=lambda s: len(words & _keywords(article.text[s.start : s.end])), default=None)
    start, end = (sentence.start, sentence.end) if sentence else (best.start, best.end)
    citation = Citation(1, article.doc_id, article.title, article.url, article.publish_date, article.source,
                        article.text[start:end], start, end)
    if not verify_quote(generation, citation):
        return Answer(question, NOT_FOUND, True, [], hits)
    return Answer(question, f"“{citation.quote}” [1]", False, [citation], hits)


def _keywords(text: str) -> set[str]:
    return {w for w in _TOKEN.findall(text.lower()) if w not in _STOP}
