import itertools

import pytest

from qa.chunk import ChunkSettings, chunk_article, embed_text, split_sentences
from qa.ingest import make_article
from tests.conftest import NEWS, FakeEmbedder

COUNT = FakeEmbedder().count_tokens


def _article(body: str, title: str = "Headline"):
    return make_article({"title": title, "text": body}, "test")


def test_sentences_respect_news_abbreviations_and_datelines():
    text = (
        'WASHINGTON (AP) — The U.S. Senate voted on Tuesday. Dr. Smith said "It is over." Then he left.\n'
        "“We will win,” he said. “No doubt.” The company, Acme Inc., reported $3.5 billion in revenue."
    )
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert sentences == [
        "WASHINGTON (AP) — The U.S. Senate voted on Tuesday.",
        'Dr. Smith said "It is over."',
        "Then he left.",
        "“We will win,” he said.",
        "“No doubt.”",
        "The company, Acme Inc., reported $3.5 billion in revenue.",
    ]


def test_offsets_slice_the_article_exactly():
    for title, body in NEWS.values():
        article = _article(body, title)
        passages, sentences = chunk_article(article, COUNT, ChunkSettings(max_tokens=100, min_text_tokens=20))
        assert passages and sentences
        for item in [*passages, *sentences]:
            assert item.doc_id == article.doc_id
        for p in passages:
            assert article.text[p.start : p.end] == p.text
        covered = {s for p in passages for s in range(p.start, p.end)}
        assert all(s.start in covered for s in sentences)  # no sentence is lost


def test_passages_fit_the_budget_and_overlap_by_one_sentence():
    body = " ".join(f"Sentence number {i} tells one more thing about the story." for i in range(60))
    article = _article(body)
    settings = ChunkSettings(max_tokens=80, min_text_tokens=20)
    passages, sentences = chunk_article(article, COUNT, settings)
    budget = settings.max_tokens - settings.special_tokens - (COUNT([article.title])[0] + 1)
    assert len(passages) > 3
    for p in passages:
        assert COUNT([p.text])[0] <= budget
    starts = {s.start: s for s in sentences}
    for before, after in itertools.pairwise(passages):
        first_of_next = starts[after.start]
        assert before.start < after.start < before.end  # exactly one sentence shared
        assert first_of_next.end == before.end


def test_sentence_longer_than_a_passage_is_cut_at_words():
    body = "word " * 500 + "end."
    article = _article(body.strip())
    passages, _ = chunk_article(article, COUNT, ChunkSettings(max_tokens=100, min_text_tokens=20))
    assert len(passages) >= 5
    assert all(article.text[p.start : p.end] == p.text and not p.text.startswith(" ") for p in passages)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="max_tokens=50"):
        ChunkSettings(max_tokens=50)
    with pytest.raises(ValueError, match="overlap_sentences=7"):
        ChunkSettings(overlap_sentences=7)


def test_embed_text_prefixes_the_headline():
    assert embed_text("Title", "Body.") == "Title\nBody."
    assert embed_text("Title", "") == "Title" and embed_text("", "Body.") == "Body."


def test_a_page_without_text_is_one_empty_passage_and_no_sentence():
    page = make_article({"title": "Harbour ferry fares rise", "text": "", "url": "https://e.example/f"}, "test")
    passages, sentences = chunk_article(page, COUNT)
    assert [(p.start, p.end, p.text) for p in passages] == [(0, 0, "")] and sentences == []


def test_a_list_item_is_split_into_its_sentences_without_its_marker():
    text = "Our wish list:\n• Bring the fair back. It left town in 1998. The new hall is ready.\n► One more thing."
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert sentences == [
        "Our wish list:",
        "Bring the fair back.",
        "It left town in 1998.",
        "The new hall is ready.",
        "One more thing.",
    ]
