"""The dataclasses that travel between stages: the only currency of the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Article:
    """One news article; `text` is the normalised body every offset points into."""

    doc_id: str
    title: str
    text: str
    url: str = ""
    publish_date: str | None = None  # ISO YYYY-MM-DD
    authors: tuple[str, ...] = ()
    source: str = ""
    origin: str = ""  # file (and line) it was read from
    content_hash: str = ""


@dataclass(frozen=True)
class Sentence:
    """A sentence of an article, as [start, end) character offsets into `Article.text`."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences of one article, the unit that is embedded and retrieved."""

    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Skipped:
    """An input item that was not indexed, and why."""

    origin: str
    reason: str


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its rank and score."""

    rank: int
    passage_id: int
    doc_id: str
    score: float
    start: int
    end: int
    dense_score: float = 0.0  # cosine of question and passage
    keyword_score: float = 0.0  # BM25 score
    also_in: tuple[str, ...] = ()  # doc_ids of other outlets' copies of the same story


@dataclass(frozen=True)
class Citation:
    """A verbatim quote and the article it comes from."""

    n: int
    doc_id: str
    title: str
    url: str
    publish_date: str | None
    source: str
    quote: str
    start: int
    end: int


@dataclass(frozen=True)
class Phrase:
    """The words of the first quote that answer the question (a number, amount, date, name or place)."""

    text: str
    doc_id: str
    start: int  # offsets into the article text, inside the first citation's quote
    end: int


@dataclass
class Answer:
    """What `ask` returns: answer text made of quotes, their citations and the ranked passages."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    latency_ms: float = 0.0
    evidence: float = 0.0  # the reader's probability that the articles answer; abstains below a threshold
    answer_phrase: Phrase | None = None

    def as_json(self) -> dict:
        """The public JSON form (`ask --json`, the web API's `/ask`; stable: see the README)."""
        data = asdict(self)
        del data["evidence"]  # internal signal, not part of the public format
        data["latency_ms"] = round(self.latency_ms, 1)
        data["passages"] = [
            {k: h[k] for k in ("rank", "passage_id", "doc_id", "score", "start", "end", "also_in")}
            for h in data["passages"]
        ]
        return data


@dataclass
class SourceFile:
    """A corpus file as a build last read it: a later build skips it when its size and time are the same."""

    size: int
    mtime_ns: int
    articles: list[tuple[str, str]] = field(default_factory=list)  # (doc_id, hash of its title and text) in file order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)

    @classmethod
    def from_dict(cls, saved: dict) -> SourceFile:
        """One as a generation saved it (its fields as JSON)."""
        return cls(
            saved["size"],
            saved["mtime_ns"],
            [tuple(a) for a in saved["articles"]],
            [tuple(s) for s in saved["skipped"]],
        )
