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
