"""python -m qa eval: retrieval and answer quality on a question set, scored as the RealTime QA README says."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer import AnswerSettings, ask_many, default_reader_model, verify_phrase, verify_quote
from qa.backend import SearchIndex
from qa.embed import Embedder
from qa.errors import QAError
from qa.retrieve import DEFAULT_RETRIEVAL, RetrievalSettings
from qa.types import Answer

_PUNCT = re.compile(r"[^\w\s]|_")
MAX_QUOTE_CHARS = 600


@dataclass
class Question:
    question: str
    question_date: str | None = None
    answer_text: str | None = None
    gold_doc_ids: tuple[str, ...] = ()
    gold_urls: tuple[str, ...] = ()
    answer_in_gold_article: bool = False
    unanswerable: bool = False


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation to spaces, whitespace collapsed."""
    return " ".join(_PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())


def read_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise QAError(f"questions file not found: {path}")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(
                Question(
                    question=str(record["question"]),
                    question_date=record.get("question_date"),
                    answer_text=record.get("answer_text"),
                    gold_doc_ids=tuple(record.get("gold_doc_ids") or ()),
                    gold_urls=tuple(record.get("gold_urls") or ()),
                    answer_in_gold_article=bool(record.get("answer_in_gold_article")),
                    unanswerable=bool(record.get("unanswerable")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise QAError(f"{path}:{number}: expected a JSON object with a 'question'") from None
    return questions


def ranked_articles(generation: SearchIndex, answer: Answer) -> list[str]:
    """Distinct doc_ids in rank order; copies of a story count at the rank of the hit that names them."""
    ranked: list[str] = []
    for hit in answer.passages:
        for doc_id in (hit.doc_id, *hit.also_in):
            if doc_id not in ranked:
                ranked.append(doc_id)
    return ranked


def quotes_contain(answer: Answer, expected: str, first_only: bool = False) -> bool:
    quotes = [c.quote for c in answer.citations[: 1 if first_only else None]]
    if sum(len(q) for q in quotes) > MAX_QUOTE_CHARS:
        return False
    return contains(" ".join(quotes), expected)


def contains(text: str, expected: str) -> bool:
    """The expected answer, normalised, as whole words of the normalised text."""
    target = normalize(expected)
    return bool(target) and f" {target} " in f" {normalize(text)} "


def evaluate(
    generation: SearchIndex,
    embedder: Embedder,
    questions: list[Question],
    top_k: int = 10,
    retrieval: RetrievalSettings = DEFAULT_RETRIEVAL,
    answering: AnswerSettings | None = None,
    progress: bool = False,
    with_details: bool = False,
) -> dict:
    """Metrics over the questions; each metric is computed only over the questions that carry its fields.
    `with_details` adds one row per question (`details`) so that failures can be read."""
    answers: list[Answer] = []
    batches = range(0, len(questions), 16)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="questions", unit="batch")
    for i in batches:
        batch = questions[i : i + 16]
        for q in batch:  # one at a time, as a user asks: latency is per question
            started = time.perf_counter()
            answer = ask_many(generation, embedder, [q.question], top_k, None, [q.question_date], retrieval, answering)[
                0
            ]
            answer.latency_ms = (time.perf_counter() - started) * 1000
            answers.append(answer)
    result = score(generation, questions, answers)
    fitted = default_reader_model().fitted_on
    if fitted:  # what the reader was fitted on, and its figures by cross-validation there
        result["reader_fitted_on"] = fitted
    if with_details:
        result["details"] = details(generation, questions, answers)
    return result


def details(generation: SearchIndex, questions: list[Question], answers: list[Answer]) -> list[dict]:
    """Per question: the gold answer, the first quote, the answer phrase, the gold article's rank, abstained."""
    rows = []
    for q, answer in zip(questions, answers, strict=True):
        ranked = ranked_articles(generation, answer)[:10]
        gold = set(q.gold_doc_ids)
        rank = next((r for r, d in enumerate(ranked, start=1) if d in gold), None) if gold else None
        first = answer.citations[0].quote if answer.citations else ""
        rows.append(
            {
                "question": q.question,
                "gold": q.answer_text if not q.unanswerable else None,
                "unanswerable": q.unanswerable,
                "first_quote": first,
                "answer_phrase": answer.answer_phrase.text if answer.answer_phrase else None,
                "gold_article_rank": rank,
                "abstained": answer.abstained,
                "right": (not answer.abstained and bool(q.answer_text and quotes_contain(answer, q.answer_text)))
                if not q.unanswerable
                else answer.abstained,
            }
        )
    return rows


def score(generation: SearchIndex, questions: list[Question], answers: list[Answer]) -> dict:
    url_to_doc: dict[str, str] = {}
    gold_ranks = []
    in_quote, in_first, in_phrase = [], [], []
    abstained_answerable = []
    wrong_unanswerable = []
    quotes = verified = 0
    for q, answer in zip(questions, answers, strict=True):
        for c in answer.citations:
            quotes += 1
            verified += verify_quote(generation, c)
        gold = set(q.gold_doc_ids)
        if q.gold_urls and not gold:
            if not url_to_doc:
                url_to_doc = {a.url: a.doc_id for a in generation.iter_articles()}
            gold = {url_to_doc[u] for u in q.gold_urls if u in url_to_doc}
        if gold:
            ranked = ranked_articles(generation, answer)[:10]
            gold_ranks.append(next((r for r, d in enumerate(ranked, start=1) if d in gold), None))
        if q.unanswerable:
            quoted = q.answer_text is not None and quotes_contain(answer, q.answer_text)
            wrong_unanswerable.append(not answer.abstained and not quoted)
        else:
            abstained_answerable.append(answer.abstained)
            if q.answer_in_gold_article and q.answer_text:
                in_quote.append(not answer.abstained and quotes_contain(answer, q.answer_text))
                in_first.append(not answer.abstained and quotes_contain(answer, q.answer_text, first_only=True))
                phrase = answer.answer_phrase
                in_phrase.append(not answer.abstained and phrase is not None and contains(phrase.text, q.answer_text))
    latencies = np.array([a.latency_ms for a in answers]) if answers else np.zeros(1)
    result: dict[str, float] = {"questions": len(questions)}
    if gold_ranks:
        result.update(
            {
                "with_gold": len(gold_ranks),
                "hits@1": _share(r is not None and r <= 1 for r in gold_ranks),
                "hits@5": _share(r is not None and r <= 5 for r in gold_ranks),
                "hits@10": _share(r is not None and r <= 10 for r in gold_ranks),
                "mrr@10": round(float(np.mean([1.0 / r if r else 0.0 for r in gold_ranks])), 3),
            }
        )
    if in_quote:
        result.update(
            {
                "answer_in_quote": _share(in_quote),
                "answer_in_first_quote": _share(in_first),
                "answer_in_phrase": _share(in_phrase),
                "answer_in_quote_n": len(in_quote),
            }
        )
    if abstained_answerable:
        result["abstained_answerable"] = _share(abstained_answerable)
    if wrong_unanswerable:
        result["wrong_unanswerable"] = _share(wrong_unanswerable)
    answered = [a for a in answers if not a.abstained]
    phrases = [a.answer_phrase for a in answered if a.answer_phrase is not None]
    result["quotes"] = quotes
    result["quotes_verified"] = round(verified / quotes, 3) if quotes else 1.0
    result["quotes_per_answer"] = round(quotes / len(answered), 2) if answered else 0.0
    result["answers_with_phrase"] = _share(a.answer_phrase is not None for a in answered)
    result["phrase_words_mean"] = round(float(np.mean([len(p.text.split()) for p in phrases])), 2) if phrases else 0.0
    result["phrases_verified"] = (
        _share(
            verify_phrase(generation, a.answer_phrase, a.citations[0]) for a in answered if a.answer_phrase is not None
        )
        if phrases
        else 1.0
    )
    result["latency_ms_p50"] = round(float(np.percentile(latencies, 50)), 1)
    result["latency_ms_p95"] = round(float(np.percentile(latencies, 95)), 1)
    return result


def _share(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else 0.0
