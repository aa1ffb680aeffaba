import gzip
import json

import pytest

from qa.errors import CorpusNotFound
from qa.ingest import MAX_FILE_BYTES, normalize_date, normalize_text, read_corpus
from tests.conftest import ROOT


def test_seed_article_title_and_body():
    result = read_corpus(ROOT / "corpus")
    seed = next(a for a in result.articles if "Rubio" in a.text)
    assert seed.title == "Dar, Rubio discuss bilateral ties, regional issues"
    assert seed.text.startswith("US Secretary of State Marco Rubio (left)")
    assert seed.doc_id.startswith("file-")


def test_formats_and_field_aliases(tmp_path):
    (tmp_path / "a.md").write_text("\n# Markdown headline\n\nFirst paragraph.\n", encoding="utf-8")
    (tmp_path / "b.json").write_text(
        json.dumps(
            {"id": "b1", "title": "One", "body": "Body one.", "url": "https://www.example.com/x", "date": "2022/07/06"}
        )
    )
    (tmp_path / "c.json").write_text(
        json.dumps([{"title": "L1", "text": "List one."}, {"title": "L2", "text": "List two."}])
    )
    (tmp_path / "d.jsonl").write_text(
        json.dumps(
            {
                "doc_id": "d1",
                "title": "J",
                "text": "Line one.",
                "published": "2022-06-01T10:00:00Z",
                "authors": ["A. Writer"],
                "source": "Wire",
            }
        )
        + "\n"
    )
    with gzip.open(tmp_path / "e.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"title": "G", "text": "Gzipped.", "url": "https://news.example.org/g"}) + "\n")
    (tmp_path / "f.html").write_text(
        "<html><head><title>Page title</title><meta property='og:site_name' content='Daily Example'>"
        "<meta name='date' content='2022-08-01'></head><body><article><h1>Page title</h1>"
        + "".join(f"<p>Paragraph number {i} of the story has enough words to count as text.</p>" for i in range(6))
        + "</article></body></html>"
    )
    result = read_corpus(tmp_path)
    by_title = {a.title: a for a in result.articles}
    assert not result.skipped, result.skipped
    assert by_title["Markdown headline"].text == "First paragraph."
    b = by_title["One"]
    assert (b.doc_id, b.text, b.source, b.publish_date) == ("b1", "Body one.", "example.com", "2022-07-06")
    assert {"L1", "L2"} <= set(by_title)
    d = by_title["J"]
    assert (d.publish_date, d.authors, d.source) == ("2022-06-01", ("A. Writer",), "Wire")
    g = by_title["G"]
    assert g.doc_id.startswith("url-") and g.source == "news.example.org"
    html = by_title["Page title"]
    assert "Paragraph number 3" in html.text and html.publish_date == "2022-08-01"


def test_ids_are_stable_across_reads(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"title": "T", "text": "Some text.", "url": "https://a.b/c"}) + "\n")
    assert read_corpus(tmp_path).articles[0].doc_id == read_corpus(tmp_path).articles[0].doc_id


def test_normalisation_is_applied_once():
    raw = "Cafe\u0301  au   lait\r\n\r\n\r\n\r\nNext\tline \x07end  "
    assert normalize_text(raw) == "Caf\u00e9 au lait\n\nNext line end"
    assert normalize_date("Wed, 06 Jul 2022 10:00:00 GMT") == "2022-07-06"
    assert normalize_date("not a date") is None


def test_bad_input_is_reported_and_the_rest_indexed(tmp_path, monkeypatch):
    (tmp_path / "good.txt").write_text("Good headline\nGood body text.\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\x00\x01\x02")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 headline\nbody\n".encode("latin-1"))
    (tmp_path / "headline_only.txt").write_text("Only a headline\n")
    (tmp_path / "lines.jsonl").write_text(
        json.dumps({"title": "ok", "text": "Fine line."}) + "\n{not json\n" + json.dumps({"title": "no text"}) + "\n"
    )
    (tmp_path / "z_dup.txt").write_text("Good headline\nGood body text.\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr("qa.ingest.MAX_FILE_BYTES", 1000)
    (tmp_path / "huge.txt").write_text("Huge\n" + "word " * 1000)
    result = read_corpus(tmp_path)
    assert sorted(a.title for a in result.articles) == ["Good headline", "ok"]
    reasons = {s.origin.split("/")[-1]: s.reason for s in result.skipped}
    assert reasons["empty.txt"] == "empty file"
    assert "NUL" in reasons["binary.txt"]
    assert "invalid UTF-8" in reasons["latin1.txt"]
    assert reasons["headline_only.txt"] == "article has no text"
    assert "malformed JSON" in reasons["lines.jsonl:2"]
    assert reasons["lines.jsonl:3"] == "article has no text"
    assert reasons["z_dup.txt"].startswith("duplicate title and text of")
    assert "unsupported" in reasons["image.png"]
    assert "larger than" in reasons["huge.txt"]
    assert MAX_FILE_BYTES > 1000  # the real cap is untouched


def test_missing_corpus_is_a_user_error(tmp_path):
    with pytest.raises(CorpusNotFound, match="corpus not found"):
        read_corpus(tmp_path / "nope")


def test_a_text_article_header_gives_date_outlet_link_and_byline_and_stays_out_of_the_body(tmp_path):
    body = "The new bridge opened on Saturday.\nBy the time it opened, crowds had gathered."
    (tmp_path / "a.txt").write_text(
        "Harbour bridge opens\nPublished 14 September 2025\nSource: Port Ellis Post\n"
        f"URL: https://post.example/bridge\nBy Jane Doe and Sam Lee\n\n{body}\n"
    )
    (tmp_path / "b.md").write_text(
        "---\ntitle: Seed shelf opens\ndate: June 17, 2025\nsource: Valley Courier\n"
        "authors: [Ann Roe]\n---\nThe library opened a seed shelf.\n"
    )
    (tmp_path / "c.txt").write_text("Plain headline\nPublished in the spring, the report said a lot.\n")
    (tmp_path / "d.txt").write_text("Date: 2025-03-02\nHeadline after the date\nBody text here.\n")
    articles = {a.title: a for a in read_corpus(tmp_path).articles}
    a = articles["Harbour bridge opens"]
    assert (a.publish_date, a.source, a.url, a.authors) == (
        "2025-09-14",
        "Port Ellis Post",
        "https://post.example/bridge",
        ("Jane Doe", "Sam Lee"),
    )
    assert a.text == body  # offsets point into the body alone
    b = articles["Seed shelf opens"]
    assert (b.publish_date, b.source, b.authors, b.text) == (
        "2025-06-17",
        "Valley Courier",
        ("Ann Roe",),
        "The library opened a seed shelf.",
    )
    c = articles["Plain headline"]
    assert c.publish_date is None and c.text == "Published in the spring, the report said a lot."
    d = articles["Headline after the date"]
    assert d.publish_date == "2025-03-02" and d.text == "Body text here."


def test_the_sample_corpus_seed_article_names_its_outlet():
    articles = read_corpus(ROOT / "corpus").articles
    seed = next(a for a in articles if a.title.startswith("Dar, Rubio"))
    assert seed.source == "The Express Tribune" and not seed.text.startswith("Source")


def test_pages_that_failed_into_the_same_boilerplate_stay_apart_and_the_same_page_twice_is_one(tmp_path):
    """A crawl's failed downloads share one boilerplate text under their own headlines: each is kept, so that its
    headline can still find it; the same headline and text again is a duplicate."""
    boilerplate = "Please enable scripts to read this page. Video player failed to load."
    rows = [
        {"title": "Harbour City Gulls sign a new coach", "text": boilerplate, "url": "https://e.example/1"},
        {"title": "Port Ellis opens its second ferry pier", "text": boilerplate, "url": "https://e.example/2"},
        {"title": "Port Ellis opens its second ferry pier", "text": boilerplate, "url": "https://e.example/3"},
    ]
    (tmp_path / "crawl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = read_corpus(tmp_path)
    assert sorted(a.url for a in result.articles) == ["https://e.example/1", "https://e.example/2"]
    (skipped,) = result.skipped
    assert skipped.origin.endswith("crawl.jsonl:3") and skipped.reason.startswith("duplicate title and text of")


def test_a_record_without_a_date_takes_the_one_its_address_holds(tmp_path):
    rows = [
        {"title": "A", "text": "One.", "url": "https://news.example/2025/06/03/council-vote/index.html"},
        {"title": "B", "text": "Two.", "url": "https://news.example/2025/06/03/b", "date": "2025-06-05"},
        {"title": "C", "text": "Three.", "url": "https://news.example/2025/02/30/not-a-day"},
        {"title": "D", "text": "Four.", "url": "https://news.example/archive/20250603/d"},
    ]
    (tmp_path / "dated.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dates = {a.title: a.publish_date for a in read_corpus(tmp_path).articles}
    assert dates == {"A": "2025-06-03", "B": "2025-06-05", "C": None, "D": None}  # the record's own date first


def test_a_page_without_text_is_kept_by_its_headline_when_it_has_a_link(tmp_path):
    """A crawl's page that could not be read: kept, empty, by its headline or else its address's words, so that
    a question can still find it and its link; without a link (nothing to check it at) it is skipped as before."""
    rows = [
        {"title": "Marlow opens a night market", "text": "", "url": "https://e.example/market"},
        {"url": "https://e.example/2025/06/03/harbour-ferry-fares-rise/index.html"},
        {"url": "https://e.example/live/h_8c2f9e3b0a1d"},  # no words in the address: nothing to find it by
        {"title": "No link here", "text": "  "},
        {"title": "Not a web link", "url": "ftp://e.example/x"},
    ]
    (tmp_path / "crawl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = read_corpus(tmp_path)
    pages = {a.title: a for a in result.articles}
    assert set(pages) == {"Marlow opens a night market", "Harbour ferry fares rise"}
    assert all(a.text == "" for a in pages.values())
    assert pages["Harbour ferry fares rise"].publish_date == "2025-06-03"
    assert sorted(s.reason for s in result.skipped) == ["article has no text"] * 3
