import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from qa.answer import ask
from qa.errors import BuildInProgress, IndexCorrupt, IndexNotFound, ModelMismatch, NothingIndexed
from qa.store import CURRENT, build_index, build_lock, load_generation
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
    assert manifest["articles"] == 3 and manifest["passages"] == generation.vectors.ntotal
    assert {"chunking", "versions", "fingerprint", "built_at"} <= set(manifest)
    assert (index / CURRENT).read_text().strip() == generation.name
    # vectors in the index are the embeddings of the stored passages (brute-force oracle)
    for stored in generation.passages:
        article = generation.article(stored.doc_id)
        expected = fake_embedder.embed([f"{article.title}\n{article.text[stored.start:stored.end]}"])[0]
        assert np.allclose(generation.vectors.reconstruct(stored.passage_id), expected, atol=1e-6)


def test_dense_search_matches_numpy_oracle(corpus, tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    matrix = generation.vectors.reconstruct_n(0, generation.vectors.ntotal)
    query = fake_embedder.embed(["hurricane power homes"])
    scores, ids = generation.search(query, 3)
    oracle = np.argsort(-(matrix @ query[0]))[:3]
    assert list(ids[0]) == list(oracle)


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
        "Hurricane Delta hits the coast", "Rail strike ends", "Senate passes budget after long night"]
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
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "build_with_fake.py"), str(corpus), str(index),
                                str(marker)], cwd=ROOT)
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
    monkeypatch.setattr("qa.store.FLAT_LIMIT", 2)
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    generation = load_generation(index)
    assert generation.manifest["faiss_index"] == "IndexHNSWFlat" and generation.vectors.hnsw.efSearch == 128
    answer = ask(generation, fake_embedder, "How many homes lost power in the hurricane?")
    assert "300,000 homes lost power" in answer.citations[0].quote
    matrix = generation.vectors.reconstruct_n(0, generation.vectors.ntotal)
    query = fake_embedder.embed(["hurricane power homes"])
    assert generation.search(query, 1)[1][0][0] == int(np.argmax(matrix @ query[0]))


@pytest.mark.parametrize("damage", ["truncate-vectors", "flip-vectors", "garble-sqlite", "garble-manifest",
                                    "remove-keyword"])
def test_a_damaged_generation_falls_back_to_the_previous_one(corpus, tmp_path, fake_embedder, damage):
    index = tmp_path / "index"
    build_index(corpus, index, fake_embedder)
    good = load_generation(index).name
    write_articles(corpus, {"more.txt": ("More news", "Another article about the harbour opening.")})
    build_index(corpus, index, fake_embedder)
    current = load_generation(index).path
    if damage == "truncate-vectors":
        data = (current / "vectors.faiss").read_bytes()
        (current / "vectors.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "flip-vectors":
        data = bytearray((current / "vectors.faiss").read_bytes())
        data[-7] ^= 0xFF
        (current / "vectors.faiss").write_bytes(bytes(data))
    elif damage == "garble-sqlite":
        (current / "store.sqlite").write_bytes(b"not a database" * 100)
    elif damage == "garble-manifest":
        (current / "manifest.json").write_text("{ broken")
    else:
        for file in (current / "keyword").iterdir():
            file.unlink()
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


def test_document_frequencies_read_off_the_bm25_matrix_match_a_count_of_the_tokens(tmp_path):
    from collections import Counter

    import bm25s

    from qa.keyword import document_frequencies, tokenize

    texts = ["The ferry fare rose to 4.50 dollars.", "Ferry services resumed; the ferry fare fell.", "Rain, rain.",
             "", "Dollars and cents: the fare, the fares."]
    tokens = [tokenize(t) or ["\u2205"] for t in texts]
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    assert document_frequencies(retriever) == Counter(term for passage in tokens for term in set(passage))
