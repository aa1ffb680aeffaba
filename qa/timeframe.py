"""Dates in questions: the asked-on date, and the period a question refers to ("this week", "in June")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_MONTHS = {
    m: i
    for i, m in enumerate(
        "january february march april may june july august september october november december".split(), start=1
    )
}
_MONTH_RE = re.compile(r"\b(?:in|during|since|of|last|this)\s+(" + "|".join(_MONTHS) + r")\b(?:\s+(\d{4}))?", re.I)
_YEAR_RE = re.compile(r"\b(?:in|during|of)\s+((?:19|20)\d{2})\b", re.I)
_RELATIVE = [
    (re.compile(r"\b(today|tonight|this morning)\b", re.I), 1),
    (re.compile(r"\b(yesterday)\b", re.I), 2),
    (re.compile(r"\b(this|past|last) week(end)?\b", re.I), 8),
    (re.compile(r"\b(recently|recent|latest|newly|just|this month|past month|last few weeks)\b", re.I), 31),
    (re.compile(r"\bthis year\b", re.I), 366),
]


@dataclass(frozen=True)
class Timeframe:
    """The period [start, end] (inclusive) a question is about; `explicit` when the question names it."""

    start: date
    end: date
    explicit: bool

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def parse_date(value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    match = re.search(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", value)
    if not match:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def question_timeframe(question: str, asked_on: date, default_days: int) -> Timeframe:
    """The period the question refers to; without a time expression, the `default_days` before asking."""
    month = _MONTH_RE.search(question)
    if month:
        number = _MONTHS[month.group(1).lower()]
        year = int(month.group(2)) if month.group(2) else asked_on.year - (number > asked_on.month)
        start = date(year, number, 1)
        end = (date(year + (number == 12), number % 12 + 1, 1)) - timedelta(days=1)
        return Timeframe(start, min(end, asked_on), True)
    if re.search(r"\blast month\b", question, re.I):
        first = asked_on.replace(day=1)
        end = first - timedelta(days=1)
        return Timeframe(end.replace(day=1), end, True)
    year_match = _YEAR_RE.search(question)
    if year_match:
        number = int(year_match.group(1))
        return Timeframe(date(number, 1, 1), min(date(number, 12, 31), asked_on), True)
    for pattern, days in _RELATIVE:
        if pattern.search(question):
            return Timeframe(asked_on - timedelta(days=days), asked_on, True)
    return Timeframe(asked_on - timedelta(days=default_days), asked_on, False)


_MONTH_NAMES = "|".join([*_MONTHS, *(m[:3] + r"\.?" for m in _MONTHS), r"sept\.?"])
# A year a question names, with the month (and day) before it or "end of": "in 2017", "the July 2017 fire",
# "October 20, 2022", "by the end of 2020"; not part of a larger number or a decade ("2,017", "2020s").
_NAMED_YEAR = re.compile(
    rf"\b(?:(?P<end>end\s+of\s+)|(?P<month>{_MONTH_NAMES})\s+(?:(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+)?)?"
    r"(?<![\d,.$])(?P<year>(?:19|20)\d{2})(?![\d,]\d|s\b)",
    re.I,
)
# A time named only as a bound ("before his 2016 win", "until 2020") is not the time asked about.
_BOUND = re.compile(r"\b(?:before|ahead\s+of|prior\s+to|until|till)\s+(?:\S+\s+){0,3}$", re.I)
# A question about what is to come can be answered by an earlier article: a plan, a schedule, a forecast.
_LOOKING_AHEAD = re.compile(
    r"\b(?:will|would|could|might|should|going\s+to|expected|expects?|plans?|planned|planning|scheduled|"
    r"set\s+to|due\s+to|upcoming|next|proposed|forecasts?)\b",
    re.I,
)


def _month_number(name: str) -> int:
    """1 to 12 for a month's name or its abbreviation ("Sept.", "dec")."""
    return next(i for m, i in _MONTHS.items() if m.startswith(name.lower().rstrip(".")[:3]))


def asked_time(question: str) -> date | None:
    """The first day of the latest time a question asks about in the past tense, by a year it names (the month
    or day with it, or the year's end): "Who was indicted in 2023?" -> 2023-01-01, "by the end of 2020" ->
    2020-12-01. None when it names no year, or looks ahead ("Where will they play in November 2021?"), whose
    answer an earlier article may give; a year named as a bound ("before 2016") is not asked about."""
    if _LOOKING_AHEAD.search(question):
        return None
    latest = None
    for match in _NAMED_YEAR.finditer(question):
        if _BOUND.search(question[: match.start()]):
            continue
        year = int(match["year"])
        month = 12 if match["end"] else _month_number(match["month"]) if match["month"] else 1
        try:
            day = date(year, month, int(match["day"]) if match["day"] else 1)
        except ValueError:
            continue
        latest = day if latest is None or day > latest else latest
    return latest


def mentions_time(text: str, day: date) -> bool:
    """Whether a sentence speaks of that time at all: its year, its month by name, or as the year or month to
    come ("next year", "later this month", "by the end of the year"), as an article written before it may."""
    lowered = text.lower()
    ahead = r"\b(?:next|coming|later\s+this|end\s+of\s+the)\s+(?:year|month|season)\b"
    if str(day.year) in lowered or re.search(ahead, lowered):
        return True
    month = list(_MONTHS)[day.month - 1]
    return re.search(rf"\b(?:{month}|{month[:3]}t?\.?)(?![a-z])", lowered) is not None


_VAGUE = re.compile(r"\b(?:recently|recent|latest|newly|just)\b", re.I)


def asked_since(question: str, asked_on: date | None) -> date | None:
    """The first day of the time a question asks about in the past tense: a year it names (`asked_time`), else
    the period its time words give before the asked-on day ("this week", "yesterday", "in June"); not the vague
    ones ("recently", "the latest"), which may reach back further than a month."""
    named = asked_time(question)
    if named is not None or asked_on is None or _LOOKING_AHEAD.search(question):
        return named
    timeframe = question_timeframe(_VAGUE.sub(" ", question), asked_on, 0)
    return timeframe.start if timeframe.explicit else None
