"""One suite for every search backend: the embedded one and Qdrant (qdrant-client's local mode in CI; a real server
with `-m qdrant_server` and QA_QDRANT_URL). Searches are checked against brute-force oracles (numpy cosines, BM25
counted from the passage texts), builds against what they must reuse."""

from __future__ import annotations

import html
import json
import math
import os
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from qa.backend import passage_id
from qa.build import build_index
from qa.chunk import embed_text
from qa.keyword import EMPTY, K1, B, tokenize
from qa.retrieve import RetrievalSettings, make_query, retrieve_many
from qa.store import EmbeddedBackend
from tests.conftest import ROOT, FakeEmbedder

SERVER_URL = os.environ.get("QA_QDRANT_URL", "")

ARTICLES = {  # sentences written for these tests; dates spread over three weeks
    "harbour": (
        "Harbour crane breaks down",
        "2025-03-03",
        "A container crane at the north harbour broke down on Monday. Dock workers said repairs would take "
        "nine days. Shipping lines moved four vessels to the south terminal while the crane was fixed.",
    ),
    "orchard": (
        "Orchard frost ruins apple blossom",
        "2025-03-10",
        "A late frost damaged apple blossom across the valley orchards. Growers expect the harvest to fall "
        "by a third. One grower lit candles between the rows to keep the trees warm overnight.",
    ),
    "library": (
        "Library opens a tool lending shelf",
        "2025-03-12",
        "The town library now lends drills, ladders and sewing machines. Members may borrow three tools a "
        "week. The librarian said the ladders were the first to go.",
    ),
    "tram": (
        "Tram line extension approved",
        "2025-03-17",
        "The council approved a tram extension to the hospital. Construction starts in May and costs 48 "
        "million euros. The mayor said the tram would carry nine thousand riders a day.",
    ),
    "tram-copy": (
        "Council backs tram extension",
        "2025-03-18",
        "The council approved a tram extension to the hospital. Construction starts in May and costs 48 "
        "million euros. The mayor said the tram would carry nine thousand riders a day. Work pauses in "
        "August.",
    ),
    "undated": (
        "Choir wins regional contest",
        None,
        "The youth choir won the regional contest with a folk song. The conductor said the singers "
        "rehearsed every evening for a month.",
    ),
}


def write_corpus(folder: Path, articles: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.json"):
        if path.stem not in articles:
            path.unlink()
    for doc_id, (title, day, text) in articles.items():
        (folder / f"{doc_id}.json").write_text(
            json.dumps(
                {
                    "doc_id": doc_id,
                    "title": title,
                    "publish_date": day,
                    "text": text,
                    "source": f"Outlet {doc_id[0]}",
                    "url": f"https://news.example/{doc_id}",
                }
            ),
            encoding="utf-8",
        )
    return folder


def _server_backend():
    from qa.qdrant import QdrantBackend

    return QdrantBackend(url=SERVER_URL, collection_prefix=f"newsqa_test_{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["embedded", "qdrant", pytest.param("qdrant_server", marks=pytest.mark.qdrant_server)])
def make_backend(request, tmp_path):
    """A factory of backends over one index (each call another object, as another process would open it)."""
    made = []

    def make():
        if request.param == "embedded":
            return EmbeddedBackend(tmp_path / "index")
        if request.param == "qdrant_server":
            if not SERVER_URL:
                pytest.skip("no Qdrant server: set QA_QDRANT_URL to run this suite against one")
            from qa.qdrant import QdrantBackend

            backend = made[0] if made else _server_backend()
            backend = QdrantBackend(url=SERVER_URL, collection_prefix=backend.alias)
        else:
            from qa.qdrant import QdrantBackend

            if made:  # local mode: one client per folder and process
                made[-1].close()
            backend = QdrantBackend(path=tmp_path / "qdrant")
        made.append(backend)
        return backend

    make.kind = request.param
    yield make
    if request.param == "qdrant_server" and made:
        for name in [c.name for c in made[-1].client.get_collections().collections]:
            if name.startswith(made[-1].alias + "-"):
                made[-1].client.delete_collection(name)
    for backend in made:
        if hasattr(backend, "close"):
            backend.close()


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus", ARTICLES)


def _passages(generation) -> list:
    return [p for doc_id in generation.doc_ids() for p in generation.article_passages(doc_id)]


def _bm25_oracle(generation, terms: list[str]) -> dict[int, float]:
    """BM25 (qa.keyword's formula) counted from the stored passage texts: passage id -> score, over the live ones."""
    counted = {}
    for p in _passages(generation):
        article = generation.article(p.doc_id)
        counted[p.passage_id] = tokenize(embed_text(article.title, article.text[p.start : p.end])) or [EMPTY]
    mean = sum(len(t) for t in counted.values()) / len(counted)
    df = Counter(t for passage_terms in counted.values() for t in set(passage_terms))
    scores = {}
    for pid, passage_terms in counted.items():
        tf, norm = Counter(passage_terms), K1 * (1 - B + B * len(passage_terms) / mean)
        score = sum(
            math.log(1 + (len(counted) - df[t] + 0.5) / (df[t] + 0.5)) * tf[t] / (tf[t] + norm) for t in terms if tf[t]
        )
        if score > 0:
            scores[pid] = score
    return scores


def _in_days(generation, pid_doc: dict[int, str], days) -> set[int]:
    return {pid for pid, doc_id in pid_doc.items() if days[0] <= generation.facts(doc_id).day <= days[1]}


def _check_searches(generation, embedder) -> None:
    passages = _passages(generation)
    ids = [p.passage_id for p in passages]
    doc_of = {p.passage_id: p.doc_id for p in passages}
    matrix = generation.vectors(ids)
    march_10_17 = (date(2025, 3, 10).toordinal(), date(2025, 3, 17).toordinal())
    for question in ("crane repairs at the harbour", "tram extension to the hospital", "frost orchard harvest"):
        vector = embedder.embed([question])
        for days in (None, march_10_17):
            allowed = set(ids) if days is None else _in_days(generation, doc_of, days)
            oracle = {pid: float(score) for pid, score in zip(ids, matrix @ vector[0], strict=True) if pid in allowed}
            scores, found = generation.dense_search(vector, 3, days)
            found = [int(i) for i in found[0] if i >= 0]
            best = sorted(oracle.values(), reverse=True)[:3]
            assert len(found) == min(3, len(oracle))
            assert np.allclose([oracle[pid] for pid in found], best, atol=1e-5)
            assert np.allclose(scores[0][: len(found)], best, atol=1e-5)

            terms = tokenize(question)
            every = _bm25_oracle(generation, terms)
            bm25 = {pid: s for pid, s in every.items() if pid in allowed}
            scores, found = generation.keyword_search(terms, 4, days)
            assert len(found) == min(4, len(bm25))
            assert np.allclose(scores, sorted(bm25.values(), reverse=True)[:4], rtol=1e-4)
            assert np.allclose([bm25[int(pid)] for pid in found], scores, rtol=1e-4)
            assert np.allclose(
                generation.keyword_scores(terms, ids), [every.get(pid, 0.0) for pid in ids], rtol=1e-4, atol=1e-6
            )


def test_build_stores_passages_under_stable_ids_and_searches_match_the_oracles(make_backend, corpus):
    backend = make_backend()
    embedder = FakeEmbedder()
    report = build_index(corpus, backend, embedder)
    generation = backend.open(embedder.model_id, embedder.dimension)
    assert generation.name == report.generation == backend.live_name()
    assert generation.passage_count() == report.passages == len(_passages(generation))
    assert generation.doc_ids() == sorted(ARTICLES)
    for p in _passages(generation):
        article = generation.article(p.doc_id)
        text = embed_text(article.title, article.text[p.start : p.end])
        assert p.passage_id == passage_id(p.doc_id, p.start, p.end, p.embed_hash)
        assert np.allclose(generation.vectors([p.passage_id])[0], embedder.embed([text])[0], atol=1e-6)
        assert generation.passage_text(p.passage_id) == article.text[p.start : p.end]
    assert generation.facts("undated").day == -1 and generation.facts("tram").day == date(2025, 3, 17).toordinal()
    assert generation.facts("tram-copy").group == "tram"
    assert {frozenset(p) for p in generation.duplicate_pairs()} == {frozenset(("tram", "tram-copy"))}
    assert generation.article("library").url == "https://news.example/library"
    starts = [s.start for s in generation.sentences("library")]
    assert len(starts) == 3 and starts == sorted(starts)
    assert generation.newest_date() == date(2025, 3, 18)
    _check_searches(generation, embedder)


def test_a_page_without_text_is_one_empty_passage_found_by_its_headline_and_never_quoted(make_backend, corpus):
    """A crawled page whose text could not be read is kept by its headline (its link lets the reader check it):
    one empty passage, no sentence; a question about it finds it and is not answered from it."""
    from qa.answer import AnswerSettings, ask, ask_many
    from qa.render import NO_TEXT, plain_answer, render_answer, render_article

    page = {"doc_id": "pier", "title": "Port Ellis opens second ferry pier", "text": "", "url": "https://e.example/p"}
    (corpus / "pier.json").write_text(json.dumps(page), encoding="utf-8")
    backend = make_backend()
    embedder = FakeEmbedder()
    build_index(corpus, backend, embedder)
    generation = backend.open(embedder.model_id, embedder.dimension)
    (passage,) = generation.article_passages("pier")
    assert (passage.start, passage.end) == (0, 0) and generation.passage_text(passage.passage_id) == ""
    assert np.allclose(generation.vectors([passage.passage_id])[0], embedder.embed([page["title"]])[0], atol=1e-6)
    assert generation.sentences("pier") == [] and generation.facts("pier").group == "pier"
    question = "When did Port Ellis open its second ferry pier?"
    answer = ask(generation, embedder, question)
    assert answer.passages[0].doc_id == "pier" and all(c.doc_id != "pier" for c in answer.citations)
    refused = ask_many(generation, embedder, [question], answering=AnswerSettings(min_answerable=1.0))[0]
    shown = plain_answer(refused, generation)  # the closest articles under the verdict: the page, with its link
    assert refused.abstained and NO_TEXT in shown and "https://e.example/p" in shown
    page = render_answer(refused, generation)
    assert html.escape(NO_TEXT) in page and 'href="https://e.example/p"' in page
    viewed = render_article(generation.article("pier"), 0, 0, generation.name)
    assert html.escape(NO_TEXT) in viewed and "qa-body" not in viewed
    _check_searches(generation, embedder)


def test_incremental_build_adds_replaces_and_deletes_without_embedding_again(make_backend, corpus, tmp_path):
    embedder = FakeEmbedder()
    build_index(corpus, make_backend(), embedder)
    before = make_backend().open()
    kept = {
        p.passage_id: before.vectors([p.passage_id])[0]
        for doc_id in ("harbour", "library")
        for p in before.article_passages(doc_id)
    }
    before.close()

    changed = dict(ARTICLES)
    del changed["undated"]
    changed["orchard"] = (ARTICLES["orchard"][0], "2025-03-10", ARTICLES["orchard"][2] + " Cider makers worry.")
    changed["ferry"] = (
        "Ferry adds a night crossing",
        "2025-03-20",
        "The island ferry will run a night crossing from April. Tickets cost six euros.",
    )
    write_corpus(corpus, changed)
    again = FakeEmbedder()
    backend = make_backend()
    report = build_index(corpus, backend, again)
    assert (report.new, report.changed, report.removed) == (1, 1, 1)
    assert again.embedded and all(text.startswith(("Orchard frost", "Ferry adds")) for text in again.embedded)
    generation = backend.open()
    assert generation.doc_ids() == sorted(changed)
    assert "undated" not in generation.article_hashes()
    for pid, vector in kept.items():  # unchanged articles: the same ids and the very vectors
        assert np.array_equal(generation.vectors([pid])[0], vector)
    assert "Cider" in generation.article("orchard").text
    _check_searches(generation, embedder)
    scores, found = generation.keyword_search(tokenize("choir folk song conductor"), 5)
    assert all(generation.passages([int(i)])[0].doc_id != "undated" for i in found)


def _kept_generations(backend) -> list[str]:
    if isinstance(backend, EmbeddedBackend):
        return sorted(p.name for p in backend.index_dir.iterdir() if p.name.startswith("gen-"))
    return [c.removeprefix(backend.alias + "-") for c in backend._generations()]


def test_the_previous_generation_is_kept_for_rollback_and_older_ones_are_dropped(make_backend, corpus):
    embedder = FakeEmbedder()
    names = []
    for extra in ("one", "two", "three"):
        articles = {**ARTICLES, extra: (f"Notice {extra}", "2025-03-21", f"Notice number {extra} was posted.")}
        names.append(build_index(write_corpus(corpus, articles), make_backend(), embedder).generation)
    backend = make_backend()
    assert _kept_generations(backend) == names[1:] and backend.live_name() == names[2]
    if not isinstance(backend, EmbeddedBackend):
        assert backend.rollback() == names[1]
        rolled = backend.open()
        assert rolled.name == names[1] and "two" in rolled.doc_ids() and "three" not in rolled.doc_ids()


class _Exploding(dict):
    def items(self):
        raise OSError("disk on fire")


def test_the_live_generation_switches_only_when_the_new_one_is_complete(make_backend, corpus, monkeypatch):
    embedder = FakeEmbedder()
    first = build_index(corpus, make_backend(), embedder).generation
    backend = make_backend()
    real_writer = backend.writer

    def failing_writer(previous, dimension):
        writer = real_writer(previous, dimension)
        commit = writer.commit
        writer.commit = lambda manifest, dup, pairs, sources: commit(manifest, dup, pairs, _Exploding(sources))
        return writer

    monkeypatch.setattr(backend, "writer", failing_writer)
    write_corpus(corpus, {**ARTICLES, "ferry": ("Ferry adds a night crossing", "2025-03-20", "A night ferry runs.")})
    with pytest.raises(Exception, match="disk on fire"):
        build_index(corpus, backend, embedder)
    fresh = make_backend()
    assert fresh.live_name() == first and _kept_generations(fresh) == [first]
    assert "ferry" not in fresh.open().doc_ids()
    build_index(corpus, fresh, embedder)  # and the next build completes
    assert "ferry" in fresh.open().doc_ids() and len(_kept_generations(fresh)) == 2


def test_hybrid_search_in_the_engine_ranks_as_our_fusion_of_the_two_lists(tmp_path, corpus):
    from qa.qdrant import QdrantBackend

    backend = QdrantBackend(path=":memory:")
    embedder = FakeEmbedder()
    build_index(corpus, backend, embedder)
    generation = backend.open()

    class TwoLists:  # the same generation without its hybrid search: retrieval fuses the two lists itself
        def __getattr__(self, name):
            if name == "hybrid_search":
                raise AttributeError(name)
            return getattr(generation, name)

    queries = [make_query(q) for q in ("tram riders a day", "who lends ladders", "harbour crane vessels moved")]
    engine = retrieve_many(generation, embedder, queries, 5, RetrievalSettings())
    ours = retrieve_many(TwoLists(), embedder, queries, 5, RetrievalSettings())
    for a, b in zip(engine, ours, strict=True):
        assert [(h.passage_id, h.also_in) for h in a] == [(h.passage_id, h.also_in) for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b])
        assert np.allclose([h.dense_score for h in a], [h.dense_score for h in b], atol=1e-5)
        assert np.allclose(
            [h.keyword_score for h in a if h.keyword_score], [h.keyword_score for h in b if h.keyword_score], rtol=1e-4
        )

    # with a day range, in the same request: the fusion of the two filtered lists
    days = (date(2025, 3, 10).toordinal(), date(2025, 3, 17).toordinal())
    vector, terms = embedder.embed(["tram riders orchard frost"]), tokenize("tram riders orchard frost")
    fused = generation.hybrid_search(vector, [terms], 4, 60, days)[0]
    _, dense = generation.dense_search(vector, 4, days)
    _, keyword = generation.keyword_search(terms, 4, days)
    expected: dict[int, float] = {}
    for ranked in (dense[0].tolist(), keyword.tolist()):
        for rank, pid in enumerate(p for p in ranked if p >= 0):
            expected[pid] = expected.get(pid, 0.0) + 1 / (60 + rank + 1)
    assert dict(zip(fused.ids, fused.scores, strict=True)) == pytest.approx(expected)
    assert all(days[0] <= generation.facts(p.doc_id).day <= days[1] for p in generation.passages(fused.ids))


def _top_articles(answer, count: int = 5) -> list[str]:
    """The first `count` articles of an answer's ranked passages, in order. Passages of equal BM25 score come in
    the engine's order of ties (local mode: its storage order; the embedded backend: passage id), so two
    passages may swap places; which articles rank where does not depend on it (checked with the corpus at
    eight other paths, whose file-named articles get other ids)."""
    articles: list[str] = []
    for hit in answer.passages:
        if hit.doc_id not in articles:
            articles.append(hit.doc_id)
    return articles[:count]


def test_the_sample_corpus_gives_the_same_top_articles_and_answers_with_both_backends(tmp_path):
    from qa.answer import ask_many
    from qa.evaluate import read_questions
    from qa.qdrant import QdrantBackend

    embedder = FakeEmbedder()
    embedded, qdrant = EmbeddedBackend(tmp_path / "index"), QdrantBackend(path=tmp_path / "qdrant")
    for backend in (embedded, qdrant):
        build_index(ROOT / "corpus", backend, embedder)
    a, b = embedded.open(), qdrant.open()
    assert sorted(p.passage_id for p in _passages(a)) == sorted(p.passage_id for p in _passages(b))
    records = read_questions(ROOT / "corpus" / "questions.jsonl")
    questions, dates = [r.question for r in records], [r.question_date for r in records]
    for left, right in zip(
        ask_many(a, embedder, questions, asked_on=dates), ask_many(b, embedder, questions, asked_on=dates), strict=True
    ):
        assert _top_articles(left) == _top_articles(right)
        assert (left.answer, left.abstained) == (right.answer, right.abstained)
    qdrant.close()


def test_a_local_qdrant_index_is_found_again_from_its_folder(tmp_path, corpus):
    from qa.backends import open_backend
    from qa.config import Settings

    settings = Settings(index=str(tmp_path / "index"), backend="qdrant")
    backend = open_backend(settings, for_build=True)  # as `python -m qa build --backend qdrant` does
    build_index(corpus, backend, FakeEmbedder())
    backend.close()
    again = open_backend(Settings(index=str(tmp_path / "index")))  # backend "auto": the one the index records
    assert type(again).__name__ == "QdrantBackend" and again.open().manifest["backend"] == "qdrant"
    again.close()
    assert type(open_backend(Settings(index=str(tmp_path / "other")))).__name__ == "EmbeddedBackend"


def test_the_chat_service_answers_from_a_qdrant_index_and_switches_with_it(tmp_path, corpus):
    from qa.qdrant import QdrantBackend
    from qa.service import ChatService

    backend = QdrantBackend(path=":memory:")
    service = ChatService.open(corpus, tmp_path / "index", FakeEmbedder(), progress=False, backend=backend)
    answer, generation = service.ask("How much does the tram extension cost?")
    assert not answer.abstained and "48 million euros" in answer.answer
    assert service.summary().articles == len(ARTICLES) and not service.refresh()
    write_corpus(corpus, {**ARTICLES, "ferry": ("Ferry adds a night crossing", "2025-03-20", "A night ferry runs.")})
    build_index(corpus, backend, FakeEmbedder())  # as a build process on another machine would
    assert service.refresh() and "ferry" in service.generation.doc_ids()
    service.close()


def test_the_command_line_moves_an_index_to_qdrant_without_embedding_and_asks_it_without_flags(
    tmp_path, corpus, monkeypatch, capsys
):
    import qa.cli

    tokenizer = FakeEmbedder()
    monkeypatch.setattr(qa.cli, "_embedder", lambda settings: tokenizer)
    embedded, moved = str(tmp_path / "embedded"), str(tmp_path / "moved")
    assert qa.cli.main(["build", "--corpus", str(corpus), "--index", embedded, "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    tokenizer.embedded.clear()
    assert (
        qa.cli.main(
            [
                "build",
                "--corpus",
                str(corpus),
                "--index",
                moved,
                "--backend",
                "qdrant",
                "--vectors-from",
                embedded,
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["passages"] == built["passages"] and tokenizer.embedded == []  # every vector was copied
    assert json.loads((Path(moved) / "backend.json").read_text())["backend"] == "qdrant"
    assert qa.cli.main(["ask", "--index", moved, "--json", "How much does the tram extension cost?"]) == 0
    assert "48 million euros" in json.loads(capsys.readouterr().out)["answer"]
    assert qa.cli.main(["stats", "--index", moved, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "qdrant"


def test_the_backend_settings_come_from_flags_then_the_environment(monkeypatch):
    import app
    from qa.config import Settings
    from qa.errors import QAError

    monkeypatch.setenv("QA_BACKEND", "qdrant")
    monkeypatch.setenv("QA_QDRANT_URL", "http://qdrant.example:6333")
    monkeypatch.setenv("QA_QDRANT_SHARDS", "12")
    settings = app.read_settings(["--qdrant-url", "http://other.example:6333", "--qdrant-api-key", "k"])
    assert (settings.backend, settings.qdrant_url, settings.qdrant_api_key) == (
        "qdrant",
        "http://other.example:6333",
        "k",
    )
    assert settings.qdrant_shards == 12 and settings.qdrant_collection == "newsqa"
    with pytest.raises(QAError, match=r"backend 'faiss' \(from --backend or \$QA_BACKEND\)"):
        Settings.from_env({"QA_BACKEND": "faiss"})
    with pytest.raises(QAError, match=r"\$QA_QDRANT_QUANTIZATION"):
        Settings.from_env({"QA_QDRANT_QUANTIZATION": "binary"})
