"""Ranked passages -> an Answer made of verified verbatim quotes with [n] citations, or an abstention."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

from qa.backend import SearchIndex
from qa.embed import Embedder, RememberingEmbedder
from qa.fold import fold_invisible
from qa.reader import INSTRUCTION, Candidate, Reader, ReaderModel, Reading, SentenceReader, answer_phrase
from qa.retrieve import DEFAULT_RETRIEVAL, Query, RetrievalSettings, make_query, retrieve_many
from qa.timeframe import asked_since, mentions_time, parse_date
from qa.types import Answer, Citation, Hit, Phrase

NOT_FOUND = "The indexed articles do not answer this question."
# The reader's best sentence is from an article older than the time asked about (_of_the_time).
TOO_OLD = "The closest answer comes from an article published on {published}, before the time the question asks about."
_INSTRUCTION = INSTRUCTION  # lines never quoted (the reader skips them)


@dataclass(frozen=True)
class AnswerSettings:
    """How many quotes an answer holds, and when it abstains; the thresholds default to the fitted reader's."""

    max_quotes: int = 3
    max_chars: int = 600  # all quotes together
    quotes_per_article: int = 3
    new_terms: bool = True  # a further quote from a quoted article must add a question term or an asked-for phrase
    kind_needed: bool = True  # a question asking for a count, a date ... abstains when the first quote holds none
    written_after: bool = True  # a question about a time after the first quote's article abstains (_of_the_time)
    min_answerable: float | None = None  # abstain below this answerability (None: the reader model's)
    min_further: float | None = None  # a further quote's least probability of answering (None: the model's)

    def __post_init__(self) -> None:
        if not 1 <= self.max_quotes <= 5 or self.max_chars < 50:
            raise ValueError(f"max_quotes={self.max_quotes}, max_chars={self.max_chars} out of range")


DEFAULT_ANSWERING = AnswerSettings()
# Answerability a follow-up asked alone needs over its reading with the conversation to be the answer given.
FOLLOW_UP_MARGIN = 0.0


@lru_cache(maxsize=1)
def default_reader_model() -> ReaderModel:
    """The reader fitted on the development questions for the bundled model (qa/reader_model.json): what a
    build stores in the index manifest, with the model it was fitted for."""
    return ReaderModel.load()


_CALIBRATIONS: dict[tuple[str, str], ReaderModel] = {}


def reader_model_for(generation: SearchIndex) -> ReaderModel:
    """The reader calibration stored with the index (its manifest's "reader"), else the bundled one."""
    stored = generation.manifest.get("reader")
    if not stored:
        return default_reader_model()
    key = (generation.name, generation.manifest.get("built_at", ""))
    if key not in _CALIBRATIONS:
        if len(_CALIBRATIONS) > 16:
            _CALIBRATIONS.clear()
        _CALIBRATIONS[key] = ReaderModel.from_dict(stored)
    return _CALIBRATIONS[key]


def verify_quote(generation: SearchIndex, citation: Citation) -> bool:
    """True when the quote is exactly the stored article text at the offsets it cites."""
    try:
        text = generation.article(citation.doc_id).text
    except KeyError:
        return False
    return 0 <= citation.start < citation.end <= len(text) and text[citation.start : citation.end] == citation.quote


def ask_many(
    generation: SearchIndex,
    embedder: Embedder,
    questions: Sequence[str],
    top_k: int = 10,
    histories: Sequence[Sequence[str]] | None = None,
    asked_on: Sequence[str | date | None] | None = None,
    retrieval: RetrievalSettings = DEFAULT_RETRIEVAL,
    answering: AnswerSettings | None = None,
    reader: Reader | None = None,
) -> list[Answer]:
    """Answer each question from its top passages; `histories` and `asked_on` go with each question."""
    started = time.perf_counter()
    answering = answering or DEFAULT_ANSWERING
    embedder = RememberingEmbedder(embedder)  # a question is embedded once, for retrieval and for the reader
    reader = reader or SentenceReader(embedder, reader_model_for(generation))
    default_day = default_asked_on(generation)
    today = date.today()
    queries, owners = [], []  # owners[k]: the question query k answers
    for i, question in enumerate(questions):
        question = fold_invisible(question)  # zero-width and other invisible characters split no word
        day = parse_date(asked_on[i]) if asked_on and asked_on[i] else None
        history = [fold_invisible(earlier) for earlier in histories[i]] if histories else ()
        # Without a stated asked-on date only time words in the question (this week, in June) count:
        # "today" says nothing about which period a question on a static corpus is about.
        now_known = day is not None or default_day == today
        query = make_query(question, history, day or default_day, retrieval, day is not None, now_known)
        queries.append(query)
        owners.append(i)
        if query.text != question:  # read as a follow-up: also asked alone, the better supported answer wins
            queries.append(make_query(question, (), day or default_day, retrieval, day is not None, now_known))
            owners.append(i)
    ranked = retrieve_many(generation, embedder, queries, max(top_k, 10), retrieval)
    readings = reader.read(generation, queries, ranked)
    shared_ms = (time.perf_counter() - started) * 1000 / max(1, len(questions))
    answers: list[Answer] = []
    for owner, query, hits, reading in zip(owners, queries, ranked, readings, strict=True):
        composed = time.perf_counter()
        answer = compose_answer(generation, query, hits, reading, answering, _model_of(reader))
        answer.passages = answer.passages[:top_k]
        answer.latency_ms = shared_ms + (time.perf_counter() - composed) * 1000
        if owner == len(answers):  # owners run 0, 0, 1, 2, 2, ...: a question's first reading
            answers.append(answer)
        else:  # read with the conversation first; alone when its evidence is stronger (a new subject)
            earlier = answers[owner]
            answer.latency_ms += earlier.latency_ms
            earlier.latency_ms = answer.latency_ms
            if (earlier.abstained and not answer.abstained) or (
                answer.evidence > earlier.evidence + FOLLOW_UP_MARGIN and not answer.abstained
            ):
                answers[owner] = answer
    return answers


def ask(
    generation: SearchIndex,
    embedder: Embedder,
    question: str,
    top_k: int = 10,
    history: Sequence[str] = (),
    asked_on: str | date | None = None,
) -> Answer:
    """Answer one question; `history` is the conversation's earlier questions (oldest first),
    `asked_on` the date the question is asked on (default: today, or the newest article's date)."""
    return ask_many(generation, embedder, [question], top_k, [history], [asked_on])[0]


def default_asked_on(generation: SearchIndex) -> date:
    """Today, unless the corpus ends earlier: then its newest article's date."""
    newest = generation.newest_date()
    today = date.today()
    return newest if newest is not None and newest < today else today


def _model_of(reader: Reader) -> ReaderModel | None:
    return getattr(reader, "model", None)


def compose_answer(
    generation: SearchIndex,
    query: Query | str,
    hits: list[Hit],
    reading: Reading,
    settings: AnswerSettings | None = None,
    model: ReaderModel | None = None,
) -> Answer:
    """Quote the sentences the reader ranks first, verbatim with [n], or abstain when it finds no answer."""
    settings = settings or DEFAULT_ANSWERING
    model = model or reader_model_for(generation)
    if isinstance(query, str):
        query = make_query(query)
    min_answerable = model.min_answerable if settings.min_answerable is None else settings.min_answerable
    min_further = model.min_further if settings.min_further is None else settings.min_further
    if (
        not reading.candidates
        or reading.answerable < min_answerable
        or (settings.kind_needed and _kind_missing(reading, query.question))
    ):
        return Answer(query.question, NOT_FOUND, True, [], hits, evidence=reading.answerable)
    if settings.written_after:
        published, reading = _of_the_time(generation, reading, query)
        if published is not None:
            said = f"{NOT_FOUND} {TOO_OLD.format(published=published)}"
            return Answer(query.question, said, True, [], hits, evidence=reading.answerable)
    candidates = reading.candidates

    chosen: list[Candidate] = []
    used = 0
    for candidate in candidates:
        if len(chosen) == settings.max_quotes:
            break
        length = candidate.end - candidate.start
        if used + length > settings.max_chars or (chosen and _beats(candidate, chosen[0]) < min_further):
            continue
        if any(c.doc_id == candidate.doc_id and c.start < candidate.end and candidate.start < c.end for c in chosen):
            continue
        if sum(c.doc_id == candidate.doc_id for c in chosen) >= settings.quotes_per_article:
            continue
        if settings.new_terms and _adds_nothing(candidate, chosen):
            continue
        chosen.append(candidate)
        used += length

    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    for candidate in chosen:
        article = generation.article(candidate.doc_id)
        n = numbers.setdefault(candidate.doc_id, len(numbers) + 1)
        citation = Citation(
            n,
            article.doc_id,
            article.title,
            article.url,
            article.publish_date,
            article.source,
            candidate.text,
            candidate.start,
            candidate.end,
        )
        if verify_quote(generation, citation):  # a quote that does not match its source is never shown
            citations.append(citation)
    if not citations:
        return Answer(query.question, NOT_FOUND, True, [], hits, evidence=reading.answerable)
    phrase = _phrase(generation, chosen[0], citations[0], query.question)
    text = " ".join(f"“{c.quote}” [{c.n}]" for c in citations)
    if phrase is not None:
        text = f"**{phrase.text}** — {text}"
    return Answer(query.question, text, False, citations, hits, evidence=reading.answerable, answer_phrase=phrase)


def _kind_missing(reading: Reading, question: str) -> bool:
    """The question asks for a kind of phrase (a count, a sum, a date, a name, a reason) and the sentence the reader
    ranks first, the one that would be quoted first, holds none: what the articles say of the story is not what was
    asked (a look-alike question: "why did she resign?" and the sentence that she did). A country or city asked
    for counts as its sentence's first word too ("Portugal opened ..."), which is no name otherwise."""
    first = reading.candidates[0]
    return reading.kind is not None and not first.phrases and answer_phrase(first, question) is None


def _of_the_time(generation: SearchIndex, reading: Reading, query: Query) -> tuple[str | None, Reading]:
    """The question asks what happened at a time after the article of the first quote was published ("Who was
    indicted in 2023?" and an article of 2022), and the sentence does not speak of that time: the article cannot
    tell what happened then (a follow-up the corpus does not hold), so that article's date, for the verdict to
    say. Otherwise the reading without the sentences of such older articles, which as further quotes would say
    nothing of the time asked about. A question that looks ahead ("where will they play in November?") is not
    read so: an earlier article may give a plan or a schedule."""
    # time words ("this week") only against the day of asking: a corpus that ended earlier has no "this week"
    # its reader knows of, though retrieval prefers its last days for them
    asked = asked_since(query.question, query.asked_on if query.now_known else None)
    if asked is None:
        return None, reading
    dates = {c.doc_id: parse_date(generation.article(c.doc_id).publish_date) for c in reading.candidates}

    def older(candidate: Candidate) -> bool:
        published = dates[candidate.doc_id]
        return published is not None and published < asked and not mentions_time(candidate.text, asked)

    first = reading.candidates[0]
    if older(first):
        return str(dates[first.doc_id]), reading
    return None, replace(reading, candidates=[c for c in reading.candidates if not older(c)])


def _phrase(generation: SearchIndex, candidate: Candidate, first: Citation, question: str) -> Phrase | None:
    """The answering phrase of the first quote, verified like the quote: inside it, and the stored text."""
    if (candidate.doc_id, candidate.start, candidate.end) != (first.doc_id, first.start, first.end):
        return None
    span = answer_phrase(candidate, question)
    if span is None:
        return None
    phrase = Phrase(generation.article(first.doc_id).text[span[0] : span[1]], first.doc_id, *span)
    return phrase if verify_phrase(generation, phrase, first) else None


def verify_phrase(generation: SearchIndex, phrase: Phrase, first: Citation) -> bool:
    """True when the phrase lies inside the first quote and is the stored article text at its offsets."""
    inside = phrase.doc_id == first.doc_id and first.start <= phrase.start < phrase.end <= first.end
    return inside and verify_quote(
        generation, Citation(0, phrase.doc_id, "", "", None, "", phrase.text, phrase.start, phrase.end)
    )


def _beats(candidate: Candidate, best: Candidate) -> float:
    """The reader's odds, as a probability, that the candidate answers better than the best one."""
    return 1.0 / (1.0 + math.exp(min(50.0, best.score - candidate.score)))


def _adds_nothing(candidate: Candidate, chosen: list[Candidate]) -> bool:
    """A further quote from an article already quoted that holds none of the question's terms the quotes before
    it lack, nor a phrase of the kind the question asks for: it says nothing more about the question (a line
    planted in the article, a repeated point). A sentence with such a phrase may be the answer in other words."""
    same_article = [c for c in chosen if c.doc_id == candidate.doc_id]
    return (
        bool(same_article)
        and candidate.terms <= frozenset().union(*(c.terms for c in chosen))
        and not candidate.phrases
    )
