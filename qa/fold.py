"""Folded forms of text for matching, never for showing: what a reader sees, with look-alike tricks undone."""

from __future__ import annotations

import unicodedata
from functools import lru_cache


def fold_invisible(text: str) -> str:
    """NFKC (fullwidth and other compatibility forms become plain letters) without invisible format characters
    (zero-width spaces and joiners, soft hyphens, bidi marks: Unicode category Cf), so `Ig\\u200bnore` is `Ignore`."""
    if text.isascii():  # nothing to fold (most text): NFKC leaves ASCII alone and it has no format characters
        return text
    text = unicodedata.normalize("NFKC", text)
    # each distinct character looked up once (news text is rarely ASCII: curly quotes, dashes)
    hidden = {ord(c): None for c in set(text) if not c.isascii() and unicodedata.category(c) == "Cf"}
    return text.translate(hidden) if hidden else text


def fold_confusables(text: str) -> str:
    """`fold_invisible`, lower-cased, with every letter that looks like a Latin one (Cyrillic о, Greek ο, ...)
    replaced by it: `Ignоre` with a Cyrillic о reads `ignore`. For case-insensitive matching only."""
    if text.isascii():
        return text.lower()
    table = _latin_look_alikes()
    return fold_invisible(text).lower().translate(table)


@lru_cache(maxsize=1)
def _latin_look_alikes() -> dict[int, str]:
    """Character -> the ASCII letter it is confusable with, from Unicode's confusables data as the
    confusable_homoglyphs package ships it (about 1,200 characters; read once, the rest of the data dropped)."""
    from confusable_homoglyphs.utils import load

    table: dict[int, str] = {}
    for character, homoglyphs in load("confusables.json").items():
        if len(character) != 1 or character.isascii():
            continue
        latin = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()]
        if latin:
            table[ord(character)] = latin[0].lower()
    return table
