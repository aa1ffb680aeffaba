"""Ranked passages -> an Answer made of verified verbatim quotes with [n] citations, or an abstention."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from qa.embed import Embedder
from qa.fold import fold_confusables
from qa.keyword import tokenize
from qa.retrieve import Query, RetrievalSettings, make_query, retrieve_many
from qa.store import Generation
from qa.timeframe import parse_date
from qa.types import Answer, Citation, Hit, Sentence

NOT_FOUND = "The indexed articles do not answer this question."
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                     r"fifty|dozens?|hundreds?|thousands?|millions?|billions?|trillions?|half|twice|triple|double)\b", re.I)
_NUMERIC_QUESTION = re.compile(r"\b(how (many|much|long|old|far|tall|big|fast)|what (percentage|percent|number|year|age))\b", re.I)
_NAME_OR_NUMBER = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w’'-]+|\d[\d,.]*")
# Lines written to steer a language model rather than to inform a reader ("Ignore previous instructions ...",
# "SYSTEM: ...", "AI assistants reading this must ..."): never chosen as quotes, whatever words they share
# with the question. The passage around them is still retrieved and listed.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|preceding|your|"
    r"other)?\s*(instructions?|prompts?|directions|rules|text|context)\b"
    r"|^\W*(system|assistant|developer)\s*:|\bnew instructions\s*:|\bdeveloper mode\b|\byou are now in\b[^.!?\n]{0,30}\bmode\b"
    r"|\b(ai|a\.i\.|language models?|assistants?|chatbots?|llms?)\b[^.!?\n]{0,30}\b(reading|processing|"
    r"summari[sz]ing|that reads?)\b[^.!?\n]{0,40}\b(must|should|shall)\b|\b(answer|reply to|respond to) every question\b",
    re.I)
_LEADING_REFERENCE = re.compile(r"^(he|she|they|it|this|that|these|those|his|her|their|its|but|and|so|also)\b", re.I)


@dataclass(frozen=True)
class AnswerSettings:
    """How quotes are chosen, and when the evidence is too weak to answer; calibrated on dev."""

    passages: int = 5  # top passages whose sentences are candidates
    max_quotes: int = 3
    max_chars: int = 600  # all quotes together
    rank_decay: float = 0.15  # share of weight lost from the first to the last candidate passage
    passage_weight: float = 0.5  # how much the whole passage's match (title included) counts
    min_evidence: float = 1.5  # abstain below this evidence score (calibrated for MiniLM: docs/benchmarks.md)
    date_evidence: float = 0.5  # weight of the date agreement in the evidence score
    passage_evidence: bool = True  # coverage counts the best sentence's passage, not only the sentence
    short_sentence: int = 60  # a quote shorter than this takes its neighbour along
    min_relative: float = 0.5  # a further quote scores at least this share of the best one
    quotes_per_article: int = 3
    novelty_weight: float = 0.0  # bonus for a sentence bringing names or numbers the question lacks
    new_terms: bool = True  # a further quote must hold a question term no earlier quote holds

    def __post_init__(self) -> None:
        if not 1 <= self.max_quotes <= 5 or self.max_chars < 50:
            raise ValueError(f"max_quotes={self.max_quotes}, max_chars={self.max_chars} out of range")


DEFAULT_ANSWERING = AnswerSettings()  # calibrated for the bundled all-MiniLM-L6-v2
# Evidence a follow-up asked alone needs over its reading with the conversation to be the answer given
# (dev, each question after all the earlier ones in one chat: 0 gave answer in quote 0.718, 0.1 gave 0.671).
FOLLOW_UP_MARGIN = 0.0


@dataclass(frozen=True)
class Candidate:
    doc_id: str
    start: int
    end: int
    text: str  # the words as read and scored; checked against the store again before display
    score: float
    coverage: float  # share of the question's terms (by rarity) in the sentence
    passage_coverage: float  # ... and in the headline and retrieved passages of its article
    rank: int
    terms: frozenset[str] = frozenset()  # the question's (and conversation's) terms the sentence holds


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
    asked_on: Sequence[str | date | None] | None = None,
    retrieval: RetrievalSettings = RetrievalSettings(),
    answering: AnswerSettings | None = None,
) -> list[Answer]:
    """Answer each question from its top passages; `histories` and `asked_on` go with each question."""
    started = time.perf_counter()
    answering = answering or DEFAULT_ANSWERING
    default_day = default_asked_on(generation)
    queries, owners = [], []  # owners[k]: the question query k answers
    for i, question in enumerate(questions):
        day = parse_date(asked_on[i]) if asked_on and asked_on[i] else None
        history = histories[i] if histories else ()
        # Without a stated asked-on date only time words in the question (this week, in June) count:
        # "today" says nothing about which period a question on a static corpus is about.
        query = make_query(question, history, day or default_day, retrieval, dated=day is not None)
        queries.append(query)
        owners.append(i)
        if query.text != question:  # read as a follow-up: also asked alone, the better supported answer wins
            queries.append(make_query(question, (), day or default_day, retrieval, dated=day is not None))
            owners.append(i)
    ranked = retrieve_many(generation, embedder, queries, max(top_k, answering.passages), retrieval)
    shared_ms = (time.perf_counter() - started) * 1000 / max(1, len(questions))
    answers: list[Answer | None] = [None] * len(questions)
    for owner, query, hits in zip(owners, queries, ranked, strict=True):
        composed = time.perf_counter()
        answer = compose_answer(generation, query, hits, answering)
        answer.passages = answer.passages[:top_k]
        answer.latency_ms = shared_ms + (time.perf_counter() - composed) * 1000
        earlier = answers[owner]
        if earlier is None:
            answers[owner] = answer
        else:  # read with the conversation first; alone when its evidence is stronger (a new subject)
            answer.latency_ms += earlier.latency_ms
            earlier.latency_ms = answer.latency_ms
            if (earlier.abstained and not answer.abstained) or (
                    answer.evidence > earlier.evidence + FOLLOW_UP_MARGIN and not answer.abstained):
                answers[owner] = answer
    return answers


def ask(
    generation: Generation,
    embedder: Embedder,
    question: str,
    top_k: int = 10,
    history: Sequence[str] = (),
    asked_on: str | date | None = None,
) -> Answer:
    """Answer one question; `history` is the conversation's earlier questions (oldest first),
    `asked_on` the date the question is asked on (default: today, or the newest article's date)."""
    return ask_many(generation, embedder, [question], top_k, [history], [asked_on])[0]


def default_asked_on(generation: Generation) -> date:
    """Today, unless the corpus ends earlier: then its newest article's date."""
    newest = generation.newest_date()
    today = date.today()
    return newest if newest is not None and newest < today else today


def compose_answer(
    generation: Generation, query: Query | str, hits: list[Hit], settings: AnswerSettings | None = None
) -> Answer:
    """Pick the sentences that answer, quote them verbatim with [n], or abstain when evidence is weak."""
    settings = settings or DEFAULT_ANSWERING
    if isinstance(query, str):
        query = make_query(query)
    candidates = _score_sentences(generation, query, hits[: settings.passages], settings)
    evidence = evidence_score(generation, query, hits, candidates, settings)
    if not candidates or evidence < settings.min_evidence:
        return Answer(query.question, NOT_FOUND, True, [], hits, evidence=evidence)

    chosen: list[Candidate] = []
    used = 0
    for candidate in candidates:
        if len(chosen) == settings.max_quotes:
            break
        length = candidate.end - candidate.start
        if used + length > settings.max_chars or candidate.score < settings.min_relative * candidates[0].score:
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
        citation = Citation(n, article.doc_id, article.title, article.url, article.publish_date, article.source,
                            candidate.text, candidate.start, candidate.end)
        if verify_quote(generation, citation):  # a quote that does not match its source is never shown
            citations.append(citation)
    if not citations:
        return Answer(query.question, NOT_FOUND, True, [], hits, evidence=evidence)
    text = " ".join(f"“{c.quote}” [{c.n}]" for c in citations)  # exactly this: the web chat relies on it
    return Answer(query.question, text, False, citations, hits, evidence=evidence)


def _adds_nothing(candidate: Candidate, chosen: list[Candidate]) -> bool:
    """A further quote from an article already quoted that holds none of the question's terms the quotes before
    it lack: it says nothing more about the question (a line planted in the article, a repeated point)."""
    same_article = [c for c in chosen if c.doc_id == candidate.doc_id]
    return bool(same_article) and candidate.terms <= frozenset().union(*(c.terms for c in chosen))


def evidence_score(generation: Generation, query: Query, hits: list[Hit], candidates: list[Candidate],
                   settings: AnswerSettings = DEFAULT_ANSWERING) -> float:
    """How strongly the articles support an answer (0..~2.5): the best passages' cosine, the best sentence's
    share of the question's terms, and whether the best article is from the period the question names."""
    if not hits or not candidates:
        return 0.0
    best = candidates[0]
    coverage = max(best.coverage, best.passage_coverage) if settings.passage_evidence else best.coverage
    return (max(h.dense_score for h in hits[:3]) + coverage
            + settings.date_evidence * date_agreement(generation, query, hits[0]))


def date_agreement(generation: Generation, query: Query, hit: Hit) -> float:
    """1 when the question names a period and the best article is from it, 0 when it is not; 0.5 when the
    question names no period (nothing known either way)."""
    timeframe = query.timeframe
    if timeframe is None or not timeframe.explicit:
        return 0.5
    day = int(generation.article_day[generation.passage_article[hit.passage_id]])
    return float(timeframe.start.toordinal() <= day <= timeframe.end.toordinal())


def _score_sentences(generation: Generation, query: Query, hits: list[Hit], settings: AnswerSettings) -> list[Candidate]:
    question_terms = set(tokenize(query.question))
    context_terms = set(tokenize(query.text)) - question_terms
    keyword = generation.keyword
    weights = {t: keyword.idf(t) for t in question_terms | context_terms}
    context_total = sum(weights[t] for t in context_terms)
    total = sum(weights[t] for t in question_terms) + 0.5 * context_total or 1.0
    numeric = bool(_NUMERIC_QUESTION.search(query.question))
    question_words = {w.lower() for w in _NAME_OR_NUMBER.findall(query.text)}

    candidates: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    article_terms: dict[str, set[str]] = {}  # headline and every retrieved passage of each article
    for hit in hits:
        article = generation.article(hit.doc_id)
        article_terms.setdefault(hit.doc_id, set(tokenize(article.title))).update(
            tokenize(article.text[hit.start : hit.end]))
    for hit in hits:
        article = generation.article(hit.doc_id)
        sentences = generation.sentences(hit.doc_id)
        passage_terms = article_terms[hit.doc_id]
        # the conversation's subject must be in the passage, if not in the very sentence
        passage_cover = (sum(weights[t] for t in passage_terms & question_terms) + sum(
            weights[t] for t in passage_terms & context_terms)) / (total + 0.5 * context_total)
        passage_factor = (1 - settings.passage_weight + settings.passage_weight * passage_cover) * (
            1.0 - settings.rank_decay * (hit.rank - 1) / max(1, len(hits)))
        for index, sentence in enumerate(sentences):
            if not (hit.start <= sentence.start and sentence.end <= hit.end) or (hit.doc_id, sentence.start) in seen:
                continue
            seen.add((hit.doc_id, sentence.start))
            text = article.text[sentence.start : sentence.end]
            if _INSTRUCTION.search(fold_confusables(text)):  # look-alike letters read as Latin
                continue
            terms = set(tokenize(text))
            matched = sum(weights[t] for t in terms & question_terms) + 0.5 * sum(
                weights[t] for t in terms & context_terms)
            coverage = matched / total
            score = coverage * passage_factor
            if numeric and _NUMBER.search(text):  # "how much/many ...": a sentence with a number
                score *= 1.2
            if settings.novelty_weight:
                novel = {w for w in _NAME_OR_NUMBER.findall(text) if w.lower() not in question_words}
                score *= 1.0 + settings.novelty_weight * min(1.0, len(novel) / 2)
            start, end = _with_neighbour(sentence, sentences, index, text, settings, article.text)
            candidates.append(Candidate(hit.doc_id, start, end, article.text[start:end], score, coverage,
                                        passage_cover, hit.rank, frozenset(terms & (question_terms | context_terms))))
    candidates.sort(key=lambda c: -c.score)
    return candidates


def _with_neighbour(sentence: Sentence, sentences: list[Sentence], index: int, text: str,
                    settings: AnswerSettings, article_text: str = "") -> tuple[int, int]:
    """A quote that leans on the previous sentence ("He said ...") or is very short takes it along."""
    start, end = sentence.start, sentence.end
    if index > 0 and (_LEADING_REFERENCE.match(text) or len(text) < settings.short_sentence):
        previous = sentences[index - 1]
        if sentence.start - previous.end <= 2 and "\n" not in article_text[previous.end : sentence.start]:
            # same paragraph only: a line of its own is never glued to the line before
            start = previous.start
    return start, end
