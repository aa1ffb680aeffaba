"""The real bundled model end to end, on the sample corpus and on the evaluation corpus where present."""

import re

import pytest

from qa.answer import ask
from qa.build import build_index
from qa.chunk import ChunkSettings, chunk_article
from qa.ingest import QUESTION_FILE, read_corpus
from qa.store import load_generation
from tests.conftest import ROOT


@pytest.mark.model
def test_sample_corpus_answers_the_seed_question(tmp_path, product_embedder):
    report = build_index(ROOT / "corpus", tmp_path / "index", product_embedder)
    assert report.articles_read >= 1
    assert [s.reason for s in report.skipped] == [QUESTION_FILE]  # corpus/questions.jsonl, for qa eval
    generation = load_generation(tmp_path / "index", product_embedder.model_id, product_embedder.dimension)
    answer = ask(generation, product_embedder, "Who did Ishaq Dar speak with by phone?")
    assert not answer.abstained
    quote = answer.citations[0]
    assert "Rubio" in quote.quote
    assert generation.article(quote.doc_id).text[quote.start : quote.end] == quote.quote


@pytest.mark.model
@pytest.mark.evalset
def test_offsets_are_exact_over_the_whole_evaluation_corpus(eval_dir, product_embedder):
    result = read_corpus(eval_dir / "corpus.jsonl.gz")
    assert len(result.articles) > 3500
    settings = ChunkSettings()
    count = 0
    for article in result.articles:
        passages, sentences = chunk_article(article, product_embedder.count_tokens, settings)
        if not article.text:  # a page kept by its headline alone: one empty passage, no sentence
            assert [(p.start, p.end) for p in passages] == [(0, 0)] and not sentences and article.title
            continue
        starts, ends = {s.start for s in sentences}, {s.end for s in sentences}
        for passage in passages:
            assert article.text[passage.start : passage.end] == passage.text
            assert passage.start in starts and passage.end in ends  # whole sentences only
        covered = bytearray(len(article.text))
        for sentence in sentences:
            assert 0 <= sentence.start < sentence.end <= len(article.text)
            text = article.text[sentence.start : sentence.end]
            assert text == text.strip() and text
            covered[sentence.start : sentence.end] = b"\x01" * (sentence.end - sentence.start)
        for marker in re.finditer(r"^[^\S\n]*[•●▪■►♦](?=\s)", article.text, re.M):  # a list item's bullet
            covered[marker.end() - 1] = 1
        lost = [c for c, seen in zip(article.text, covered, strict=True) if not seen and not c.isspace()]
        assert not lost, (article.doc_id, "".join(lost)[:80])  # every visible character but bullets is in a sentence
        count += len(passages)
    assert count > 20000
