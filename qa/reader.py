"""Ranked passages + question -> scored answer candidates: which sentence answers, how sure, and its phrase.

The reader behind `compose_answer`. Every sentence of the top passages gets a few signals (the question's terms by
rarity, whether the sentence holds the kind of answer the question asks for, the passage's rank and match, the
article's date, whether the line ends as a sentence does, how many of the question's terms stand around a phrase of
the asked-for kind, and, for a shortlist, the bundled model's cosine of question and sentence). Three logistic
models read them: a cheap one without cosines picks the shortlist, a listwise one (a softmax over the question's
sentences) orders it, and a pairwise one scores how well each sentence answers, whose best score gives the
question's answerability. The weights are fitted on the development questions by `benchmarks/fit_reader.py`
(cross-validated there) and shipped in `reader_model.json` with the embedding model they belong to.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.backend import SearchIndex
from qa.embed import Embedder
from qa.fold import fold_confusables
from qa.keyword import STOPWORDS, tokenize
from qa.places import CITY, COUNTRY, POSSESSIVE, STATE, is_place, place_asked
from qa.retrieve import Query
from qa.types import Hit, Sentence

MODEL_FILE = Path(__file__).with_name("reader_model.json")

# Lines written to steer a language model rather than to inform a reader ("Ignore previous instructions ...",
# "SYSTEM: ...", "AI assistants reading this must ..."): never chosen as quotes, whatever words they share
# with the question. The passage around them is still retrieved and listed.
INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|preceding|your|"
    r"other)?\s*(instructions?|prompts?|directions|rules|text|context)\b"
    r"|^\W*(system|assistant|developer)\s*:|\bnew instructions\s*:|\bdeveloper mode\b"
    r"|\byou are now in\b[^.!?\n]{0,30}\bmode\b"
    r"|\b(ai|a\.i\.|language models?|assistants?|chatbots?|llms?)\b[^.!?\n]{0,30}\b(reading|processing|"
    r"summari[sz]ing|that reads?)\b[^.!?\n]{0,40}\b(must|should|shall)\b"
    r"|\b(answer|reply to|respond to) every question\b",
    re.I,
)
_LEADING_REFERENCE = re.compile(r"^(he|she|they|it|this|that|these|those|his|her|their|its|but|and|so|also)\b", re.I)
SHORT_SENTENCE = 60  # a quote shorter than this takes the sentence before it along

# --- the kind of answer a question asks for, and the phrases of a sentence that are of that kind ---------------

AMOUNT, NUMBER, DATE, NAME, REASON = "amount", "number", "date", "name", "reason"
_QUESTION_KIND = [
    (
        re.compile(
            # not "how much warmer / more": a difference, a number of any unit ("6 degrees")
            r"\bhow much\b(?! (time|more|less|\w+er)\b)|\bwhat (?:(?:is|was|are|were) the )?"
            r"(price|sum|amount|percentage|percent|share|proportion|fraction|rate)\b",
            re.I,
        ),
        AMOUNT,
    ),
    (
        re.compile(
            r"\bhow (many|much|long|old|far|tall|big|large|fast|high|hot|cold|deep|often)\b|\b(what|which) "
            r"(?:(?:is|was|are|were) the )?(percentage|percent|share|number|amount|proportion|fraction|price|sum|age|"
            r"rate|total|temperature|score|rating|speed|distance|size|height|weight|margin|magnitude|population)\b",
            re.I,
        ),
        NUMBER,
    ),
    (
        re.compile(
            r"^\W*when\b|\bwhat (year|day|date|month|time)\b|\bwhich (year|day|date|month)\b|\bwhen (did|does|"
            r"do|is|was|will|were|are)\b|\b(by|since|until|till) when\b",
            re.I,
        ),
        DATE,
    ),
    (
        re.compile(
            # "what company", "at what Harbour City venue" (a name may stand between), "what is her name"
            r"\b(who|whom|whose|where|which)\b|\bwhat (?-i:[A-Z][\w-]*\s+)?(company|companies|country|countries|"
            r"city|cities|state|states|team|firm|group|organi[sz]ation|agency|party|person|man|woman|country's|nation|"
            r"place|town|region|province|county|show|film|movie|book|song|album|series|brand|airline|university|"
            r"college|school|court|venue|stadium|arena|theat(?:er|re)|hospital|restaurant|network|newspaper|"
            r"magazine)\b|\bwhat (?:is|was) (?:his|her|their|its|the) name\b",
            re.I,
        ),
        NAME,
    ),
    (
        re.compile(
            r"^\W*why\b|\bwhy (did|does|do|is|was|were|are|has|have|had|would|will)\b|\bfor what reason\b"
            r"|\bwhat (caused|causes|led to|prompted)\b|\bwhat (?:(?:was|is|were|are) the )?(reason|cause|motive)s?\b",
            re.I,
        ),
        REASON,
    ),
]
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE_SPAN = re.compile(
    rf"\b(?:{_WEEKDAY},?\s+)?{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"
    rf"|\b(?:{_WEEKDAY},?\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b(?:,?\s+\d{{4}})?"
    rf"|\b(?:early |late |mid-?)?{_MONTH}\.?(?:,?\s+(?:1[89]|20)\d{{2}})\b"
    rf"|\b(?:in |since |by |until )(?:early |late |mid-?)?{_MONTH}\b(?!\.?,?\s+\d)"  # not "until June 12"
    # a time: "a.m." needs no word boundary after it, for it may end the sentence ("at 6:40 a.m.")
    rf"|\b(?:1[89]|20)\d{{2}}s?\b|\b{_WEEKDAY}\b|\b\d{{1,2}}(?::\d{{2}})?\s?(?:[ap]\.m\.|[ap]m\b)"
    r"|\b(?:yesterday|today|tonight|tomorrow|(?:last|next) (?:week|month|year|night)"
    r"|this (?:week|month|year|morning))\b"
)
_SCALE_NAMES = ("thousand", "million", "billion", "trillion", "hundred", "bn", "m", "k", "percent", "per cent")
_SCALE = rf"(?:{'|'.join(_SCALE_NAMES)}|%)"
_NUMBER_WORDS = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundreds|thousands|millions|billions|dozens?|a dozen|half)"
)
_CURRENCY_NAMES = "dollars? euros? pounds? yuan yen rupees? pesos? cents? francs? rubles? roubles?".split()
_CURRENCY = rf"(?:{'|'.join(_CURRENCY_NAMES)}|won)"
_NUMBER_SPAN = re.compile(
    rf"(?:[$€£¥]|US\$|Rs\.?\s?|\b(?-i:[A-Z]{{1,4}})-)?(?!\d[\d,]*(?:st|nd|rd|th)\b)\d[\d,]*(?:\.\d+)?(?:\s?-\s?\d[\d,]*(?:\.\d+)?)?(?:\s?{_SCALE}\b|%)?"
    # a number word is a whole word: not the "four" of "fourth", the "Ten" of "Tenby" or the "half" of "halftime"
    rf"(?:\s{_CURRENCY}\b)?|\b{_NUMBER_WORDS}\b(?:[\s-]+{_NUMBER_WORDS}\b)*(?:\s{_SCALE}\b)?(?:\s{_CURRENCY}\b)?",
    re.I,
)
# "one of the skippers", "one in four boats", "1 in every 40 crews": a part or a ratio, no count (either number)
_PARTITIVE_ONE = re.compile(r"one\s+of\b", re.I)
_RATIO = re.compile(
    rf"(?<![$€£¥.,])\b(?:one|two|three|four|five|six|seven|eight|nine|ten|\d{{1,2}})\s+in\s+(?:every\s+)?"
    rf"(?!(?:19|20)\d\d\b)(?:\d|{_NUMBER_WORDS}\b)",  # not "12 in 2024", nor "$5 in 10 payments"
    re.I,
)
# what makes a number an amount ("how much"): money, a share, or a scale
_MONEY_MARK = rf"[$€£¥]|\bRs\b|\b{_CURRENCY}\b"
_AMOUNT_MARK = re.compile(
    rf"{_MONEY_MARK}|%|\b(?:percent|per cent|thousand|million|billion|trillion|bn|m|k)\b",
    re.I,
)
# "how much did it cost": money, not a count of viewers that happens to run into millions
_MONEY_ASKED = re.compile(
    r"\bhow much\b.*\b(cost|costs|pay|paid|spend|spent|charge|charged|raise|raised|earn|earned|worth|fund|"
    r"donate|donated|pledge|pledged|price|fine|fined|owe|owed|sell|sold|invest|invested|budget|salary|bring|"
    r"brought|money)\b",
    re.I,
)
_MONEY = re.compile(_MONEY_MARK, re.I)
# a question that counts money ("how many dollars"): a currency named, but not "won" ("how many games have they won")
_MONEY_NAMED = re.compile(rf"[$€£¥]|\b(?:{'|'.join(_CURRENCY_NAMES)})\b", re.I)
_COUNT_ASKED = re.compile(r"\bhow many\b", re.I)
_SHARE = re.compile(r"%|\bper ?cent", re.I)
_AGE_ASKED = re.compile(r"\bhow old\b|\bage\b|\baged\b", re.I)
_JOINER = r"(?:of|the|de|da|del|van|von|al|bin|for|and|on|in)"  # a small word inside a name ("Bank of the West")
_OPENING_QUOTES, _CLOSING_QUOTES = "“\"‘'", "”\"’'"
_NAME_SPAN = re.compile(
    rf"(?:[{_OPENING_QUOTES}])?\b[A-Z][\w’'.&-]*(?:\s+(?:{_JOINER}\s+){{0,2}}[A-Z][\w’'.&-]*)*"
    rf"(?:[{_CLOSING_QUOTES}])?"
)


# a cause and the clause it opens: "because of a late frost", "due to storms in the Gulf"
_REASON = re.compile(
    r"\b(because(?: of)?|due to|owing to|caused by|as a result of|thanks to|in order to|so that|in response to|"
    r"amid|citing|blamed (?:it )?on|attributed (?:it )?to|to protest|in protest (?:of|at|against|over)|"
    r"following|in the wake of|(?:triggered|sparked|driven|prompted|fueled|fuelled) by|(?:stemming|resulting) "
    r"from|(?:needed|meant|designed|intended) to|to help|aimed at)"
    r"\s+((?:[^,;:.!?()\"“”]|[.,](?=\d)){3,120})",  # up to the clause's end, not a number's ("$3.7 million")
    re.I,
)
_NUMBER_SIGN = re.compile(r"Nos?\.\s*\d")
# an abbreviation in capitals ("HCBL", "U.S.", "ATVs", "TV’s"): seldom the name a "who" or "which" asks for
_ACRONYM = re.compile(r"(?:[A-Z]\.?){2,5}(?:[’']?s)?")
_CALENDAR_WORD = re.compile(rf"{_WEEKDAY}|{_MONTH}\.?", re.I)
# a sentence's dateline or agency tag: "PORT ELLIS (Agency) -", "(Agency)"
_HEADING = re.compile(r"^\s*(?:\([A-Z][\w .&-]{0,24}\)|[A-Z][A-Z .,'’-]{1,40}(?:\s*\([^)]{1,30}\))?\s*[-–—])")
# the same in title case, "Lisbon (Agency)": only where the words before the brackets name a place (not a team
# and its club, "Harbour Lights (Tenby Rovers)", nor a company and its ticker)
_TITLE_DATELINE = re.compile(r"^\s*([A-Z][\w.’'-]*(?:\s+[A-Z][\w.’'-]*){0,3})\s*\([A-Z][A-Za-z .&-]{0,28}\)\s*[-–—]?")
# how a written sentence ends; a line without it is a headline, a link to another story ("More: ..."), a list
# item or a lead-in ending in a colon, seldom what answers
_SENTENCE_END = re.compile(r"[.!?][\"”’')\]]*\s*$")
_YEAR = re.compile(r"\b(?:1[89]|20)\d{2}\b")
_SCALE_WORDS = frozenset(word for name in _SCALE_NAMES for word in name.split())  # skipped after a number
_NEXT_WORD = re.compile(r"\s+([A-Za-z][\w-]*)")


_AUXILIARY = frozenset("is are was were be been being has have had do does did will would can could".split())
# pronouns and determiners: capitalised where they open a sentence, a headline or a quote, and never a name
_FUNCTION_WORDS = (
    STOPWORDS
    | _AUXILIARY
    | frozenset("i me my we us our you your him its them this those".split())
    | frozenset("everything everyone everybody something someone somebody anything anyone nothing nobody".split())
)
_CONTRACTION = re.compile(r"[’'](?:m|s|re|ve|ll|d)$|n[’']t$", re.I)  # "I'm", "We've", "Don't"
_WHERE = re.compile(
    r"\bwhere\b|\b(which|what) (country|countries|city|cities|state|states|place|town|region|"
    r"province|county)\b|\b(at|near|outside|inside) (which|what)\b",
    re.I,
)
# a question that asks for a work's title: news writes titles in quotation marks
_TITLE_ASKED = re.compile(
    r"\b(?:which|what)\s+(?:[\w-]+\s+)?(?:film|movie|show|series|song|album|book|novel|play|documentary)\b", re.I
)
_SAYS_AFTER = re.compile(r"[”\"’']?,?\s+(said|says|told|wrote|added)\b", re.I)
_ACCORDING_BEFORE = re.compile(r"\baccording to\s+(the\s+)?$", re.I)
# not "to": "a loss to the Gulls", "up to $8,000"
_PLACE_BEFORE = re.compile(r"\b(in|at|on|near|from|across|outside|inside)\s+(the\s+)?$", re.I)
# the question asks for a person or organisation ("Who ...", "..., who ...", "by whom ...")
_PERSON_ASKED = re.compile(
    r"^\W*(?:who|whom|whose)\b|[,;:]\s*(?:who|whom|whose)\b|\b(?:by|to|with|for|from) whom\b", re.I
)
_IN_PLACE = re.compile(r"\b(?:in|near)\s+$", re.I)  # "riders in Port Ellis"; not "in the Harbour Council"


def question_kind(question: str) -> str | None:
    """The kind of phrase a question asks for (a number or amount, a date, a name or place), or None."""
    for pattern, kind in _QUESTION_KIND:
        if pattern.search(question):
            return kind
    return None


def answer_spans(text: str, kind: str | None, question: str, opens_with_name: bool = False) -> list[tuple[int, int]]:
    """Spans of `text` of the asked-for kind that the question does not already hold, in order. `opens_with_name`:
    the sentence's first word is a name (its article writes it capitalised inside a sentence too, `opening_name`)."""
    if kind is None:
        return []
    asked = _question_words(question)
    if kind in (NUMBER, AMOUNT):
        no_count = _date_spans(text) + _ratio_spans(text)  # "March 3, 2024" holds no count, nor "one in four"
        money, count, age = _number_asked(question)
        found = [
            m.span()
            for m in _NUMBER_SPAN.finditer(text)
            if not any(s <= m.start() < e or s < m.end() <= e for s, e in no_count)
            and (kind == NUMBER or _AMOUNT_MARK.search(m.group()))
            and not (money and not (_MONEY.search(m.group()) or _SHARE.search(m.group())))
            and not (count and (_SHARE.search(m.group()) or _MONEY.search(m.group())))  # "how many": not 38% or $5
            and (age or not _is_age(text, *m.span()))
            and not _PARTITIVE_ONE.match(text, m.start())
        ]
    elif kind == DATE:
        found = list(_date_spans(text))
    elif kind == REASON:  # what follows "because of", "due to" ... up to the end of its clause
        found = [m.span(2) for m in _REASON.finditer(text)]
    else:
        heading = _HEADING.match(text) or _dateline(text)  # "PORT ELLIS (Agency) —": where and by whom, not what
        person = _PERSON_ASKED.search(question) is not None
        found = [
            (s, e)
            for s, e, opens in _name_spans(text)
            if s < e
            # a sentence's first word, unless quoted whole (a title: "“Harbour” won ...", not "“The island ...") or
            # known to be a name
            and not (
                opens and " " not in text[s:e] and not _quoted_whole(text, s, e) and not (s == 0 and opens_with_name)
            )
            and not (heading and e <= heading.end())
            and not (_function_words_only(text[s:e]) and not _quoted_whole(text, s, e))
            and not _NUMBER_SIGN.match(text, s)  # "No. 7 seed"
            # "who" asks for a person or an organisation: "riders in Port Ellis" names a place
            and not (person and _IN_PLACE.search(text, max(0, s - 8), s))
        ]
    subject = _names_given(question)
    spans = []
    for start, end in found:
        words = _words(text[start:end])
        if kind == NAME and (_last_word(text[start:end]) in subject or _DATE_SPAN.fullmatch(text[start:end])):
            continue  # "Foreign Minister Ishaq Dar" does not answer "who did Dar call?", nor "Saturday" a "who"
        if words and not words <= asked and any(c.isalnum() for c in text[start:end]):
            start, end = _trim(text, start, end)
            if kind == NUMBER:  # "how many new trees": the count and its unit ("2,000 new trees")
                end = _with_unit(text, end, question)
            spans.append((start, end))
    return spans


def _dateline(text: str) -> re.Match[str] | None:
    """A title-case dateline that opens the sentence, "Lisbon (Agency)", or None."""
    found = _TITLE_DATELINE.match(text)
    return found if found and any(is_place(found.group(1), kind) for kind in (CITY, STATE, COUNTRY)) else None


_OPENING_WORD = re.compile(r"[“\"‘']?([A-Z][\w-]*)")


def opening_name(sentence: str, article: str) -> str | None:
    """The sentence's first word when it is a name: one the article also writes capitalised after a lower-case
    word or a comma, inside a sentence ("Marlow opened the line ..." and "... and Marlow runs six boats")."""
    first = _OPENING_WORD.match(sentence)
    word = first.group(1) if first else ""
    if not word or word.lower() in STOPWORDS or word.lower() in _AUXILIARY:
        return None
    at = article.find(" " + word)
    while at > 0:
        end = at + 1 + len(word)
        if (article[at - 1].islower() or article[at - 1] in ",;") and not (
            end < len(article) and (article[end].isalnum() or article[end] in "-_")
        ):
            return word
        at = article.find(" " + word, at + 1)
    return None


# the words a full stop ends inside a name, not its sentence: titles, "St. Louis", AP style's state names ...
_ABBREVIATIONS = frozenset(
    "Mr Mrs Ms Dr Prof Gov Govs Sen Sens Rep Reps Lt Gen Col Capt Sgt Cmdr Adm Maj Rev Hon Pres Atty Supt St Mt Ft "
    "Jr Sr Bros Ave Blvd Rd Inc Co Corp Ltd Dept Univ No Ala Ariz Ark Calif Colo Conn Del Fla Ga Ill Ind Kan Ky La "
    "Md Mass Mich Minn Miss Mo Mont Neb Nev Okla Ore Pa Tenn Vt Va Wash Wis Wyo".split()
)
_FULL_STOP = re.compile(r"([\w’'&-]+)\.\s+")


def _name_runs(text: str) -> Iterator[tuple[int, int, bool]]:
    """The capitalised runs of a sentence, each with whether it opens a sentence, cut where a full stop that
    ends no abbreviation ends a sentence inside a run (a quote of two: "... Harbour Lights. And we ..."; not
    "Gov. Ana Ruiz" or "U.S. Senate")."""
    for m in _NAME_SPAN.finditer(text):
        start = m.start()
        if "." not in m.group():  # most runs: no full stop to read
            yield start, m.end(), start == 0
            continue
        for stop in _FULL_STOP.finditer(text, m.start(), m.end()):
            word = stop.group(1)
            if len(word) > 1 and word not in _ABBREVIATIONS:
                yield start, stop.end(1), start == 0 or start > m.start()
                start = stop.end()
        yield start, m.end(), start == 0 or start > m.start()


# Each sentence of the top passages is read for a phrase of the asked-for kind, and for names whatever the kind:
# what depends on the sentence alone, or on the question alone, is worked out once (the reader's candidates took
# 10 to 14 ms a question, a quarter of an answer's time; about a fifth less with these remembered).


@lru_cache(maxsize=8192)
def _name_spans(text: str) -> tuple[tuple[int, int, bool], ...]:
    """The capitalised runs of a sentence without the weekdays and months at their ends (some empty), each with
    whether it opens a sentence (as found, before those words are left out)."""
    spans = []
    for start, end, opens in _name_runs(text):
        words = text[start:end].split()  # starting and ending with a word: most hold no weekday or month at either
        if _CALENDAR_WORD.fullmatch(words[0].strip(_OPENING_QUOTES)) or _CALENDAR_WORD.fullmatch(
            words[-1].strip(_CLOSING_QUOTES + ",.")
        ):
            trimmed = _without_calendar_words(text, start, end)
            spans.append((*trimmed, opens and trimmed[0] == start))
        else:
            spans.append((start, end, opens))
    return tuple(spans)


@lru_cache(maxsize=8192)
def _date_spans(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(m.span() for m in _DATE_SPAN.finditer(text))


@lru_cache(maxsize=8192)
def _ratio_spans(text: str) -> tuple[tuple[int, int], ...]:
    """A ratio's two numbers ("one in four", "1 in every 40"), as far as its second number's end."""
    spans = []
    for m in _RATIO.finditer(text):
        second = _NUMBER_SPAN.match(text, m.end() - 1) if text[m.end() - 1].isdigit() else None
        spans.append((m.start(), second.end() if second else m.end()))
    return tuple(spans)


@lru_cache(maxsize=256)
def _number_asked(question: str) -> tuple[bool, bool, bool]:
    """Whether a number question asks for money, a count (not a share, not a sum: "how many dollars" is not one)
    and an age."""
    money = bool(_MONEY_ASKED.search(question))
    count = bool(_COUNT_ASKED.search(question) and not _SHARE.search(question) and not _MONEY_NAMED.search(question))
    return money, count, bool(_AGE_ASKED.search(question))


@lru_cache(maxsize=256)
def _question_words(question: str) -> frozenset[str]:
    return frozenset(_words(question))


def _words(text: str) -> set[str]:
    """A text's words, lower-cased."""
    return {w.lower() for w in re.findall(r"\w+", text)}


@lru_cache(maxsize=256)
def _names_given(question: str) -> frozenset[str]:
    """The capitalised words of a question but its first: the names it gives, lower-cased."""
    return frozenset(w.lower() for w in re.findall(r"\b[A-Z]\w+", question)[1:])


def _is_age(text: str, start: int, end: int) -> bool:
    """A number set off by commas after a name or noun is an age: "Ana Ruiz, 61, said ..."."""
    number = text[start:end].rstrip(",")  # a number's span may take the comma after it along
    after = text[start + len(number) : start + len(number) + 1]
    return (
        bool(re.search(r"[^\W\d_],\s$", text[max(0, start - 3) : start]))
        and after == ","
        and (number.isdigit() and len(number) <= 3)
    )


def _with_unit(text: str, end: int, question: str) -> int:
    """A count's end moved past the words that follow it in the question too: the unit the question names.
    Up to two words, the second only where the question has the two together and not at its very end (the
    verb that closes "how many residents left?")."""
    asked = [w.lower() for w in re.findall(r"[\w'-]+", question)]
    taken: list[str] = []
    for _ in range(2):
        unit = _NEXT_WORD.match(text, end)
        if unit is None:
            break
        word = unit.group(1).lower()
        if len(word) < 3 or word in _AUXILIARY or word not in asked:
            break
        if taken:
            i = asked.index(taken[-1])
            if i + 2 >= len(asked) or asked[i + 1] != word:
                break
        taken.append(word)
        end = unit.end()
    return end


def _without_calendar_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A name span without the weekdays and months at its ends: "Sue Bird Sunday" is "Sue Bird"."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and _CALENDAR_WORD.fullmatch(words[-1].group().strip(_CLOSING_QUOTES + ",.")):
        words.pop()
        while words and re.fullmatch(_JOINER, words[-1].group()):  # "the Aces on [Sunday]"
            words.pop()
    while words and _CALENDAR_WORD.fullmatch(words[0].group().strip(_OPENING_QUOTES)):
        words.pop(0)
    if not words:
        return start, start
    return start + words[0].start(), start + words[-1].end()


def _quoted_whole(text: str, start: int, end: int) -> bool:
    return text[start] in _OPENING_QUOTES and text[end - 1] in _CLOSING_QUOTES


@lru_cache(maxsize=8192)
def _function_words_only(span: str) -> bool:
    """A capitalised run of pronouns, determiners and the like ("Your", "And I", "We've"), not a name; a word in
    capitals is an abbreviation ("US", "IT")."""
    words = [_CONTRACTION.sub("", w) for w in span.strip(_OPENING_QUOTES + _CLOSING_QUOTES + ",.").split()]
    return all(w.lower() in _FUNCTION_WORDS and not (len(w) > 1 and w.isupper()) for w in words)


def _last_word(span: str) -> str:
    words = re.findall(r"\w+", span)
    return words[-1].lower() if words else ""


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t,":
        start += 1
    # the sentence's full stop, not an abbreviation's ("U.S.", "6 p.m.")
    while end > start and text[end - 1] in " \t,." and not re.search(r"\b(?:[A-Za-z]\.){2,}$", text[start:end]):
        end -= 1
    # a quotation mark at one end only is the quoted passage's, not the name's: “Harbour Lights: The Return,” and
    # "Ana from Tenby," give “Harbour Lights and "Ana, shown as Harbour Lights and Ana
    if end - start > 1 and (text[start] in _OPENING_QUOTES) != (text[end - 1] in _CLOSING_QUOTES):
        if text[start] in _OPENING_QUOTES:
            start += 1
        else:
            end -= 1
    return start, end


# --- candidates and their features --------------------------------------------------------------------------------

FEATURES = (
    "coverage",
    "coverage_gap",
    "neighbours",
    "coverage_neighbours",
    "passage_coverage",
    "slot_coverage",
    "slot_coverage_gap",
    "cosine",
    "cosine_gap",
    "kind_match",
    "kind_missing",
    "new_name",
    "first_rank",
    "rank",
    "dense",
    "date",
    "lead",
    "length",
    "unfinished",
    "unit_match",
    "year_conflict",
)
CHEAP = tuple(f for f in FEATURES if not f.startswith("cosine"))  # the features known before any embedding
SLOT_WORDS = 6  # the words either side of a phrase that `slot_coverage` reads (4, 6, 9 measured: docs/benchmarks.md)


@dataclass
class Candidate:
    """A sentence that may answer: its quote span (with the sentence before it, when it leans on it), the
    question's terms it holds, its features and its probability of holding the answer."""

    doc_id: str
    start: int  # quote offsets into the article text
    end: int
    text: str  # the quote as read; checked against the store again before display
    sentence: str  # the sentence alone, which is what is scored
    sentence_start: int
    rank: int
    terms: frozenset[str] = frozenset()
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0  # the order model's: a score difference is the log-odds of being the answering sentence
    evidence: float = 0.0  # the sentence model's: how well it answers, comparable across questions (answerability)
    # answer-kind spans, article offsets: those the phrase is chosen from (a name may be the sentence's first word
    # here, never in the features, see `candidates_for`)
    phrases: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Reading:
    """What a reader says about one question: its candidates, best first, and how answerable it is."""

    candidates: list[Candidate]
    answerable: float  # probability that the articles answer the question
    kind: str | None = None


class Reader(Protocol):
    def read(self, generation: SearchIndex, queries: Sequence[Query], ranked: Sequence[list[Hit]]) -> list[Reading]:
        """One Reading per query, from its ranked passages."""


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic model over named features, standardised: p = sigmoid(b + w . (x - mean) / scale)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def logit(self, rows: np.ndarray) -> np.ndarray:
        x = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        return x @ np.asarray(self.weights) + self.bias

    def probability(self, rows: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(rows)))

    def as_dict(self) -> dict:
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(
            tuple(data["features"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
            tuple(data["weights"]),
            float(data["bias"]),
        )


# The best sentence's evidence alone. With more (coverage maxima, margin, passage cosine, share of kind matches)
# the fit gave several of them negative weights, true of the evaluation corpus (its unanswerable questions are
# about stories it covers) but not of others: plain questions on the sample corpus were refused. The best cosine
# and the date agreement (which the evidence holds already) added nothing out of fold (ROC AUC natural / RealTime
# QA 0.663 / 0.926 with them, 0.657 / 0.930 without, 5 and 3 fold draws) and, fitted on questions that mostly
# name a period, marked down every question that names none ("Who cut the ribbon at the bridge?" in
# tests/test_reader.py: 0.35 with them). `answerability_row` still gives them, for calibrations saved with them.
ANSWERABILITY = ("best",)


@dataclass(frozen=True)
class ReaderModel:
    """The fitted reader: a cheap sentence model (no embedding) that picks which sentences to embed, the full
    sentence model (pairwise: whose best score tells how answerable the question is), the answerability model,
    the order model (listwise, the same features: which sentence comes first), and the few thresholds chosen by
    cross-validation. A model saved before the order model existed orders by the sentence model."""

    model_id: str  # the embedding model the cosines come from
    cheap: Logistic
    sentence: Logistic
    answerability: Logistic
    min_answerable: float = 0.5  # abstain below this answerability
    min_further: float = 0.5  # a further quote's least odds of answering better than the first, as a probability
    embed_top: int = 12  # sentences embedded per question (by the cheap model's order)
    passages: int = 5  # top passages whose sentences are candidates
    fitted_on: dict = field(default_factory=dict)
    order: Logistic | None = None  # None: ordered by `sentence`

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=1) + "\n")

    def as_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "cheap": self.cheap.as_dict(),
            "sentence": self.sentence.as_dict(),
            "answerability": self.answerability.as_dict(),
            "min_answerable": self.min_answerable,
            "min_further": self.min_further,
            "embed_top": self.embed_top,
            "passages": self.passages,
            "fitted_on": self.fitted_on,
            **({"order": self.order.as_dict()} if self.order else {}),
        }

    @classmethod
    def load(cls, path: str | Path = MODEL_FILE) -> ReaderModel:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, data: dict) -> ReaderModel:
        return cls(
            data["model_id"],
            Logistic.from_dict(data["cheap"]),
            Logistic.from_dict(data["sentence"]),
            Logistic.from_dict(data["answerability"]),
            data["min_answerable"],
            data["min_further"],
            data["embed_top"],
            data["passages"],
            data.get("fitted_on", {}),
            Logistic.from_dict(data["order"]) if "order" in data else None,
        )


def base_model_id(model_id: str) -> str:
    """The model a reader was fitted for, whatever the precision it runs at (int8 and fp32 share weights)."""
    return model_id.removesuffix("-int8")


_WARNED: set[str] = set()


class SentenceReader:
    """The default reader: a fitted logistic model over sentence features (see the module's docstring)."""

    def __init__(self, embedder: Embedder, model: ReaderModel | None = None):
        self.embedder = embedder
        self.model = model or ReaderModel.load()
        fitted_for, used = self.model.model_id, base_model_id(embedder.model_id)
        if fitted_for != used and used not in _WARNED:
            _WARNED.add(used)  # its cosines have another scale: the ranking still works, the thresholds are off
            logging.getLogger(__name__).warning(
                "the reader was fitted for %s, not %s: answers and abstentions may be worse until it is refitted "
                "(benchmarks/fit_reader.py)",
                fitted_for,
                used,
            )

    def read(self, generation: SearchIndex, queries: Sequence[Query], ranked: Sequence[list[Hit]]) -> list[Reading]:
        model = self.model
        pools = [
            candidates_for(generation, q, readable(hits, model.passages))
            for q, hits in zip(queries, ranked, strict=True)
        ]
        # cheap model first, then the bundled model's cosine for the best `embed_top` of each question, in one call
        shortlists = [shortlist(model, pool) for pool in pools]
        add_cosines(self.embedder, queries, shortlists)
        return [score_candidates(model, query, listed) for query, listed in zip(queries, shortlists, strict=True)]


def readable(hits: Sequence[Hit], passages: int) -> list[Hit]:
    """The first `passages` hits that hold text: a page kept by its headline alone has no sentence to read."""
    return [hit for hit in hits if hit.end > hit.start][:passages]


def shortlist(model: ReaderModel, pool: list[Candidate]) -> list[Candidate]:
    """The `embed_top` candidates the cheap model (no cosines) ranks first: the ones worth embedding."""
    if not pool:
        return []
    cheap = model.cheap.logit(feature_rows(pool, model.cheap.features))
    return [pool[i] for i in np.argsort(-cheap, kind="stable")[: model.embed_top]]


def score_candidates(model: ReaderModel, query: Query, listed: list[Candidate]) -> Reading:
    """Scores for a question's shortlisted candidates (cosines known), best first, and its answerability."""
    kind = question_kind(query.question)
    if not listed:
        return Reading([], 0.0, kind)
    evidence = model.sentence.logit(feature_rows(listed, model.sentence.features))
    order = model.order or model.sentence
    scores = evidence if order is model.sentence else order.logit(feature_rows(listed, order.features))
    for candidate, weight, score in zip(listed, evidence, scores, strict=True):
        candidate.evidence, candidate.score = float(weight), float(score)
    listed = sorted(listed, key=lambda c: -c.score)
    row = answerability_row(listed)
    answerable = float(model.answerability.probability(np.array([[row[f] for f in model.answerability.features]]))[0])
    return Reading(listed, answerable, kind)


def answerability_row(ranked: list[Candidate]) -> dict[str, float]:
    """Question-level signals from its candidates, best first."""
    return {
        "best": max(c.evidence for c in ranked),
        "best_cosine": max(c.features["cosine"] for c in ranked),
        "date": ranked[0].features["date"],
    }


def feature_rows(candidates: Sequence[Candidate], names: Sequence[str]) -> np.ndarray:
    return np.array([[c.features[n] for n in names] for c in candidates], dtype=np.float64).reshape(-1, len(names))


def add_cosines(embedder: Embedder, queries: Sequence[Query], shortlists: Sequence[list[Candidate]]) -> None:
    """The bundled model's cosine of each question and each of its shortlisted sentences, in one embedding call."""
    texts = []
    for query, listed in zip(queries, shortlists, strict=True):
        if listed:
            texts.append(query.question)
            texts.extend(c.sentence for c in listed)
    if not texts:
        return
    vectors = embedder.embed(texts)
    row = 0
    for listed in shortlists:
        if not listed:
            continue
        question = vectors[row]
        cosines = vectors[row + 1 : row + 1 + len(listed)] @ question
        row += 1 + len(listed)
        for candidate, cosine in zip(listed, cosines.tolist(), strict=True):
            candidate.features["cosine"] = cosine
        cosine_gaps(listed)


def cosine_gaps(listed: list[Candidate]) -> None:
    """Each candidate's cosine less the best of its shortlist."""
    best = max(c.features["cosine"] for c in listed)
    for candidate in listed:
        candidate.features["cosine_gap"] = candidate.features["cosine"] - best


def candidates_for(generation: SearchIndex, query: Query, hits: list[Hit]) -> list[Candidate]:
    """Every sentence of the passages, with the features known before embedding (cosines are added later)."""
    question_terms = set(tokenize(query.question))
    context_terms = set(tokenize(query.text)) - question_terms
    weights = {t: generation.idf(t) for t in question_terms | context_terms}
    context_total = sum(weights[t] for t in context_terms)
    question_weight = sum(weights[t] for t in question_terms)
    total = question_weight + 0.5 * context_total or 1.0
    asked = question_weight or 1.0  # `slot_coverage` counts the question's own terms only
    kind = question_kind(query.question)
    asked_years = set(_YEAR.findall(query.question))

    article_terms: dict[str, set[str]] = {}  # headline and every retrieved passage of each article
    for hit in hits:
        article = generation.article(hit.doc_id)
        article_terms.setdefault(hit.doc_id, set(tokenize(article.title))).update(
            tokenize(article.text[hit.start : hit.end])
        )
    candidates: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    terms_of: dict[str, set[str]] = {}  # a sentence is read as a candidate and again as its neighbours' neighbour
    for hit in hits:
        article = generation.article(hit.doc_id)
        sentences = generation.sentences(hit.doc_id)
        held = article_terms[hit.doc_id]
        agreement = _date_agreement(generation, query, hit)
        passage_coverage = (
            sum(weights[t] for t in held & question_terms) + sum(weights[t] for t in held & context_terms)
        ) / (total + 0.5 * context_total)
        for index, sentence in enumerate(sentences):
            if not (hit.start <= sentence.start and sentence.end <= hit.end) or (hit.doc_id, sentence.start) in seen:
                continue
            seen.add((hit.doc_id, sentence.start))
            text = article.text[sentence.start : sentence.end]
            if is_instruction(text):  # look-alike letters read as Latin
                continue
            if text not in terms_of:
                terms_of[text] = set(tokenize(text))
            terms = terms_of[text]
            matched = terms & (question_terms | context_terms)
            coverage = (
                sum(weights[t] for t in terms & question_terms) + 0.5 * sum(weights[t] for t in terms & context_terms)
            ) / total
            # the sentences either side often name the subject that the answering sentence leaves out (lines
            # written to steer a model are passed over: a planted line must not lend its words to its neighbours)
            around: set[str] = set()
            for side in (_neighbour(article.text, sentences, index, -1), _neighbour(article.text, sentences, index, 1)):
                if side not in terms_of:
                    terms_of[side] = set(tokenize(side))
                around |= terms_of[side]
            neighbours = sum(weights[t] for t in (around - terms) & question_terms) / total
            spans = answer_spans(text, kind, query.question)
            names = spans if kind == NAME else answer_spans(text, NAME, query.question)
            # the phrases shown, not the models' features: the first word too where the article names it elsewhere
            shown = spans
            if kind == NAME and opening_name(text, article.text):
                shown = answer_spans(text, kind, query.question, opens_with_name=True)
            start, end = _with_neighbour(sentence, sentences, index, text, article.text)
            candidates.append(
                Candidate(
                    hit.doc_id,
                    start,
                    end,
                    article.text[start:end],
                    text,
                    sentence.start,
                    hit.rank,
                    frozenset(matched),
                    {
                        "coverage": coverage,
                        "neighbours": neighbours,
                        "coverage_neighbours": coverage * neighbours,
                        "passage_coverage": passage_coverage,
                        "kind_match": float(bool(spans)),
                        "kind_missing": float(kind is not None and not spans),
                        "new_name": float(bool(names)),
                        "first_rank": float(hit.rank == 1),
                        "rank": 1.0 / hit.rank,
                        "dense": hit.dense_score,
                        "date": agreement,
                        "lead": float(index == 0),
                        "length": math.log(1 + len(text)),
                        "unfinished": float(not _SENTENCE_END.search(text)),
                        "unit_match": float(kind in (NUMBER, AMOUNT) and _unit_named(text, spans, question_terms)),
                        "slot_coverage": max(
                            (sum(weights[t] for t in _slot_terms(text, span) & question_terms) for span in spans),
                            default=0.0,
                        )
                        / asked,
                        "year_conflict": float(_other_years(text, asked_years, kind)),
                    },
                    phrases=[(sentence.start + s, sentence.start + e) for s, e in shown],
                )
            )
    if candidates:
        for name in ("coverage", "slot_coverage"):
            best = max(c.features[name] for c in candidates)
            for c in candidates:
                c.features[f"{name}_gap"] = c.features[name] - best
        for c in candidates:
            c.features.setdefault("cosine", 0.0)
            c.features.setdefault("cosine_gap", 0.0)
    return candidates


def _slot_terms(text: str, span: tuple[int, int]) -> set[str]:
    """The terms of the words either side of a phrase ("... the bridge cost ___ to build"): what the sentence says
    of it. An answering phrase stands among the question's words; a figure or name that the sentence gives about
    another detail of the same story stands among other words, though the sentence as a whole may hold as many
    of the question's."""
    words = [*text[: span[0]].split()[-SLOT_WORDS:], *text[span[1] :].split()[:SLOT_WORDS]]
    return set(tokenize(" ".join(words)))


def _unit_named(text: str, spans: list[tuple[int, int]], question_terms: set[str]) -> bool:
    """A count or amount followed by what the question counts: "how many acres" and "the 1,200-acre park ..."."""
    for start, end in spans:
        digit = re.search(r"\d", text[start:end])  # "PG-13 rating": what follows the number
        start += digit.start() if digit else 0
        following = (w for w in re.findall(r"[^\W\d_]+", text[start : end + 30]) if w.lower() not in _SCALE_WORDS)
        if set(tokenize(next(following, ""))) & question_terms:  # the word right after the number ("acre")
            return True
    return False


def _other_years(text: str, asked_years: set[str], kind: str | None) -> bool:
    """The question names a year and the sentence names only other ones: it tells of another time (a date
    question's answer is another time, so not for it)."""
    if kind == DATE or not asked_years:
        return False
    years = set(_YEAR.findall(text))
    return bool(years) and not years & asked_years


def _neighbour(text: str, sentences: list[Sentence], index: int, step: int) -> str:
    """The nearest sentence before (step -1) or after (+1) that is not a line written to steer a model."""
    index += step
    while 0 <= index < len(sentences):
        words = text[sentences[index].start : sentences[index].end]
        if not is_instruction(words):
            return words
        index += step
    return ""


@lru_cache(maxsize=4096)
def is_instruction(sentence: str) -> bool:
    """A line written to steer a language model, also in look-alike letters (each sentence is read as a
    candidate and again as a neighbour: remembered)."""
    return bool(INSTRUCTION.search(fold_confusables(sentence)))


def _date_agreement(generation: SearchIndex, query: Query, hit: Hit) -> float:
    """1 when the question names a period and the hit's article is from it, 0 when it is not; 0.5 when the
    question names no period (nothing known either way)."""
    timeframe = query.timeframe
    if timeframe is None or not timeframe.explicit:
        return 0.5
    day = generation.facts(hit.doc_id).day  # -1: undated
    return float(timeframe.start.toordinal() <= day <= timeframe.end.toordinal())


def _with_neighbour(
    sentence: Sentence, sentences: list[Sentence], index: int, text: str, article_text: str
) -> tuple[int, int]:
    """A quote that leans on the previous sentence ("He said ...") or is very short takes it along, unless that
    sentence is a line written to steer a model: it is never quoted, not even as context."""
    start, end = sentence.start, sentence.end
    if index > 0 and (_LEADING_REFERENCE.match(text) or len(text) < SHORT_SENTENCE):
        previous = sentences[index - 1]
        if (
            sentence.start - previous.end <= 2
            and "\n" not in article_text[previous.end : sentence.start]  # same paragraph: a line is not glued on
            and not is_instruction(article_text[previous.start : previous.end])
        ):
            start = previous.start
    return start, end


def _places(text: str, question: str, place: str) -> list[tuple[int, int]]:
    """The country (or city) names of a sentence that the question does not give, its first word too ("Portugal
    has ...": the first word is no name for `answer_spans`, which cannot tell)."""
    asked = _question_words(question)
    spans = []
    for run_start, run_end, _ in _name_runs(text):
        start, end = _trim(text, run_start, run_end)
        if start < end and is_place(text[start:end], place) and not _words(text[start:end]) <= asked:
            possessive = POSSESSIVE.search(text, start, end)  # "Portugal's": the country is "Portugal"
            spans.append((start, possessive.start() if possessive else end))
    return spans


def answer_phrase(candidate: Candidate, question: str) -> tuple[int, int] | None:
    """The phrase of a quote that answers: of the asked-for kind, nearest the question's words in the sentence."""
    sentence = candidate.sentence
    phrases = candidate.phrases
    asked_place = place_asked(question)  # "which country ...": a country's name, not a president's
    if asked_place is not None:
        phrases = [
            (candidate.sentence_start + s, candidate.sentence_start + e)
            for s, e in _places(sentence, question, asked_place)
        ]
    if not phrases:
        return None
    anchors = [
        m.start() + candidate.sentence_start
        for m in re.finditer(r"\w+", sentence)
        if set(tokenize(m.group())) & candidate.terms
    ]
    kind = question_kind(question)
    where = bool(_WHERE.search(question))
    title = bool(_TITLE_ASKED.search(question))
    given = _names_given(question)
    sentence_start = candidate.sentence_start

    def distance(span: tuple[int, int]) -> float:
        near = min(min(abs(a - span[0]), abs(a - span[1])) for a in anchors)
        # "where" asks for a place, "who" for a person or organisation: a name after "in", "at" ... is a place
        start, end = span[0] - sentence_start, span[1] - sentence_start
        words = sentence[start:end]
        place = bool(_PLACE_BEFORE.search(sentence[max(0, start - 12) : start]))
        place = place or is_place(words, COUNTRY) or is_place(words, STATE)
        # who said it is seldom what was asked: "..., the weather office said", "according to the agency"
        source = bool(
            _SAYS_AFTER.match(sentence, end) or _ACCORDING_BEFORE.search(sentence[max(0, start - 16) : start])
        )
        # half of it names the question gives ("Port Ellis Rovers'" for "which team beat Port Ellis?"): a restatement
        capitalised = [w.lower() for w in re.findall(r"\b[A-Z]\w*", words)]
        restated = 2 * sum(w in given for w in capitalised) >= len(capitalised) > 0
        # a title in quotation marks, or the part of one before its colon ("“Harbour Lights: The Return”")
        quoted = bool(words) and (words[0] in _OPENING_QUOTES or (start > 0 and sentence[start - 1] in _OPENING_QUOTES))
        return (
            near
            + (0 if place == where else 200)
            + (100 if source else 0)
            + (400 if restated else 0)  # the last resort
            + (100 if title and not quoted else 0)
            + (50 if kind == NAME and _ACRONYM.fullmatch(words.strip()) else 0)
        )

    chosen = min(phrases, key=distance) if anchors else phrases[0]
    if kind in (NUMBER, AMOUNT):
        chosen = _with_hedge(candidate, _with_counted_thing(candidate, chosen, question))
    return chosen


# the words that say a figure is not exact, or a bound: "about 300", "more than $6.3 million", "up to 12"
_HEDGE_BEFORE = re.compile(
    r"\b(?:about|around|roughly|nearly|almost|approximately|some|over|under|at least|at most|up to|more than|"
    r"less than|fewer than|an estimated)\s+$",
    re.I,
)


def _with_hedge(candidate: Candidate, span: tuple[int, int]) -> tuple[int, int]:
    """A count or amount with the word before it that makes it approximate or a bound ("about 300 people", not
    "300 people"): the phrase says no more than the quote does. The phrase shown only."""
    start = span[0] - candidate.sentence_start
    before = max(0, start - 20)
    hedge = _HEDGE_BEFORE.search(candidate.sentence[before:start])
    return span if hedge is None else (candidate.sentence_start + before + hedge.start(), span[1])


_PLURAL_WORDS = frozenset("people children men women staff police personnel".split())


def _with_counted_thing(candidate: Candidate, span: tuple[int, int], question: str) -> tuple[int, int]:
    """A bare count that a "how many" question gets, with the thing it counts when the sentence names it right
    after: "3,200 people" (for "how many residents ...?"), "two pumping stations". Up to two lower-case words, the
    last of them a plural; the phrase shown only (the models read the spans as `answer_spans` gives them)."""
    if not _COUNT_ASKED.search(question):
        return span
    text, offset = candidate.sentence, candidate.sentence_start
    last = _last_word(text[span[0] - offset : span[1] - offset])
    if not (last[-1:].isdigit() or re.fullmatch(_NUMBER_WORDS, last) or last in _SCALE_WORDS):
        return span  # a unit is there already ("2,000 new trees")
    end = span[1] - offset
    for _ in range(2):
        following = _NEXT_WORD.match(text, end)
        if following is None:
            break
        word = following.group(1)
        if not word.islower() or word in STOPWORDS or word in _AUXILIARY:
            break
        end = following.end()
        if word in _PLURAL_WORDS or (word.endswith("s") and not word.endswith(("ss", "us", "is"))):
            return span[0], offset + end
    return span
