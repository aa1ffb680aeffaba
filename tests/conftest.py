"""Shared fixtures: a deterministic fake embedder for fast tests, the real model loaded once per session."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT.parent / "shared" / "eval" / "realtimeqa"
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    "a an and are as at be by did do does for from had has have how in is it its much of on or "
    "that the their this to was were what when where which who with".split()
)


class FakeEmbedder:
    """Bag of hashed words, unit length: texts sharing words are close; deterministic across runs."""

    model_id = "fake-hash"

    def __init__(self, dimension: int = 64):
        self.dimension = dimension
        self.embedded: list[str] = []

    def embed(self, texts, progress: bool = False) -> np.ndarray:
        self.embedded.extend(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word in _STOP:
                    continue
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                vectors[row, bucket] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def count_tokens(self, texts) -> list[int]:
        return [len(_WORD.findall(text)) + text.count(".") for text in texts]


@pytest.fixture(autouse=True)
def uncalibrated_abstention(request, monkeypatch):
    """The answerability threshold is fitted for the real model; fake-embedder tests answer whatever the
    reader's answerability (tests of abstention itself set their own threshold)."""
    if request.node.get_closest_marker("model") is None:
        from dataclasses import replace

        import qa.answer

        monkeypatch.setattr(qa.answer, "DEFAULT_ANSWERING", replace(qa.answer.DEFAULT_ANSWERING, min_answerable=0.0))


@pytest.fixture(scope="session")
def fixture_index(tmp_path_factory) -> Path:
    """The hand-written news of tests/fixture_news.py, built once with the fake embedder; read-only."""
    from qa.build import build_index
    from tests.fixture_news import write_fixture

    folder = tmp_path_factory.mktemp("fixture")
    build_index(write_fixture(folder / "corpus"), folder / "index", FakeEmbedder())
    return folder / "index"


@pytest.fixture(scope="session")
def generation(fixture_index):
    """The loaded generation of `fixture_index` (a test file may define its own `generation`)."""
    from qa.store import load_generation

    return load_generation(fixture_index)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The fp32 sentence-transformers model: the reference the int8 embedder is checked against."""
    from qa.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def product_embedder():
    """What `python app.py` and `python -m qa build` use for a new index here (int8 on a CPU, fp32 on a GPU)."""
    from qa.embedders import make_embedder

    return make_embedder(kind="auto")


@pytest.fixture
def eval_dir() -> Path:
    if not (EVAL_DIR / "corpus.jsonl.gz").exists():
        pytest.skip(f"evaluation set not present at {EVAL_DIR} (it lives outside the repository)")
    return EVAL_DIR


def write_articles(folder: Path, articles: dict[str, tuple[str, str]]) -> Path:
    """Write {file name: (headline, body)} as .txt articles into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, body) in articles.items():
        (folder / name).write_text(f"{title}\n{body}\n", encoding="utf-8")
    return folder


def fake_index(folder: Path, articles: dict[str, tuple[str, str]]):
    """The generation of an index of `articles` (as `write_articles` takes them) built under `folder` with the
    fake embedder."""
    from qa.build import build_index
    from qa.store import load_generation

    build_index(write_articles(folder / "corpus", articles), folder / "index", FakeEmbedder())
    return load_generation(folder / "index")


NEWS = {
    "budget.txt": (
        "Senate passes budget after long night",
        "WASHINGTON (AP) — The U.S. Senate passed the budget on Tuesday after a debate that lasted all night. "
        'Sen. Maria Lopez said the vote was a relief. "We got it done," she told reporters.\n'
        "The House is expected to vote on Friday. Dr. Alan Reed of the budget office said costs would fall.",
    ),
    "storm.txt": (
        "Hurricane Delta hits the coast",
        "Hurricane Delta made landfall near Lake Charles on Friday with winds of 100 mph. "
        "About 300,000 homes lost power. Governor John Bel Edwards asked residents to stay indoors.",
    ),
    "chess.txt": (
        "Teenager wins chess championship",
        "A 16-year-old from Oslo won the world junior chess championship on Sunday. "
        "She beat the defending champion in the final round. Her coach said she trains six hours a day.",
    ),
}
