"""The served index: questions against the current generation, uploads, and rebuilds (a separate process,
qa.rebuild) whose new generation it swaps in live."""

from __future__ import annotations

import hmac
import logging
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from qa.answer import ask
from qa.backend import Backend, SearchIndex
from qa.build import BuildReport, build_index
from qa.embed import Embedder
from qa.errors import IndexNotFound, QAError
from qa.fold import fold_invisible
from qa.ingest import normalize_text
from qa.places import load_places
from qa.rebuild import BuildStatus, RebuildRunner, build_command
from qa.rebuild import RebuildRunning as RebuildRunning  # raised by start_rebuild: callers catch it from here
from qa.store import EmbeddedBackend
from qa.types import Answer, Article
from qa.uploads import store_uploads

log = logging.getLogger(__name__)

KEEP_RECENT = 4  # generations kept open so citations of earlier answers still open their article
QUESTION_BATCH = 16  # questions embedded together when they arrive while the model is busy
MAX_QUESTION_CHARS = 1000
# What a question brings of its conversation: the latest turns, each cut to a question's length. The page never
# sends more; a script that does (10 MB of "history") must cost no more than a question does.
MAX_HISTORY_TURNS = 8
ADMIN_ATTEMPTS = 5  # wrong admin passwords one client may send per ADMIN_WINDOW seconds; then it waits
ADMIN_WINDOW = 60.0


class AdminOnly(QAError):
    def __init__(self) -> None:
        super().__init__("wrong or missing admin password: uploads and rebuilds need QA_ADMIN_PASSWORD")


class TooManyAttempts(AdminOnly):
    def __init__(self, wait: float) -> None:
        QAError.__init__(self, f"too many wrong admin passwords from this address; try again in {wait:.0f} s")


class QuestionRefused(QAError):
    def __init__(self) -> None:
        super().__init__("the question has no letters or digits to search for; ask it in words")


@dataclass(frozen=True)
class IndexSummary:
    """What the index page shows about the current generation."""

    generation: str
    built_at: str
    corpus: str
    articles: int
    passages: int
    model: str
    dimension: int
    period: str  # "week" or "month": the unit of `timeline`
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (period start, articles), oldest first
    undated: int = 0
    warning: str = ""  # what is wrong with the index on disk, when an older generation is served instead


class _Pending:
    """Texts of one caller waiting for the model, and their vectors (or the error) once embedded."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: Exception | None = None
        self.done = False


class _SharedEmbedder:
    """One thread at a time in the model and its tokenizer (HF tokenizers fail when shared across threads).

    Questions that arrive while the model is busy are embedded together in one batch when it is free:
    under load a batch of 8 costs about a third of 8 single calls (docs/reliability.md)."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self._lock = threading.Lock()  # the model
        self._queue_lock = threading.Lock()
        self._pending: list[_Pending] = []

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) > QUESTION_BATCH or progress:  # a rebuild's batch goes alone
            with self._lock:
                return self.inner.embed(texts, progress=progress)
        mine = _Pending(list(texts))
        with self._queue_lock:
            self._pending.append(mine)
        while True:
            with self._lock:
                if not mine.done:  # else an earlier holder of the model embedded it with its own batch
                    self._embed_pending()
            if mine.done:
                break
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None  # done without an error: embedded
        return mine.vectors

    def _embed_pending(self) -> None:
        """Embed what is waiting (the model lock is held), at most QUESTION_BATCH texts at once."""
        with self._queue_lock:
            batch, used = [], 0
            while self._pending and used + len(self._pending[0].texts) <= QUESTION_BATCH:
                batch.append(self._pending.pop(0))
                used += len(batch[-1].texts)
        try:
            vectors = self.inner.embed([text for pending in batch for text in pending.texts])
        except Exception as error:  # every caller in the batch sees the model's error
            for pending in batch:
                pending.error, pending.done = error, True
            return
        position = 0
        for pending in batch:
            pending.vectors = vectors[position : position + len(pending.texts)]
            position += len(pending.texts)
            pending.done = True

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return self.inner.count_tokens(texts)


class ChatService:
    """Holds the current generation and the embedder; thread-safe. A rebuild runs as a separate process
    (qa.rebuild), and the service switches to the new generation when it is complete; questions already running
    finish on the old one. `rebuild_command`: the build's command line (default: `python -m qa build` with this
    corpus, index and embedder). `close()` ends a running build. `backend`: where the index lives (default: the
    embedded backend in `index_dir`; qa.backends.open_backend)."""

    def __init__(
        self,
        corpus: str | Path,
        index_dir: str | Path,
        embedder: Embedder,
        admin_password: str = "",
        rebuild_command: Sequence[str] | None = None,
        backend: Backend | None = None,
    ):
        self.corpus = Path(corpus)
        self.index_dir = Path(index_dir)
        self.backend = backend if backend is not None else EmbeddedBackend(index_dir)
        self.embedder = _SharedEmbedder(embedder)
        self.admin_password = admin_password or ""
        self.admin_attempts = ADMIN_ATTEMPTS
        self._failures: dict[str, deque[float]] = {}  # client: times of its recent wrong admin passwords
        self._lock = threading.Lock()
        self._swapping = threading.Lock()
        self._recovering = threading.Lock()
        self._recent: OrderedDict[str, SearchIndex] = OrderedDict()
        self._summaries: dict[str, IndexSummary] = {}
        self._generation = self._load()
        command = rebuild_command or build_command(self.corpus, self.index_dir, embedder)
        self._rebuilds = RebuildRunner(command, on_built=self._switch_to)

    @classmethod
    def open(
        cls,
        corpus: str | Path,
        index_dir: str | Path,
        embedder: Embedder,
        admin_password: str = "",
        progress: bool = True,
        backend: Backend | None = None,
    ) -> ChatService:
        """Serve `index_dir`, building it from `corpus` first when there is no index yet."""
        try:
            return cls(corpus, index_dir, embedder, admin_password, backend=backend)
        except IndexNotFound:
            log.info("no index in %s yet: building it from %s", index_dir, corpus)
            build_index(
                corpus,
                backend if backend is not None else index_dir,
                embedder,
                progress=_log_stage if progress else None,
            )
        return cls(corpus, index_dir, embedder, admin_password, backend=backend)

    def warm_up(self) -> threading.Thread:
        """Load the model and the place names (0.8 s) in the background now, so the first question does not wait."""

        def load() -> None:
            self.embedder.embed(["warm up"])
            load_places()

        thread = threading.Thread(target=load, name="qa-warm-up", daemon=True)
        thread.start()
        return thread

    @property
    def generation(self) -> SearchIndex:
        return self._generation

    @property
    def admin_required(self) -> bool:
        return bool(self.admin_password)

    def ask(self, question: str, history: Sequence[str] = ()) -> tuple[Answer, SearchIndex]:
        """Answer from the current generation; the generation is returned so the caller renders from it.
        QuestionRefused when the question has nothing to search for."""
        question = clean_question(question)
        if not any(character.isalnum() for character in question):
            raise QuestionRefused()
        if isinstance(history, str) or not isinstance(history, Sequence):
            history = ()
        turns = [earlier for earlier in history[-MAX_HISTORY_TURNS:] if isinstance(earlier, str)]
        history = tuple(clean_question(earlier[:MAX_QUESTION_CHARS]) for earlier in turns)
        generation = self._generation  # one reference for the whole question, even if a rebuild swaps meanwhile
        try:
            return ask(generation, self.embedder, question, history=history), generation
        except sqlite3.DatabaseError as error:
            generation = self._recover(generation, error)
        return ask(generation, self.embedder, question, history=history), generation

    def find_article(self, generation_name: str, doc_id: str) -> tuple[Article, SearchIndex]:
        """An article as the named generation holds it (else the current one); KeyError when absent, and when
        the current generation no longer has it: an article removed from the corpus is not served any more."""
        with self._lock:
            current = self._generation
            generation = self._recent.get(generation_name, current)
        try:
            if generation is not current:
                current.article(doc_id)
            return generation.article(doc_id), generation
        except sqlite3.DatabaseError as error:
            self._recover(generation, error)
            raise KeyError(doc_id) from None

    def check_admin(self, password: str | None, client: str = "") -> None:
        """Raise AdminOnly unless no password is configured or `password` is it (compared in constant time);
        TooManyAttempts, without comparing, while `client` (an address) has sent `admin_attempts` wrong ones in
        the last ADMIN_WINDOW seconds. Each wrong password is logged in one line."""
        if not self.admin_password:
            return
        now = time.monotonic()
        with self._lock:
            recent = self._failures.setdefault(client, deque())
            while recent and now - recent[0] > ADMIN_WINDOW:
                recent.popleft()
            if len(recent) >= self.admin_attempts:
                raise TooManyAttempts(ADMIN_WINDOW - (now - recent[0]))
        if hmac.compare_digest((password or "").encode("utf-8"), self.admin_password.encode("utf-8")):
            return
        with self._lock:
            recent.append(now)
            count = len(recent)
            for stale in [c for c, times in self._failures.items() if not times]:
                del self._failures[stale]
        log.warning(
            "wrong admin password from %s (%d in the last %.0f s)", client or "a local caller", count, ADMIN_WINDOW
        )
        raise AdminOnly()

    def save_uploads(
        self, paths: Sequence[str | Path], names: Sequence[str], password: str | None, client: str = ""
    ) -> list[Path]:
        """Copy uploaded files into `<corpus>/uploads/` (qa.uploads.store_uploads) when `password` is the admin's."""
        self.check_admin(password, client)
        return store_uploads(self.corpus, paths, names)

    def start_rebuild(self, password: str | None, client: str = "") -> None:
        """Start a rebuild process; RebuildRunning while one runs."""
        self.check_admin(password, client)
        self._rebuilds.start()

    def build_status(self) -> BuildStatus:
        return self._rebuilds.status()

    def wait_for_rebuild(self, timeout: float | None = None) -> BuildStatus:
        """Block until no rebuild runs (or `timeout` seconds pass); returns the status then."""
        return self._rebuilds.wait(timeout)

    def close(self) -> None:
        """End a running rebuild process (the server stops); the generation on disk stays as it was."""
        self._rebuilds.stop()

    def refresh(self) -> bool:
        """Switch to the index folder's current generation when another process (`python -m qa build`)
        has changed it; True when it switched. A rebuild started here does its own switch."""
        if self._rebuilds.running or not self._swapping.acquire(blocking=False):
            return False
        try:
            if self.backend.live_name() == self._generation.name:
                return False
            self._swap(fallback=False)  # the one in memory is better than an older one from disk
            return True
        except QAError as error:  # a broken index on disk: keep serving the one in memory
            log.warning("not switching to the index on disk: %s", error)
            return False
        finally:
            self._swapping.release()

    def summary(self) -> IndexSummary:
        generation = self._generation
        with self._lock:
            cached = self._summaries.get(generation.name)
        if cached is None:
            try:
                cached = summarize(generation)
            except sqlite3.DatabaseError as error:
                generation = self._recover(generation, error)
                cached = summarize(generation)
            with self._lock:
                self._summaries[generation.name] = cached
        return cached

    def _switch_to(self, report: BuildReport) -> str:
        """After a rebuild process succeeded: serve the generation it wrote (its name; "" when up to date)."""
        with self._swapping:
            return self._swap() if report.generation != self._generation.name else ""

    def _load(self, fallback: bool = True) -> SearchIndex:
        """The current generation; with `fallback`, an older good one when the current one is damaged."""
        generation = self.backend.open(self.embedder.model_id, self.embedder.dimension, fallback)
        if generation.fallback_from is not None:
            log.warning(
                "%s; serving the previous generation %s until then", generation.fallback_from[1], generation.name
            )
        with self._lock:
            self._recent[generation.name] = generation
            while len(self._recent) > KEEP_RECENT:
                # not closed: a question still running may hold it; it closes when the last reference goes
                self._recent.popitem(last=False)
        return generation

    def _recover(self, damaged: SearchIndex, error: Exception) -> SearchIndex:
        """The generation served failed to read its store (damaged on disk while served): load the index again
        as at start-up, which checks every file and serves the newest good generation with a warning.
        IndexCorrupt, which says how to rebuild, when none loads."""
        log.warning(
            "generation %s failed while answering (%s: %s); loading the index again",
            damaged.name,
            type(error).__name__,
            error,
        )
        with self._recovering:
            if self._generation is damaged:
                with self._lock:
                    self._recent.pop(damaged.name, None)
                    self._summaries.pop(damaged.name, None)
                self._swap(fallback=True)
        return self._generation

    def _swap(self, fallback: bool = True) -> str:
        generation = self._load(fallback)
        self._generation = generation
        return generation.name


def _log_stage(stage: str, done: int, total: int) -> None:
    """The first build's progress in the server's log: each stage as it starts."""
    if done == 0:
        log.info("building the index: %s%s", stage, f" ({total})" if total else "")


def clean_question(question: object) -> str:
    """A question as it is searched: text normalised like articles (NFC, no control characters or lone
    surrogates), folded (NFKC, no zero-width or other invisible characters: qa.fold) and on one line; "" for
    anything that is not text."""
    return " ".join(fold_invisible(normalize_text(question)).split()) if isinstance(question, str) else ""


def summarize(generation: SearchIndex) -> IndexSummary:
    manifest = generation.manifest
    dates = [a.publish_date for a in generation.iter_articles()]
    period, timeline = articles_per_period([date.fromisoformat(d) for d in dates if d])
    return IndexSummary(
        generation=generation.name,
        built_at=str(manifest.get("built_at", "")),
        corpus=Path(str(manifest.get("corpus", ""))).name,  # the folder's name: its path is no one's business
        articles=int(manifest.get("articles", 0)),
        passages=int(manifest.get("passages", 0)),
        model=str(manifest.get("model", "")),
        dimension=int(manifest.get("dimension", 0)),
        period=period,
        timeline=timeline,
        undated=sum(1 for d in dates if not d),
        warning=fallback_warning(generation),
    )


def fallback_warning(generation: SearchIndex) -> str:
    """Which generation could not be loaded and why, when `generation` is served in its place; else ""."""
    if generation.fallback_from is None:
        return ""
    damaged, why = generation.fallback_from
    return (
        f"Generation {damaged} cannot be loaded: {why}. The previous generation {generation.name} is "
        "answering until the index is rebuilt (Rebuild index below, or `python -m qa build`)."
    )


def articles_per_period(days: Sequence[date], max_bars: int = 36) -> tuple[str, list[tuple[str, int]]]:
    """Articles per week, month or year (the finest unit that needs at most `max_bars` bars), gaps included."""
    if not days:
        return "week", []
    first, last = min(days), max(days)
    for period, (key, step, label) in _PERIODS.items():  # noqa: B007 (the loop picks the unit, used below)
        if period == "year" or len(_period_starts(key(first), key(last), step)) <= max_bars:
            break
    counts: dict[date, int] = {}
    for day in days:
        counts[key(day)] = counts.get(key(day), 0) + 1
    return period, [(label(start), counts.get(start, 0)) for start in _period_starts(key(first), key(last), step)]


def _period_starts(first: date, last: date, step) -> list[date]:
    starts = [first]
    while starts[-1] < last:
        starts.append(step(starts[-1]))
    return starts


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


_PERIODS = {  # period: (start of the period holding a day, start of the next period, label)
    "week": (lambda d: d - timedelta(days=d.weekday()), lambda d: d + timedelta(days=7), date.isoformat),
    "month": (lambda d: d.replace(day=1), _next_month, lambda d: d.isoformat()[:7]),
    "year": (lambda d: d.replace(month=1, day=1), lambda d: d.replace(year=d.year + 1), lambda d: str(d.year)),
}
