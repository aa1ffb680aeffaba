"""Files -> Articles: formats, metadata, one-time text normalisation and a report of bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, TypedDict
from urllib.parse import unquote, urlsplit

from qa.errors import CorpusNotFound
from qa.types import Article, Skipped, SourceFile

TEXT_SUFFIXES = {".txt", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".jsonl.gz"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES

MAX_FILE_BYTES = 20 * 1024 * 1024  # whole-file formats (txt, md, html, json)
MAX_LINE_BYTES = 5 * 1024 * 1024  # one JSON line
MAX_ARTICLE_CHARS = 1_000_000
# How articles are read (titles, dates, what counts as a duplicate): an index built by another version reads its
# files again on the next build (their passage vectors are reused where the embedded text is the same).
# 2: a date from the address when the record gives none; a duplicate has the same title and text; a page
# without text kept by its headline (or its address's words) when it has a link.
INGEST_VERSION = 2

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone halves that JSON escapes can carry: not storable as UTF-8
_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newline
_BLANK_LINES = re.compile(r"\n{3,}")
_ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_PAGE_SUFFIX = re.compile(r"\.(?:s?html?|php|aspx?|jsp)$", re.I)
_URL_DATE = re.compile(r"/((?:19|20)\d{2})/(\d{1,2})/(\d{1,2})(?=/|$)")  # "/2024/06/15/": a news address's date


@dataclass
class IngestResult:
    """Articles read from a corpus, and every item skipped with its reason."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0
    kept: list[str] = field(default_factory=list)  # doc_ids in files unchanged since the previous build
    sources: dict[str, SourceFile] = field(default_factory=dict)  # what this read found, for the next one
    files_kept: int = 0  # files not read again


class BadInput(ValueError):
    """One input item that cannot be indexed; the message is the reason shown in the report."""


def normalize_text(text: str) -> str:
    """Unicode NFC, `\\n` line endings, no control characters, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text)).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\u2028", "\n").replace("\u2029", "\n"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def normalize_title(title: str) -> str:
    return " ".join(normalize_text(title).split())


def normalize_date(value: object) -> str | None:
    """A publication date as ISO YYYY-MM-DD, or None when it cannot be read."""
    if not value or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    match = _ISO_DATE.search(value)
    if match:
        return _iso_day(match)
    try:
        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def url_title(url: str) -> str:
    """The headline words of a news address, for a page without text or title: the last path segment that reads
    as words ("/2024/06/15/harbour-ferry-fares/index.html": "Harbour ferry fares"), ids and hashes ("a1b2c3d4")
    left out; "" when no segment has two words."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    for segment in reversed(path.split("/")):
        words = [w for w in re.split(r"[-_+\s]+", _PAGE_SUFFIX.sub("", unquote(segment))) if w.isalpha() or w.isdigit()]
        if sum(w.isalpha() and len(w) > 1 for w in words) >= 2:
            title = " ".join(words)
            return title[0].upper() + title[1:]
    return ""


def url_date(url: str) -> str | None:
    """The date a news address holds ("/2024/06/15/"), for a record that gives none."""
    match = _URL_DATE.search(url)
    return _iso_day(match) if match else None


def _iso_day(match: re.Match) -> str | None:
    """Year, month and day matched as three groups, as YYYY-MM-DD; None when no such day exists."""
    try:
        return date(*(int(g) for g in match.groups())).isoformat()
    except ValueError:
        return None


def _is_web_link(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def url_host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def stable_id(kind: str, key: str) -> str:
    return f"{kind}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


class _HashedFields(TypedDict):
    """The fields of an Article that its content hash covers (not where it was read from)."""

    doc_id: str
    title: str
    text: str
    url: str
    publish_date: str | None
    authors: tuple[str, ...]
    source: str


def make_article(record: dict, origin: str) -> Article:
    """Build an Article from a record with the documented field names and their aliases."""
    if not isinstance(record, dict):
        raise BadInput("not a JSON object")
    text = _first(record, "text", "body")
    if text is not None and not isinstance(text, str):
        raise BadInput("article has no text")
    if len(text or "") > MAX_ARTICLE_CHARS:
        raise BadInput(f"article text longer than {MAX_ARTICLE_CHARS} characters")
    text = normalize_text(text or "")
    url = _as_str(record.get("url")).strip()
    given_title = normalize_title(_as_str(record.get("title")))
    if not text:
        # a page that could not be read: kept by its headline when it has a link to read it at, never quoted
        given_title = given_title or normalize_title(url_title(url))
        if not (given_title and _is_web_link(url)):
            raise BadInput("article has no text")
    doc_id = _as_str(_first(record, "doc_id", "id")).strip()
    if not doc_id:
        doc_id = stable_id("url", url) if url else stable_id("file", origin)
    authors = record.get("authors") or ()
    if not isinstance(authors, list | tuple):  # one name, or a stray number or object
        authors = [authors]
    authors = tuple(a for a in (normalize_title(_as_str(a)) for a in authors) if a)
    title = given_title or text.split("\n", 1)[0][:200]
    fields: _HashedFields = {
        "doc_id": doc_id,
        "title": title,
        "text": text,
        "url": url,
        "publish_date": normalize_date(_first(record, "publish_date", "date", "published")) or url_date(url),
        "authors": authors,
        "source": normalize_title(_as_str(record.get("source"))) or url_host(url),
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8", "surrogatepass"))
    return Article(**fields, origin=origin, content_hash=digest.hexdigest())


def read_corpus(path: str | Path, known: dict[str, SourceFile] | None = None) -> IngestResult:
    """Read every supported file under `path` (or `path` itself); bad items are reported, not fatal.

    Files in `known` (what the previous build read) whose size and modification time are the same are not
    read again: their articles are listed in `kept` by doc_id, as unchanged.
    """
    root = Path(path)
    if not root.exists():
        raise CorpusNotFound(str(path))
    known = known or {}
    result = IngestResult()
    seen_pages: dict[str, str] = {}
    seen_ids: set[str] = set()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if _is_candidate(p, root))
    for file in files:
        result.files += 1
        origin = str(file)
        if file is not root and (why := _outside(file, root)):
            result.skipped.append(Skipped(origin, why))
            continue
        if _suffix(file) not in SUPPORTED_SUFFIXES:
            result.skipped.append(Skipped(origin, f"unsupported file type {_suffix(file) or '(none)'}"))
            continue
        stat = file.stat()
        before = known.get(origin)
        if (
            before is not None
            and (before.size, before.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            and not any(key in seen_pages or doc_id in seen_ids for doc_id, key in before.articles)
        ):
            result.kept += [doc_id for doc_id, _ in before.articles]
            result.skipped += [Skipped(*item) for item in before.skipped]
            seen_pages.update((key, doc_id) for doc_id, key in before.articles)
            seen_ids.update(doc_id for doc_id, _ in before.articles)
            result.sources[origin] = before
            result.files_kept += 1
            continue
        source = result.sources[origin] = SourceFile(stat.st_size, stat.st_mtime_ns)
        for item in _read_file(file):
            if isinstance(item, Skipped):
                result.skipped.append(item)
                source.skipped.append((item.origin, item.reason))
                continue
            # the same page twice; pages whose download failed into the same boilerplate under different
            # headlines stay apart (their titles are all a search can find them by)
            page_key = hashlib.sha256(f"{item.title}\n{item.text}".encode("utf-8", "surrogatepass")).hexdigest()
            if page_key in seen_pages:
                reason = f"duplicate title and text of {seen_pages[page_key]}"
            elif item.doc_id in seen_ids:
                reason = f"duplicate doc_id {item.doc_id}"
            else:
                seen_pages[page_key] = item.doc_id
                seen_ids.add(item.doc_id)
                result.articles.append(item)
                source.articles.append((item.doc_id, page_key))
                continue
            result.skipped.append(Skipped(item.origin, reason))
            source.skipped.append((item.origin, reason))
    return result


def read_file(file: Path, suffix: str | None = None) -> list[Article | Skipped]:
    """The articles of one file and its items that a build would skip, with their reasons; `suffix` (such as
    ".txt") when the file's own name does not say its format."""
    return list(_read_file(file, suffix))


def _is_candidate(path: Path, root: Path) -> bool:
    relative = path.relative_to(root).parts
    return (path.is_file() or path.is_symlink()) and not any(part.startswith(".") for part in relative)


def _outside(file: Path, root: Path) -> str:
    """Why a file found under the corpus folder is not read, when it is a link or leads elsewhere; else "".
    A link is never followed (`ln -s /etc/passwd corpus/x.txt` must not put /etc/passwd in the index)."""
    if file.is_symlink():
        return "symbolic link, not followed: copy the file into the corpus folder instead"
    if not file.resolve().is_relative_to(root.resolve()):
        return "leads outside the corpus folder (through a linked folder), not read"
    return ""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else path.suffix.lower()


def _read_file(file: Path, suffix: str | None = None) -> Iterator[Article | Skipped]:
    suffix = suffix or _suffix(file)
    try:
        if suffix in JSONL_SUFFIXES:
            yield from _read_jsonl(file, gzipped=suffix == ".jsonl.gz")
            return
        with _open_unlinked(file) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise BadInput(f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB ({size} bytes)")
            raw = handle.read()
        if suffix in TEXT_SUFFIXES:
            yield _text_article(_decode(raw), str(file), markdown=suffix == ".md")
        elif suffix in HTML_SUFFIXES:
            yield _html_article(_decode(raw), str(file))
        else:
            yield from _json_articles(_decode(raw), str(file))
    except BadInput as bad:
        yield Skipped(str(file), str(bad))
    except OSError as error:
        yield Skipped(str(file), f"cannot read: {error.strerror or error}")


def _open_unlinked(file: Path) -> BinaryIO:
    """`file` opened for reading, refused (OSError) when it has become a symbolic link since it was listed."""
    return os.fdopen(os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")


def _decode(raw: bytes) -> str:
    if not raw.strip():
        raise BadInput("empty file")
    if b"\x00" in raw:
        raise BadInput("binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(f"invalid UTF-8 at byte {error.start}") from None


# A small header a text article may start with (README, "Article formats"): in Markdown, YAML front matter
# between "---" lines; in both, after (or before) the headline, lines such as "Date: 14 September 2025",
# "Published 14 September 2025", "Source: The Example Times", "URL: https://...", "By Jane Doe".
_HEADER_LINE = re.compile(
    r"^(title|headline|date|published|updated|posted|source|outlet|publisher|url|link|"
    r"by|author|authors|byline)\b\s*:?\s+(\S.*)$",
    re.I,
)
_HEADER_FIELD = {
    "headline": "title",
    "published": "date",
    "updated": "date",
    "posted": "date",
    "outlet": "source",
    "publisher": "source",
    "link": "url",
    "by": "authors",
    "author": "authors",
    "byline": "authors",
}


def _text_article(content: str, origin: str, markdown: bool) -> Article:
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    record: dict = {}
    start = 0
    if markdown and lines and lines[0].strip() == "---":
        start = _front_matter(lines, record)
    title, body_start = None, len(lines)
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        field = _header_field(line)
        if field is not None and (field[0] != "title" or "title" not in record):
            record.setdefault(field[0], field[1])
            continue
        if title is None and "title" not in record:
            title = line.lstrip("#").strip() if markdown else line
            continue
        body_start = i
        break
    record.setdefault("title", title or "")
    if not record["title"] and body_start == len(lines):
        raise BadInput("empty file")
    record["text"] = "\n".join(lines[body_start:])
    return make_article(record, origin)


def _header_field(line: str) -> tuple[str, object] | None:
    """(field, value) for a header line such as "Date: 14 September 2025" or "By Jane Doe"; else None. A date
    line counts only when it holds a date, so a body that starts "Published in ..." stays body."""
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    key, value = match.group(1).lower(), match.group(2).strip()
    field = _HEADER_FIELD.get(key, key)
    if field == "date":
        day = _text_date(value)
        return ("date", day) if day else None
    if field == "authors":
        if len(value.split()) > 6:  # "By the time ..." starts a sentence, not a byline
            return None
        return "authors", [a.strip() for a in re.split(r",| and ", value) if a.strip()]
    if field == "url" and not _is_web_link(value):
        return None
    if ":" not in line[: match.end(1) + 2] and field not in ("authors",):
        return None  # "Source" and the like need their colon; "By" and "Published" do not
    return field, value


def _text_date(value: str) -> str | None:
    """ISO date of "14 September 2025", "September 14, 2025", "2025-09-14", "Sept. 14 2025" and the like."""
    day = normalize_date(value)
    if day:
        return day
    from dateutil import parser as dates  # python-dateutil: the common written forms, without guessing from text

    try:
        return (
            dates.parse(value, fuzzy=False, default=datetime(1900, 1, 1)).date().isoformat()
            if re.search(r"\b(1[89]|20)\d\d\b", value)
            else None
        )
    except (ValueError, OverflowError):
        return None


def _front_matter(lines: list[str], record: dict) -> int:
    """Read Markdown's YAML front matter into `record`; the index of the first line after it."""
    import yaml

    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1:end])) or {}
            except yaml.YAMLError:
                return 0  # not front matter after all: the "---" lines are text
            if not isinstance(data, dict):
                return 0
            for key, value in data.items():
                field = _HEADER_FIELD.get(str(key).lower(), str(key).lower())
                if field == "date":
                    value = _text_date(str(value))
                if field in ("title", "date", "source", "url", "authors") and value:
                    record[field] = value if field != "authors" or isinstance(value, list) else [str(value)]
            return end + 1
    return 0


def _html_article(content: str, origin: str) -> Article:
    import trafilatura  # heavy: imported only when HTML is read

    doc = trafilatura.bare_extraction(content, with_metadata=True, include_comments=False)
    if doc is None:
        raise BadInput("no article text found in HTML")
    meta = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    record = {
        "title": meta.get("title") or "",
        "text": meta.get("text") or "",
        "url": meta.get("url") or "",
        "date": meta.get("date"),
        "authors": [a.strip() for a in (meta.get("author") or "").split(";") if a.strip()],
        "source": meta.get("sitename") or "",
    }
    return make_article(record, origin)


def _json_articles(content: str, origin: str) -> Iterator[Article | Skipped]:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError) as error:  # ValueError: also numbers over 4300 digits
        raise BadInput(f"malformed JSON: {error}") from None
    records = data if isinstance(data, list) else [data]
    if not records:
        raise BadInput("empty JSON list")
    for i, record in enumerate(records):
        where = origin if len(records) == 1 else f"{origin}[{i}]"
        try:
            yield make_article(record, where)
        except BadInput as bad:
            yield Skipped(where, str(bad))


QUESTION_FILE = "a question file for `python -m qa eval` (its first line has a question and no text), not articles"


def _is_question(record: object) -> bool:
    return isinstance(record, dict) and "question" in record and not _first(record, "text", "body")


def _read_jsonl(file: Path, gzipped: bool) -> Iterator[Article | Skipped]:
    lines = 0
    try:
        with _open_unlinked(file) as raw_handle, gzip.open(raw_handle) if gzipped else raw_handle as handle:
            for number, raw in enumerate(handle, start=1):
                where = f"{file}:{number}"
                if not raw.strip():
                    continue
                lines += 1
                try:
                    if len(raw) > MAX_LINE_BYTES:
                        raise BadInput(f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
                    line = _decode(raw)
                    try:
                        record = json.loads(line)
                    except (ValueError, RecursionError) as error:  # ValueError: also numbers over 4300 digits
                        raise BadInput(f"malformed JSON: {error}") from None
                    if lines == 1 and _is_question(record):  # corpus/questions.jsonl beside the articles
                        yield Skipped(str(file), QUESTION_FILE)
                        return
                    yield make_article(record, where)
                except BadInput as bad:
                    yield Skipped(where, str(bad))
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        yield Skipped(str(file), f"cannot read: {error}")
        return
    if not lines:
        yield Skipped(str(file), "empty file")


def _first(record: dict, *keys: str) -> object:
    for key in keys:
        if record.get(key) not in (None, ""):
            return record[key]
    return None


def _as_str(value: object) -> str:
    if value is None:
        return ""
    return _SURROGATE.sub("\ufffd", value if isinstance(value, str) else str(value))
