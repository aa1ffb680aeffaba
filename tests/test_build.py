"""A build costs what changed: unchanged files are not read, unchanged articles are not chunked, tokenised or
compared for copies again, and the segments holding them are reused as they are."""

import json
import os
import shutil

import numpy as np
import pytest

import qa.build
import qa.dedupe
import qa.ingest
import qa.segments
import qa.store
from qa.answer import ask
from qa.build import build_index
from qa.store import load_generation
from tests.conftest import NEWS, FakeEmbedder, write_articles

WIRE = (
    "Port strike ends after nine days",
    "Dock workers at the port of Kelby voted on Monday to end a strike that had lasted nine days. "
    "The union said the new contract raises wages by 6 percent over two years. Ships waiting offshore "
    "began to unload on Monday evening, the harbour master said.",
)
COPY = ("Kelby dock strike is over", WIRE[1] + " The port handles a third of the region's imports.")


@pytest.fixture
def corpus(tmp_path):
    return write_articles(tmp_path / "corpus", {**NEWS, "wire.txt": WIRE, "copy.txt": COPY})


class Counting:
    """Wraps a function and counts its calls and, with `size`, the items of its first argument."""

    def __init__(self, monkeypatch, owner, name, size=False):
        self.calls, self.items, self.size = 0, 0, size
        self.function = getattr(owner, name)
        monkeypatch.setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.items += len(args[0]) if self.size else 0
        return self.function(*args, **kwargs)


def doc(generation, title_start):
    """The doc_id of the article whose title starts so (file articles' ids are hashes of their paths)."""
    (found,) = [d for d in generation.doc_ids() if generation.article(d).title.startswith(title_start)]
    return found


def _copies_are_one_story(generation):
    return generation.facts(doc(generation, "Kelby")).group == generation.facts(doc(generation, "Port strike")).group


def _segments(generation):
    return [entry["name"] for entry in generation.manifest["segments"]]


def test_nothing_changed_reads_no_file_and_a_touched_file_is_read_once(corpus, tmp_path, monkeypatch):
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    reads = Counting(monkeypatch, qa.ingest, "_read_file")
    report = build_index(corpus, index, FakeEmbedder())
    assert report.up_to_date and reads.calls == 0 and report.files_unchanged == report.files == 5
    assert report.articles_read == 5 and report.unchanged == 5

    os.utime(corpus / "storm.txt", ns=(1, 1))  # touched: same text, another time
    report = build_index(corpus, index, FakeEmbedder())
    assert report.up_to_date and reads.calls == 1 and report.files_unchanged == 4
    report = build_index(corpus, index, FakeEmbedder())  # the file table was saved by the build that read it
    assert report.up_to_date and reads.calls == 1 and report.files_unchanged == 5


def test_an_added_article_is_the_only_one_chunked_tokenised_embedded_and_compared(corpus, tmp_path, monkeypatch):
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    before = load_generation(index)
    ids_before = {p.passage_id: p for p in before.stored_passages()}
    assert _copies_are_one_story(before)  # the two outlets' copies are one story
    write_articles(corpus, {"ferry.txt": ("Ferry fares rise", "The Gull Island ferry now costs 4 dollars.")})

    chunked = Counting(monkeypatch, qa.build, "chunk_article")
    tokenised = Counting(monkeypatch, qa.segments, "tokenize")
    compared = Counting(monkeypatch, qa.dedupe, "shingles")
    embedder = FakeEmbedder()
    report = build_index(corpus, index, embedder)
    after = load_generation(index)
    added = after.article_passages(doc(after, "Ferry"))
    assert (report.new, report.unchanged, report.files_unchanged) == (1, 5, 5)
    assert chunked.calls == 1 and tokenised.calls == len(added) == report.embedded == len(embedder.embedded)
    assert compared.calls <= 2  # the new article and at most one candidate; the known pair is not redone
    assert _segments(after)[:-1] == _segments(before)  # the old segment is reused as it is
    assert _copies_are_one_story(after)
    assert {p.passage_id for p in after.stored_passages()} == set(ids_before) | {p.passage_id for p in added}
    assert "4 dollars" in ask(after, FakeEmbedder(), "How much does the Gull Island ferry cost?").citations[0].quote


def test_a_changed_article_replaces_its_passages_and_a_removed_one_is_gone(corpus, tmp_path):
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    before = load_generation(index)
    storm, budget, chess = doc(before, "Hurricane"), doc(before, "Senate"), doc(before, "Teenager")
    storm_ids = {p.passage_id for p in before.article_passages(storm)}
    write_articles(
        corpus,
        {
            "chess.txt": (
                "Teenager wins chess title",
                "A 16-year-old from Oslo won the title on Sunday after a playoff that lasted until midnight.",
            )
        },
    )
    (corpus / "budget.txt").unlink()
    report = build_index(corpus, index, FakeEmbedder())
    after = load_generation(index)
    assert (report.changed, report.removed) == (1, 1) and budget not in after.doc_ids()
    assert {p.passage_id for p in after.article_passages(storm)} == storm_ids  # ids are stable
    live = {p.passage_id for p in after.stored_passages()}
    assert not live & {p.passage_id for p in before.article_passages(budget)}
    assert after.article(chess).text.endswith("until midnight.")
    for question in ("When will the House vote on the budget?", "Who won the chess title?"):
        for citation in ask(after, FakeEmbedder(), question).citations:
            assert citation.doc_id != budget
            assert after.article(citation.doc_id).text[citation.start : citation.end] == citation.quote
    dead = {p.passage_id for p in before.stored_passages()} - live
    query = FakeEmbedder().embed(["Senate budget vote"])
    assert dead and not set(after.dense_search(query, 20)[1][0].tolist()) & dead
    assert not set(after.keyword_search(["budget", "senat"], 20)[1].tolist()) & dead


def test_too_many_segments_merge_into_one_with_the_same_answers(corpus, tmp_path, monkeypatch):
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    monkeypatch.setattr(qa.store, "MAX_SEGMENTS", 3)
    for n in range(2):
        write_articles(corpus, {f"late{n}.txt": (f"Late news {n}", f"Late article {n} about the harbour works.")})
        build_index(corpus, index, FakeEmbedder())
    generation = load_generation(index)
    assert len(_segments(generation)) == 3
    question = "How many homes lost power in the hurricane?"
    before = ask(generation, FakeEmbedder(), question)
    write_articles(corpus, {"late2.txt": ("Late news 2", "Late article 2 about the harbour works.")})
    embedder = FakeEmbedder()
    build_index(corpus, index, embedder)
    merged = load_generation(index)
    assert len(_segments(merged)) == 1 and merged.passage_count() == generation.passage_count() + 1
    assert len(embedder.embedded) == 1  # only the new article's passage: the rest is copied
    assert [c.quote for c in ask(merged, FakeEmbedder(), question).citations] == [c.quote for c in before.citations]
    assert _copies_are_one_story(merged)
    named = {
        entry["name"]
        for folder in index.glob("gen-*")
        for entry in json.loads((folder / "manifest.json").read_text())["segments"]
    }
    assert {p.name for p in (index / "segments").iterdir()} == named  # segments no generation names are gone
    assert len(list(index.glob("gen-*"))) == 2


def test_dense_and_keyword_search_keep_to_a_day_range(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for day in (1, 2, 3):
        (corpus / f"day{day}.txt").write_text(
            f"Title: Harbour works, day {day}\nDate: 2025-07-0{day}\n\n"
            f"The harbour works continued on day {day} with new cranes."
        )
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    generation = load_generation(index)
    from datetime import date

    second = date(2025, 7, 2).toordinal()
    query = FakeEmbedder().embed(["harbour works cranes"])
    _, dense = generation.dense_search(query, 10, days=(second, second))
    _, keyword = generation.keyword_search(["harbour"], 10, days=(second, second))
    day_two = doc(generation, "Harbour works, day 2")
    for found in (dense[0][dense[0] >= 0], keyword):
        assert found.size and {p.doc_id for p in generation.passages(found.tolist())} == {day_two}
    assert np.all(generation.keyword_search(["harbour"], 10)[0] > 0)
    assert len({p.doc_id for p in generation.passages(generation.keyword_search(["harbour"], 10)[1])}) == 3


def test_an_index_of_another_ingest_version_reads_every_file_again_and_embeds_nothing(corpus, tmp_path, monkeypatch):
    """How articles are read (dates, duplicates) can change between versions: a build over an index of
    another version reads each file again, however unchanged, and reuses the vectors of unchanged passages."""
    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    assert load_generation(index).manifest["ingest"] == qa.ingest.INGEST_VERSION
    monkeypatch.setattr(qa.build, "INGEST_VERSION", qa.ingest.INGEST_VERSION + 1)
    reads = Counting(monkeypatch, qa.ingest, "_read_file")
    embedder = FakeEmbedder()
    report = build_index(corpus, index, embedder)
    assert reads.calls == report.files == 5 and report.files_unchanged == 0 and embedder.embedded == []
    assert load_generation(index).manifest["ingest"] == qa.ingest.INGEST_VERSION + 1
    report = build_index(corpus, index, FakeEmbedder())  # read as this version reads: nothing read again
    assert report.up_to_date and reads.calls == 5 and report.files_unchanged == 5


def test_the_reader_calibration_is_kept_in_the_manifest_and_a_new_one_needs_no_embedding(corpus, tmp_path, monkeypatch):
    """The abstention threshold and reader weights travel with the index they were fitted for; refitting them
    makes the next build write a generation that carries the new ones, embedding nothing."""
    from qa.answer import reader_model_for
    from qa.reader import ReaderModel

    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    generation = load_generation(index)
    bundled = ReaderModel.load()
    assert generation.manifest["reader"] == bundled.as_dict() and reader_model_for(generation) == bundled

    refitted = {**bundled.as_dict(), "min_answerable": 0.99}
    monkeypatch.setattr(qa.build, "reader_calibration", lambda: refitted)
    embedder = FakeEmbedder()
    report = build_index(corpus, index, embedder)
    assert not report.up_to_date and embedder.embedded == []
    regenerated = load_generation(index)
    assert _segments(regenerated) == _segments(generation)
    assert reader_model_for(regenerated).min_answerable == 0.99
    assert reader_model_for(generation).min_answerable == bundled.min_answerable


def test_an_index_of_layout_4_is_rebuilt_into_segments_reusing_every_vector(corpus, tmp_path):
    """Layout 4 (one FAISS file and one SQLite store per generation, FAISS row = passage id): the first build of
    this version reads its vectors by text hash and embeds nothing; the old generation is then served no more."""
    import sqlite3

    import faiss

    index = tmp_path / "index"
    build_index(corpus, index, FakeEmbedder())
    built = load_generation(index)
    passages = list(built.stored_passages())
    old = index / "gen-20200101T000000000000"  # what version 4 wrote, made from the same passages
    old.mkdir()
    vectors = faiss.IndexFlatIP(built.dimension)
    vectors.add(built.vectors([p.passage_id for p in passages]))
    faiss.write_index(vectors, str(old / "vectors.faiss"))
    with sqlite3.connect(old / "store.sqlite") as db:
        db.execute("CREATE TABLE articles (doc_id TEXT, content_hash TEXT)")
        db.executemany("INSERT INTO articles VALUES (?, ?)", built.article_hashes().items())
        db.execute(
            "CREATE TABLE passages (passage_id INTEGER, doc_id TEXT, start INTEGER, end INTEGER, embed_hash TEXT)"
        )
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?)",
            [(row, p.doc_id, p.start, p.end, p.embed_hash) for row, p in enumerate(passages)],
        )
    db.close()
    (old / "manifest.json").write_text(
        json.dumps({"store_version": 4, "model": built.model_id, "dimension": built.dimension})
    )
    (index / "CURRENT").write_text(old.name + "\n")
    for folder in index.iterdir():  # nothing of this version's layout is left
        if folder.is_dir() and folder != old:
            shutil.rmtree(folder)

    embedder = FakeEmbedder()
    report = build_index(corpus, index, embedder)
    assert not report.up_to_date and embedder.embedded == [] and report.reused_vectors == len(passages)
    rebuilt = load_generation(index)
    assert rebuilt.manifest["store_version"] == qa.store.STORE_VERSION
    assert {p.passage_id for p in rebuilt.stored_passages()} == {p.passage_id for p in passages}
