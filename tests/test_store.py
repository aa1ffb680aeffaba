import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from qa.answer import ask
from qa.backend import build_lock
from qa.build import build_index
from qa.errors import BuildInProgress, IndexCorrupt, IndexNotFound, ModelMismatch, NothingIndexed
from qa.store import CURRENT, load_generation
from tests.conftest import NEWS, ROOT, FakeEmbedder, write_articles


@pytest.fixture
def corpus(tmp_path):
    return write_articles(tmp_path / "corpus", NEWS)


def _generations(index):
    return sorted(p.name for p in index.iterdir() if p.name.startswith("gen-"))


def test_build_writes_a_complete_generation(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    report = build_index(corpus, index, fake_embedder)
    assert (report.articles_read, report.new, report.embedded) == (3, 3, report.passages)
    generation = load_generation(index)
    manifest = generation.manifest
    assert manifest["model"] == "fake-hash" and manifest["dimension"] == 64 and manifest["normalized"]
    assert manifest["articles"] == 3 and manifest["passages"] == generation.passage_count()
    assert {"chunking", "versions", "fingerprint", "built_at"} <= set(manifest)
    assert (index / CURRENT).read_text().strip() == generation.name
    # vectors in the index are the embeddings of the stored passages (brute-force oracle)
    for stored in generation.stored_passages():
        article = generation.article(stored.doc_id)
        expected = fake_embedder.embed([f"{article.title}\n{article.text[stored.start : stored.end]}"])[0]
        assert np.allclose(generation.vectors([stored.passage_id])[0], expected, atol=1e-6)


def _all_vectors(generation):
    ids = [p.passage_id for p in generation.stored_passages()]
    return ids, generation.vectors(ids)


def test_dense_search_matches_numpy_oracle(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    ids, matrix = _all_vectors(generation)
    query = fake_embedder.embed(["hurricane power homes"])
    scores, found = generation.dense_search(query, 3)
    oracle = [ids[i] for i in np.argsort(-(matrix @ query[0]))[:3]]
    assert list(found[0]) == oracle


def test_a_search_for_a_few_questions_runs_faiss_on_one_thread_and_gives_the_threads_back(
    corpus, tmp_path, fake_embedder, monkeypatch
):
    import faiss

    build_index(corpus, tmp_path / "index", fake_embedder)
    generation = load_generation(tmp_path / "index")
    queries = fake_embedder.embed(["hurricane power homes", "bridge cost", "school year", "river flood", "budget"])
    expected = generation.dense_search(queries, 3)
    before = faiss.omp_get_max_threads()
    set_to: list[int] = []
    real = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (set_to.append(n), real(n)))
    one = generation.dense_search(queries[:1], 3)
    assert set_to == [1, before] and faiss.omp_get_max_threads() == before
    assert list(one[1][0]) == list(expected[1][0])  # the same passages as in a batch
    set_to.clear()
    generation.dense_search(queries, 3)  # a batch keeps OpenMP's threads
    assert set_to == []


def test_answer_is_a_verified_verbatim_quote(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    answer = ask(generation, fake_embedder, "How many homes lost power in the hurricane?")
    assert not answer.abstained
    citation = answer.citations[0]
    assert "300,000 homes lost power" in citation.quote
    assert generation.article(citation.doc_id).text[citation.start : citation.end] == citation.quote
    assert citation.title == "Hurricane Delta hits the coast"
    assert f"[{citation.n}]" in answer.answer and citation.quote in answer.answer


def test_incremental_rebuild_embeds_only_what_changed(corpus, tmp_path):
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    first = load_generation(index).name

    again = FakeEmbedder()
    report = build_index(corpus, index, again)
    assert report.up_to_date and again.embedded == [] and load_generation(index).name == first

    (corpus / "storm.txt").write_text("Hurricane Delta hits the coast\nHurricane Delta weakened over Texas.\n")
    (corpus / "chess.txt").unlink()
    write_articles(corpus, {"new.txt": ("Rail strike ends", "The rail strike ended on Monday after talks.")})
    changed = FakeEmbedder()
    report = build_index(corpus, index, changed)
    assert (report.new, report.changed, report.removed, report.unchanged) == (1, 1, 1, 1)
    assert report.embedded == len(changed.embedded) == 2
    assert all("Delta weakened" in t or "rail strike" in t for t in changed.embedded)
    generation = load_generation(index)
    assert generation.name != first
    assert sorted(a.title for a in generation.iter_articles()) == [
        "Hurricane Delta hits the coast",
        "Rail strike ends",
        "Senate passes budget after long night",
    ]
    assert len(_generations(index)) == 2  # the previous generation is kept, older ones go


def test_only_the_last_two_generations_are_kept(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    for i in range(4):
        write_articles(corpus, {f"extra{i}.txt": (f"Extra {i}", f"Extra article number {i} body.")})
        build_index(corpus, index, fake_embedder)
    generations = _generations(index)
    assert len(generations) == 2 and load_generation(index).name == generations[-1]


def test_loading_under_another_model_names_both(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    with pytest.raises(ModelMismatch) as error:
        load_generation(index, model_id="all-MiniLM-L6-v2", dimension=384)
    assert "fake-hash (dimension 64)" in str(error.value) and "all-MiniLM-L6-v2 (dimension 384)" in str(error.value)


def test_missing_index_and_empty_corpus_are_user_errors(tmp_path, fake_embedder):
    with pytest.raises(IndexNotFound, match="build one first"):
        load_generation(tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("")
    with pytest.raises(NothingIndexed) as error:
        build_index(empty, tmp_path / "index", fake_embedder)
    assert error.value.report.skipped[0].reason == "empty file"


def test_a_second_build_is_refused_while_one_runs(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    with build_lock(index):
        with pytest.raises(BuildInProgress):
            build_index(corpus, index, fake_embedder)


def test_killed_build_leaves_the_previous_generation_answering(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    before = load_generation(index).name
    write_articles(corpus, {"late.txt": ("Late news", "A late article arrives during the build.")})
    marker = tmp_path / "marker"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "build_with_fake.py"), str(corpus), str(index), str(marker)], cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the build never reached embedding"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    generation = load_generation(index)
    assert generation.name == before
    answer = ask(generation, fake_embedder, "How many homes lost power?")
    assert "300,000" in answer.citations[0].quote
    report = build_index(corpus, index, fake_embedder)  # the next build succeeds and cleans up
    assert report.new == 1 and load_generation(index).name != before
    assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")]


def test_manifest_is_json_with_counts(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    manifest = json.loads((generation.path / "manifest.json").read_text())
    assert manifest["sentences"] > manifest["passages"] >= manifest["articles"] == 3


def test_large_corpora_switch_to_a_graph_index(corpus, tmp_path, fake_embedder, monkeypatch):
    monkeypatch.setattr("qa.segments.FLAT_LIMIT", 2)
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    assert generation.manifest["faiss_index"] == "IndexHNSWFlat"
    assert generation.segments[0].search_index.hnsw.efSearch == 128
    answer = ask(generation, fake_embedder, "How many homes lost power in the hurricane?")
    assert "300,000 homes lost power" in answer.citations[0].quote
    ids, matrix = _all_vectors(generation)
    query = fake_embedder.embed(["hurricane power homes"])
    assert generation.dense_search(query, 1)[1][0][0] == ids[int(np.argmax(matrix @ query[0]))]


@pytest.mark.parametrize(
    "damage", ["truncate-vectors", "flip-vectors", "garble-sqlite", "garble-manifest", "remove-keyword"]
)
def test_a_damaged_generation_falls_back_to_the_previous_one(corpus, tmp_path, fake_embedder, damage):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    good = load_generation(index).name
    write_articles(corpus, {"more.txt": ("More news", "Another article about the harbour opening.")})
    build_index(corpus, index, fake_embedder)
    loaded = load_generation(index)
    current, segment = loaded.path, loaded.segments[-1].path  # the segment only the new generation has
    if damage == "truncate-vectors":
        data = (segment / "vectors.npy").read_bytes()
        (segment / "vectors.npy").write_bytes(data[: len(data) // 2])
    elif damage == "flip-vectors":
        data = bytearray((segment / "vectors.npy").read_bytes())
        data[-7] ^= 0xFF
        (segment / "vectors.npy").write_bytes(bytes(data))
    elif damage == "garble-sqlite":
        (segment / "store.sqlite").write_bytes(b"not a database" * 100)
    elif damage == "garble-manifest":
        (current / "manifest.json").write_text("{ broken")
    else:
        (segment / "terms.npz").unlink()
    generation = load_generation(index)
    assert generation.name == good
    assert generation.fallback_from[0] == current.name and generation.fallback_from[1]
    assert "300,000" in ask(generation, fake_embedder, "How many homes lost power?").citations[0].quote
    with pytest.raises(IndexCorrupt, match="rebuild it with `python -m qa build`"):
        load_generation(index, fallback=False)


def test_no_loadable_generation_says_how_to_rebuild(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    (load_generation(index).path / "manifest.json").write_text("")
    with pytest.raises(IndexCorrupt, match="rebuild it with `python -m qa build`"):
        load_generation(index)


def test_bm25_over_segments_with_a_replaced_passage_equals_bm25_over_the_live_passages_as_one_corpus():
    """Term counts in two segments, one passage of the first replaced: scores are those of the formula
    (bm25s's lucene variant) computed by hand over the live passages alone, as if they were one corpus."""
    import math

    from qa.keyword import BM25, K1, B, TermCounts, tokenize

    texts = [
        "The ferry fare rose to 4.50 dollars.",
        "Ferry services resumed; the ferry fare fell.",
        "Rain, rain.",
        "",
        "Dollars and cents: the fare, the fares.",
    ]
    first, second = TermCounts.count(texts[:3]), TermCounts.count(texts[3:])
    live_first = np.array([True, False, True])  # the second passage was replaced since
    bm25 = BM25([(first, live_first), (second, np.ones(2, dtype=bool))])
    live = [tokenize(t) or ["\u2205"] for i, t in enumerate(texts) if i != 1]
    mean = sum(map(len, live)) / len(live)
    query = tokenize("ferry fare dollars")

    def oracle(terms):
        total = 0.0
        for term in query:
            df = sum(term in passage for passage in live)
            if df:
                tf = terms.count(term)
                idf = math.log(1 + (len(live) - df + 0.5) / (df + 0.5))
                total += idf * tf / (tf + K1 * (1 - B + B * len(terms) / mean))
        return total

    got = [*bm25.scores(query, 0)[[0, 2]], *bm25.scores(query, 1)]
    assert np.allclose(got, [oracle(terms) for terms in live], atol=1e-5)
    assert bm25.scores(query, 0)[1] == 0  # the replaced passage is never found
    assert bm25.passages == 4 and bm25.doc_freq[tokenize("ferry")[0]] == 1
