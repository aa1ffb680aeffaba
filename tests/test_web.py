"""The web chat's service and HTML, and the launched app through gradio_client and plain HTTP."""

import asyncio
import html
import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

import qa.guards
import qa.page
import qa.service
import qa.uploads
from qa.answer import NOT_FOUND, TOO_OLD
from qa.build import build_index
from qa.guards import RefuseUploadPaths
from qa.render import (
    CLOSEST_CHARS,
    open_link,
    parse_open_link,
    plain_answer,
    render_answer,
    render_article,
    render_status,
    render_summary,
    render_timeline,
)
from qa.service import (
    AdminOnly,
    ChatService,
    RebuildRunning,
    articles_per_period,
)
from qa.store import load_generation
from qa.types import Answer, Article, Citation, Hit
from qa.uploads import UploadRefused, safe_upload_name, upload_name_problem
from tests.conftest import NEWS, FakeEmbedder, write_articles
from tests.fake_build import fake_build_command
from tests.webapp import HOSTILE, assert_inert, running_app, sample_corpus_copy, tags_in

PASSWORD = "s3cret"
NEW_ARTICLE = (
    "Glacier observatory spots a new comet",
    "Astronomers at the Glacier Ridge observatory spotted a faint comet on Thursday night. "
    "The comet will be visible with binoculars in October, observatory director Ana Lind said.",
)


def news_corpus(folder: Path) -> Path:
    write_articles(folder, NEWS)
    (folder / "hostile.json").write_text(json.dumps(HOSTILE), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    build_index(news_corpus(root / "corpus"), root / "index", FakeEmbedder())
    loaded = load_generation(root / "index")
    yield loaded
    loaded.close()


def cite(generation, doc_id: str, needle: str, n: int = 1) -> Citation:
    article = generation.article(doc_id)
    start = article.text.index(needle)
    return Citation(
        n, doc_id, article.title, article.url, article.publish_date, article.source, needle, start, start + len(needle)
    )


def test_article_viewer_escapes_every_field_and_highlights_the_quote(generation):
    article = generation.article(HOSTILE["doc_id"])
    quote = "The oldest machine was built in 1878."
    start = article.text.index(quote)
    page = render_article(article, start, start + len(quote), generation.name)
    assert_inert(page)
    assert "&lt;script&gt;window.__pwned = &#x27;title&#x27;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page and "[the museum site](javascript:" in page
    assert "javascript:window.__pwned=&#x27;url&#x27;" in page  # shown as text, not as a link
    marks = [t for t in tags_in(page) if t[0] == "mark"]
    assert len(marks) == 1 and f'<mark class="qa-quote">{quote}</mark>' in page
    assert "2025-07-30" in page and "By &lt;img" in page


def test_answer_links_each_marker_to_its_quote_and_lists_sources(generation):
    docs = {generation.article(d).title: d for d in generation.doc_ids()}
    storm_id = docs["Hurricane Delta hits the coast"]
    storm = cite(generation, storm_id, "About 300,000 homes lost power.", 1)
    storm2 = cite(generation, storm_id, "Governor John Bel Edwards asked residents to stay indoors.", 1)
    hostile = cite(generation, HOSTILE["doc_id"], "The oldest machine was built in 1878.", 2)
    answer = Answer(
        "q",
        f"“{storm.quote}” [1] “{storm2.quote}” [1] “{hostile.quote}” [2]",
        False,
        [storm, storm2, hostile],
        [Hit(1, 0, storm.doc_id, 0.9, 0, 200)],
    )
    page = render_answer(answer, generation)
    assert_inert(page)
    cites = [attrs["href"] for tag, attrs in tags_in(page) if attrs.get("class") == "qa-cite"]
    assert [parse_open_link(link)[1:] for link in cites] == [
        (storm.doc_id, storm.start, storm.end),
        (storm2.doc_id, storm2.start, storm2.end),
        (hostile.doc_id, hostile.start, hostile.end),
    ]
    assert parse_open_link(cites[0])[0] == generation.name
    assert page.count('class="qa-open"') == 2  # one source per article, both quotes highlighted in it
    for quote in (storm.quote, storm2.quote, hostile.quote):
        assert f'<mark class="qa-quote">{quote}</mark>' in page
    assert "[2] Museum shows antique typewriters &lt;script&gt;" in page
    assert "&lt;b onmouseover=alert(1)&gt;Payload Post&lt;/b&gt; · 2025-07-30" in page


def test_abstention_says_not_found_and_shows_short_passages_one_per_article(generation):
    docs = {generation.article(d).title: d for d in generation.doc_ids()}
    storm = docs["Hurricane Delta hits the coast"]
    hits = [
        Hit(1, 0, HOSTILE["doc_id"], 0.2, 0, 400),
        Hit(2, 1, HOSTILE["doc_id"], 0.2, 80, 300),
        Hit(3, 2, storm, 0.1, 0, 200),
    ]
    answer = Answer("q", NOT_FOUND, True, [], hits)
    page = render_answer(answer, generation)
    assert_inert(page)
    assert page.index(NOT_FOUND) < page.index("Closest passages")  # the same words as the CLI and the API
    assert page.count('class="qa-open"') == 2  # the museum article once, though two of its passages came back
    assert "The Zephyrville museum opened an exhibition" in page
    passages = [html.unescape(re.sub("<[^>]+>", "", m)) for m in re.findall(r'"qa-passage">(.*?)</blockquote>', page)]
    assert passages and all(len(text) <= CLOSEST_CHARS + 2 for text in passages), passages
    plain = plain_answer(answer, generation)
    assert plain.startswith(f"{NOT_FOUND}\n\nClosest passages:\n1. Museum shows antique typewriters <script>")
    assert "\n2. Hurricane Delta hits the coast — " in plain


def test_an_abstention_that_gives_its_reason_shows_it_before_the_closest_passages(generation):
    storm = next(d for d in generation.doc_ids() if generation.article(d).title == "Hurricane Delta hits the coast")
    said = f"{NOT_FOUND} {TOO_OLD.format(published='2020-10-09')}"
    answer = Answer("Who cleared the storm damage in 2021?", said, True, [], [Hit(1, 0, storm, 0.1, 0, 200)])
    page = render_answer(answer, generation)
    verdict = re.search(r'<p class="qa-answer qa-notfound">(.*?)</p>', page)
    assert verdict and html.unescape(verdict.group(1)) == said
    assert page.index("2020-10-09") < page.index("Closest passages")
    plain = plain_answer(answer, generation)
    assert plain.startswith(f"{said}\n\nClosest passages:\n1. Hurricane Delta hits the coast")


def test_plain_answer_is_the_phrase_the_quotes_and_the_numbered_sources_without_html(generation):
    from qa.types import Phrase

    docs = {generation.article(d).title: d for d in generation.doc_ids()}
    storm = cite(generation, docs["Hurricane Delta hits the coast"], "About 300,000 homes lost power.", 1)
    hostile = cite(generation, HOSTILE["doc_id"], "The oldest machine was built in 1878.", 2)
    phrase = Phrase("300,000", storm.doc_id, storm.start + 6, storm.start + 13)
    answer = Answer("q", "", False, [storm, hostile], [], answer_phrase=phrase)
    plain = plain_answer(answer, generation)
    assert plain == (  # the storm article has no outlet, date or link
        f"300,000 — “{storm.quote}” [1] “{hostile.quote}” [2]\n\nSources:\n"
        "[1] Hurricane Delta hits the coast — undated\n"
        f"[2] {HOSTILE['title']} — {HOSTILE['source']}, 2025-07-30 {HOSTILE['url']}"
    )
    page = render_answer(answer, generation)
    assert '<strong class="qa-phrase">300,000</strong> — “About 300,000' in page
    assert f'<div class="qa-plain" hidden>{html.escape(plain)}</div>' in page  # what Copy copies


class OneArticle:
    """The little of a generation the renderer reads: its name, one article and its sentences (none here)."""

    name = "gen-test"

    def __init__(self, article: Article):
        self._article = article

    def article(self, doc_id: str) -> Article:
        assert doc_id == self._article.doc_id
        return self._article

    def sentences(self, doc_id: str) -> list:
        return []


def test_the_page_renders_the_answer_from_its_fields_not_by_parsing_its_text():
    """Quotes holding the very characters a fixed “quote” [n] format is made of, and answer texts in no such
    format: the phrase, each quote and its own [n] link come from the Answer's fields, whatever its text says."""
    from dataclasses import replace

    from qa.types import Phrase

    text = "Mayor Ana Ruiz spoke on Friday. She said “the bridge [2] opens — at last” [1] in 2026. The toll is $3."
    article = Article("bridge", "Bridge “opens” [3]", text, "https://example.com/b", "2025-05-02", source="Gazette")
    generation = OneArticle(article)
    quotes = ["She said “the bridge [2] opens — at last” [1] in 2026.", "The toll is $3."]
    citations = [
        Citation(
            1,
            "bridge",
            article.title,
            article.url,
            article.publish_date,
            article.source,
            quote,
            text.index(quote),
            text.index(quote) + len(quote),
        )
        for quote in quotes
    ]
    phrase = Phrase("2026", "bridge", text.index("2026"), text.index("2026") + 4)
    answer = Answer("When does the bridge open?", "", False, citations, [], answer_phrase=phrase)

    page = render_answer(answer, generation)
    links = [open_link("gen-test", "bridge", c.start, c.end) for c in citations]
    assert page.startswith(
        f'<p class="qa-answer"><strong class="qa-phrase">2026</strong> — “{html.escape(quotes[0])}” '
        f'<a class="qa-cite" href="{links[0]}">[1]</a> “{html.escape(quotes[1])}” '
        f'<a class="qa-cite" href="{links[1]}">[1]</a></p><ul class="qa-sources">'
    )
    assert page.count('class="qa-open"') == 1 and "[1] Bridge “opens” [3]</a>" in page
    assert all(f'<mark class="qa-quote">{html.escape(quote)}</mark>' in page for quote in quotes)
    plain = plain_answer(answer, generation)
    assert plain == (
        f"2026 — “{quotes[0]}” [1] “{quotes[1]}” [1]\n\nSources:\n"
        "[1] Bridge “opens” [3] — Gazette, 2025-05-02 https://example.com/b"
    )
    for wording in ("“She said” [1]", "[1] [2] “” —", "**2026** — “other words” [7]", f"“{quotes[1]}” [1]"):
        reworded = replace(answer, answer=wording)
        assert render_answer(reworded, generation) == page and plain_answer(reworded, generation) == plain


def test_an_abstention_shows_the_answers_own_verdict(generation):
    hits = [Hit(1, 0, HOSTILE["doc_id"], 0.2, 0, 400)]
    verdict = "The articles say nothing about this."
    page = render_answer(Answer("q", verdict, True, [], hits), generation)
    assert f'<p class="qa-answer qa-notfound">{verdict}</p>' in page
    assert plain_answer(Answer("q", verdict, True, [], hits), generation).startswith(f"{verdict}\n\nClosest")


@pytest.mark.parametrize(
    "name, stored",
    [
        ("Harbour news 2024.txt", "Harbour_news_2024.txt"),
        ("café.md", "cafe.md"),
        ("report.v2.json", "report.v2.json"),
        ("a b<>.HTML", "a_b.html"),
        ("über café.json", "uber_cafe.json"),
        ("-_-.jsonl", "upload.jsonl"),
        ("x..y.txt", "x..y.txt"),
        ("100% true.txt", "100_true.txt"),
    ],
)
def test_plain_upload_names_pass_and_are_sanitised(name, stored):
    assert upload_name_problem(name) is None
    assert safe_upload_name(name) == stored


PATH_NAMES = [
    "../../x.txt",
    "/etc/cron.d/evil.txt",
    "..\\..\\win.txt",
    "C:\\evil\\a.txt",
    "nul\x00byte.txt",
    "bell\x07.txt",
    "c1\x85.txt",
    "%2e%2e%2fenc.txt",
    "%2E%2E%5Cenc.txt",
    "a%2Fb.txt",
    "nul%00.txt",
    "x%2e%2ey.txt",
    ".hidden.md",
    "....jsonl",
    "..",
    "／etc／passwd.txt",
    "．bashrc.txt",
]


@pytest.mark.parametrize("name", PATH_NAMES)
def test_upload_names_that_are_paths_are_refused_with_a_message(name):
    problem = upload_name_problem(name)
    assert problem and problem.startswith(f"refused: {name!r} ") and problem.endswith("upload files by their own names")
    with pytest.raises(UploadRefused) as refused:
        safe_upload_name(name)
    assert str(refused.value) == problem


def multipart(*dispositions: bytes, boundary: bytes = b"qa-boundary") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written byte for byte (httpx would escape the names): one small text file
    per Content-Disposition header; and its headers."""
    parts = [
        b"--%s\r\nContent-Disposition: %s\r\nContent-Type: text/plain\r\n\r\nTitle\nBody text.\r\n"
        % (boundary, disposition)
        for disposition in dispositions
    ]
    body = b"".join(parts) + b"--%s--\r\n" % boundary
    return body, {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}


def through_upload_guard(
    chunks: list[bytes], headers: dict[str, str], path: str = "/gradio_api/upload", method: str = "POST"
) -> tuple[int, bytes, list[bytes]]:
    """RefuseUploadPaths in front of an app that records the body it gets, without a server:
    (status, response body, the bodies that reached the app)."""
    reached: list[bytes] = []

    async def app(scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        reached.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"stored"})

    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
    }
    asyncio.run(RefuseUploadPaths(app)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), reached


def test_upload_guard_passes_plain_names_to_gradio_byte_for_byte():
    body, headers = multipart(
        b'form-data; name="files"; filename="Harbour news 2024.txt"',
        'form-data; name="files"; filename="café.md"'.encode(),
        b"form-data; name=\"files\"; filename*=UTF-8''report.v2.json",
    )
    chunks = [body[:30], body[30:31], body[31:100], body[100:]]  # split inside a header and a name
    assert through_upload_guard(chunks, headers) == (200, b"stored", [body])
    for path, method in (("/gradio_api/upload", "GET"), ("/gradio_api/queue/join", "POST")):
        hostile, _ = multipart(b'form-data; name="files"; filename="../x.txt"')
        assert through_upload_guard([hostile], headers, path, method) == (200, b"stored", [hostile])


@pytest.mark.parametrize(
    "disposition",
    [
        b'form-data; name="files"; filename="../../x.txt"',
        b'form-data; name="files"; filename="..\\\\..\\\\win.txt"',
        b'form-data; name="files"; filename="C:\\Windows\\evil.txt"',
        b'form-data; name="files"; filename="raw\x00nul.txt"',
        b'form-data; name="files"; filename="%2e%2e%2fenc.txt"',
        b'form-data; name="files"; filename=.profile.md',
        b"form-data; name=\"files\"; filename*=UTF-8''..%2Fstar.txt",
        b'form-data; name="files"; filename="a;b/c.txt"',
        b'form-data; name="files"; filename="../unclosed.txt',
    ],
)
def test_upload_guard_refuses_path_names_before_gradio_reads_them(disposition):
    body, headers = multipart(b'form-data; name="files"; filename="fine.txt"', disposition)
    status, response, reached = through_upload_guard([body[:40], body[40:]], headers)
    detail = json.loads(response)["detail"]
    assert status == 400 and detail.startswith("refused: ") and "upload files by their own names" in detail, detail
    assert reached == []


def test_upload_guard_refuses_a_body_that_is_not_multipart():
    for body, boundary in ((b"no boundary here at all\r\n", "qa-boundary"), (b"--" + b"b" * 300, "b" * 300)):
        status, response, reached = through_upload_guard(
            [body], {"content-type": f"multipart/form-data; boundary={boundary}"}
        )
        assert status == 400 and "not a well-formed multipart form" in json.loads(response)["detail"]
        assert reached == []


def test_upload_guard_refuses_requests_over_its_size_cap(monkeypatch):
    assert qa.guards.MAX_UPLOAD_REQUEST_BYTES > qa.uploads.MAX_UPLOAD_BYTES  # Gradio's 413 for one file still answers
    monkeypatch.setattr(qa.guards, "MAX_UPLOAD_REQUEST_BYTES", 1000)
    body, headers = multipart(*[b'form-data; name="files"; filename="a.txt"'] * 20)
    assert len(body) > 1000
    for sent_headers in ({**headers, "content-length": str(len(body))}, headers):  # declared, or counted
        status, response, reached = through_upload_guard(
            [body[i : i + 100] for i in range(0, len(body), 100)], sent_headers
        )
        assert status == 413 and "maximum allowed size" in json.loads(response)["detail"] and reached == []


@pytest.mark.parametrize("name", ["run.sh", "article.txt.exe", "archive.jsonl.gz", "noext"])
def test_unsupported_upload_types_are_refused(name):
    with pytest.raises(UploadRefused, match="only .txt .md .html .json .jsonl"):
        safe_upload_name(name)


@pytest.fixture
def service(tmp_path):
    corpus = write_articles(tmp_path / "corpus", NEWS)
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    served = ChatService(
        corpus,
        tmp_path / "index",
        FakeEmbedder(),
        admin_password=PASSWORD,
        rebuild_command=fake_build_command(corpus, tmp_path / "index"),
    )
    yield served
    served.close()


def test_uploads_land_only_in_the_corpus_uploads_folder(service, tmp_path):
    source = write_articles(tmp_path / "incoming", {"a.txt": NEW_ARTICLE})
    with pytest.raises(UploadRefused, match="is a path, not a file name"):
        service.save_uploads([source / "a.txt"] * 2, ["ok.txt", "../../outside.txt"], PASSWORD)
    assert not (tmp_path / "outside.txt").exists() and not (service.corpus / "uploads" / "ok.txt").exists()
    saved = service.save_uploads([source / "a.txt"] * 2, ["outside.txt", "outside.txt"], PASSWORD)
    assert [p.name for p in saved] == ["outside.txt", "outside-2.txt"]
    assert all(p.parent == service.corpus / "uploads" for p in saved)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (qa.uploads.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadRefused, match="the limit is 5 MiB"):
        service.save_uploads([source / "a.txt", big], ["ok.txt", "big.txt"], PASSWORD)
    assert not (service.corpus / "uploads" / "ok.txt").exists()  # all or nothing


def test_uploads_and_rebuilds_need_the_admin_password(service, tmp_path):
    source = write_articles(tmp_path / "incoming", {"a.txt": NEW_ARTICLE})
    for wrong in ("", None, "S3CRET", PASSWORD + " "):
        with pytest.raises(AdminOnly):
            service.save_uploads([source / "a.txt"], ["a.txt"], wrong)
        with pytest.raises(AdminOnly):
            service.start_rebuild(wrong)
    assert not (service.corpus / "uploads").exists() and not service.build_status().running


def test_rebuild_swaps_generations_while_questions_finish_on_the_old_one(service, tmp_path, monkeypatch):
    gate = tmp_path / "gate"  # the build process waits for it before it reads the corpus
    monkeypatch.setenv("FAKE_BUILD_START_GATE", str(gate))
    write_articles(service.corpus, {"comet.txt": NEW_ARTICLE})
    old = service.generation
    service.start_rebuild(PASSWORD)
    with pytest.raises(RebuildRunning, match="already running"):
        service.start_rebuild(PASSWORD)
    answer, answered_from = service.ask("When will the comet be visible?")
    assert answered_from is old and all(h.doc_id in old.doc_ids() for h in answer.passages)
    gate.touch()
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "done" and status.swapped_to == service.generation.name != old.name
    assert "is now answering: 4 articles (1 new" in render_status(status)
    answer, answered_from = service.ask("When will the comet be visible with binoculars?")
    assert answered_from is service.generation
    assert any(generation_title(service, h.doc_id) == NEW_ARTICLE[0] for h in answer.passages)
    assert old.article(old.doc_ids()[0]).text  # an answer rendered from the old generation still reads it
    article, holder = service.find_article(old.name, old.doc_ids()[0])
    assert holder is old and article.text


def generation_title(service, doc_id):
    return service.generation.article(doc_id).title


def test_a_build_by_another_process_is_picked_up_on_refresh(service):
    old = service.generation
    assert not service.refresh()
    write_articles(service.corpus, {"comet.txt": NEW_ARTICLE})
    build_index(service.corpus, service.index_dir, FakeEmbedder())  # as `python -m qa build` would
    assert service.refresh() and service.generation is not old and service.summary().articles == 4
    (service.index_dir / "CURRENT").write_text("gen-missing\n")
    assert not service.refresh() and service.summary().articles == 4


def test_failed_rebuild_reports_why_and_keeps_the_old_index(service):
    old = service.generation
    for file in service.corpus.iterdir():
        file.unlink()
    (service.corpus / "broken.txt").write_bytes(b"\x00\x01binary")
    service.start_rebuild(PASSWORD)
    status = service.wait_for_rebuild(timeout=60)
    assert status.phase == "failed" and service.generation is old
    page = render_status(status)
    assert "Rebuild failed: nothing could be indexed" in page and "previous index stays in use" in page
    assert "broken.txt: binary file (contains NUL bytes)" in page
    assert not service.ask("Who won the chess championship?")[0].abstained


def test_articles_per_week_month_or_year_with_empty_periods():
    assert articles_per_period([]) == ("week", [])
    weekly = articles_per_period([date(2025, 6, 4), date(2025, 6, 5), date(2025, 6, 20)])
    assert weekly == ("week", [("2025-06-02", 2), ("2025-06-09", 0), ("2025-06-16", 1)])
    monthly = articles_per_period([date(2024, 11, 30), date(2025, 2, 1), date(2025, 9, 9)])
    assert monthly[0] == "month" and monthly[1][:4] == [("2024-11", 1), ("2024-12", 0), ("2025-01", 0), ("2025-02", 1)]
    assert len(monthly[1]) == 11
    assert articles_per_period([date(1990, 1, 1), date(2025, 1, 1)])[1][0] == ("1990", 1)


def test_index_page_summary_and_chart(service):
    write_articles(service.corpus, {"dated.txt": NEW_ARTICLE})
    summary = service.summary()
    assert (summary.articles, summary.undated, summary.model) == (3, 3, "fake-hash")
    page = render_summary(summary)
    assert_inert(page)
    assert "Generation" in page and "<td>corpus</td>" in page and str(service.corpus.parent) not in page
    assert "No article has a publication date" in render_timeline(summary)
    generation = load_generation(service.index_dir)
    dated = qa.service.summarize(generation)
    assert dated.timeline == []  # text files carry no date
    chart = render_timeline(
        qa.service.IndexSummary(
            **{**dated.__dict__, "period": "week", "timeline": [("2025-06-02", 2), ("2025-06-09", 0)]}
        )
    )
    assert_inert(chart)
    assert 'title="week of 2025-06-02: 2 articles"' in chart and "height:100%" in chart and "height:0%" in chart
    generation.close()


# ---------------------------------------------------------------- the launched app (fake embedder)


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fakeapp")
    with running_app(news_corpus(root / "corpus"), root / "index", FakeEmbedder(), password=PASSWORD) as app:
        yield app


@pytest.fixture(scope="module")
def client(fake_app):
    from gradio_client import Client

    return Client(fake_app.url, verbose=False, download_files=False, headers={"x-admin-password": PASSWORD})


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_index_corpus_and_server_files_are_not_served(fake_app, tmp_path):
    index_files = [p for p in fake_app.index.rglob("*") if p.is_file()]
    assert any(p.name == "store.sqlite" for p in index_files)
    targets = [*index_files, next(fake_app.corpus.glob("*.txt")), Path(qa.service.__file__), Path("/etc/passwd")]
    for target in targets:
        for route in ("/gradio_api/file=", "/file="):
            status, body = get(fake_app.url + route + str(target.resolve()))
            assert status in (403, 404), (route, target, status)
            if target.stat().st_size > 64:
                assert target.read_bytes()[:64] not in body
    # the route itself works: a file uploaded through Gradio is served back, so the refusals above are real
    import httpx

    upload = write_articles(tmp_path, {"served.txt": NEW_ARTICLE}) / "served.txt"
    response = httpx.post(
        fake_app.url + "/gradio_api/upload",
        files={"files": upload.open("rb")},
        timeout=30,
        headers={"x-admin-password": PASSWORD},
    )
    status, body = get(fake_app.url + "/gradio_api/file=" + response.json()[0])
    assert status == 200 and body == upload.read_bytes()


def test_upload_and_rebuild_endpoints_refuse_a_wrong_or_missing_password(fake_app, client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    upload = write_articles(tmp_path, {"comet.txt": NEW_ARTICLE}) / "comet.txt"
    before = fake_app.service.generation.name
    for wrong in ("", "guess"):
        with pytest.raises(AppError, match="wrong or missing admin password"):
            client.predict(files=[handle_file(str(upload))], password=wrong, api_name="/upload")
        with pytest.raises(AppError, match="wrong or missing admin password"):
            client.predict(password=wrong, api_name="/rebuild")
    assert not (fake_app.corpus / "uploads").exists() and fake_app.service.generation.name == before

    added = client.predict(files=[handle_file(str(upload))], password=PASSWORD, api_name="/upload")
    assert added == {"added": ["comet.txt"]} and (fake_app.corpus / "uploads" / "comet.txt").is_file()
    report = client.predict(password=PASSWORD, api_name="/rebuild")
    assert report["ok"] and report["new"] == 1 and not report["up_to_date"]
    assert report["generation"] == fake_app.service.generation.name != before
    assert client.predict(api_name="/index_summary")["generation"] == report["generation"]
    answer = client.predict("When will the comet be visible with binoculars?", api_name="/ask")
    titles = {fake_app.service.generation.article(p["doc_id"]).title for p in answer["passages"]}
    assert NEW_ARTICLE[0] in titles


def test_a_second_rebuild_is_refused_while_one_runs(fake_app, client, monkeypatch, tmp_path):
    from gradio_client.exceptions import AppError

    gate = tmp_path / "gate"  # the build process waits for it before it reads the corpus
    monkeypatch.setenv("FAKE_BUILD_START_GATE", str(gate))
    first = client.submit(password=PASSWORD, api_name="/rebuild")
    for _ in range(200):
        if fake_app.service.build_status().running:
            break
        threading.Event().wait(0.05)
    with pytest.raises(AppError, match="a rebuild is already running"):
        client.predict(password=PASSWORD, api_name="/rebuild")
    for _ in range(200):  # the page's progress bar is fed while the build runs
        progress = first.status().progress_data
        if progress:
            break
        threading.Event().wait(0.05)
    assert progress[0].desc == "reading and chunking articles"
    gate.touch()
    assert first.result(timeout=60)["up_to_date"]


def test_follow_ups_pass_the_earlier_questions_and_new_chat_clears_them(fake_app, monkeypatch):
    from gradio_client import Client

    seen = []
    real_ask = qa.service.ask

    def spy(generation, embedder, question, **kwargs):
        seen.append((question, list(kwargs.get("history", ()))))
        return real_ask(generation, embedder, question, **kwargs)

    monkeypatch.setattr(qa.service, "ask", spy)
    chat = Client(fake_app.url, verbose=False)
    turn = chat.predict(question="Who won the chess championship?", api_name="/chat")
    turn = chat.predict(question="Where is she from?", history=turn["history"], api_name="/chat")
    first = "Who won the chess championship?"
    assert seen == [(first, []), ("Where is she from?", [first])]
    assert turn["history"] == [first, "Where is she from?"] and turn["generation"] == fake_app.service.generation.name
    chat.predict(question="Did the Senate pass the budget?", api_name="/chat")  # a new conversation: no history
    assert seen[-1] == ("Did the Senate pass the budget?", [])


# ---------------------------------------------------------------- the launched app (real model)


@pytest.mark.model
def test_seed_question_through_gradio_client(tmp_path, real_embedder):
    from gradio_client import Client

    corpus = sample_corpus_copy(tmp_path / "corpus")
    seed = (corpus / "000_d7cb95e41b861a56.txt").read_text(encoding="utf-8")
    with running_app(corpus, tmp_path / "index", real_embedder) as app:
        client = Client(app.url, verbose=False)
        answer = client.predict("Who did Ishaq Dar speak with by phone?", api_name="/ask")
        assert not answer["abstained"]
        quotes = [c["quote"] for c in answer["citations"]]
        assert any("Rubio" in q for q in quotes) and all(q in seed for q in quotes)
        turn = client.predict(question="Who did Ishaq Dar speak with by phone?", api_name="/chat")
        assert turn["answer"]["citations"] == answer["citations"]
        text = turn["text"]  # plain text, as the page's Copy button copies it
        assert "<" not in text and "Rubio" in text.split("\n")[0]
        assert "\n\nSources:\n[1] Dar, Rubio discuss bilateral ties, regional issues — The Express Tribune" in text


def test_an_upload_the_build_would_skip_is_refused_at_once(fake_app, client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    long_text = write_articles(tmp_path, {"long.txt": ("Long", "word " * 200_001)}) / "long.txt"  # 1 MB: under 5 MiB
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"title": "Fine", "text": "A fine article."}\n{"title": "No text"}\n')
    fine = write_articles(tmp_path, {"fine.txt": NEW_ARTICLE}) / "fine.txt"
    uploads = fake_app.corpus / "uploads"
    before = sorted(uploads.iterdir()) if uploads.exists() else []
    for path, why in (
        (long_text, "long.txt cannot be indexed: article text longer than 1000000 characters"),
        (lines, "lines.jsonl:2 cannot be indexed: article has no text"),
    ):
        with pytest.raises(AppError, match=f"{why}; nothing was added"):
            client.predict(
                files=[handle_file(str(fine)), handle_file(str(path))], password=PASSWORD, api_name="/upload"
            )
    assert (sorted(uploads.iterdir()) if uploads.exists() else []) == before


def test_the_upload_cache_expires_and_is_capped_per_client_and_in_total(tmp_path, monkeypatch):
    """Without an admin password anyone may upload: files leave Gradio's cache after UPLOAD_CACHE_SECONDS, one
    address may send CLIENT_UPLOAD_BYTES_PER_HOUR, all together TOTAL_UPLOAD_BYTES (small here)."""
    import httpx

    monkeypatch.setattr(qa.guards, "UPLOAD_CACHE_SECONDS", 2)  # what the quota counts
    monkeypatch.setattr(qa.page, "UPLOAD_CACHE_SECONDS", 2)  # what the page tells Gradio to delete after
    monkeypatch.setattr(qa.guards, "CLIENT_UPLOAD_BYTES_PER_HOUR", 250_000)
    monkeypatch.setattr(qa.guards, "TOTAL_UPLOAD_BYTES", 400_000)
    article = {"files": ("a.txt", b"Title\n" + b"Body text. " * 9_000, "text/plain")}  # 99 KB

    def post(address: str) -> httpx.Response:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60) as http:
            return http.post(app.url + "/gradio_api/upload", files=article)

    with running_app(write_articles(tmp_path / "corpus", NEWS), tmp_path / "index", FakeEmbedder()) as app:
        first = post("127.0.0.1")
        cached = Path(first.json()[0])
        assert cached.is_file() and post("127.0.0.1").status_code == 200
        over = post("127.0.0.1")
        assert over.status_code == 429 and "at most 0.2 MiB of uploads an hour" in over.json()["detail"]
        assert post("127.0.0.2").status_code == 200 and post("127.0.0.3").status_code == 200  # 400 KB in all
        full = post("127.0.0.4")
        assert full.status_code == 507 and "the upload cache is full" in full.json()["detail"]
        for _ in range(100):  # deleted by Gradio's cache deletion (every 2 s here), then no longer served
            if not cached.exists():
                break
            time.sleep(0.1)
        assert not cached.exists() and get(app.url + "/gradio_api/file=" + str(cached))[0] in (403, 404)


def test_every_response_forbids_framing_and_scripts_from_elsewhere_and_hides_the_corpus_path(fake_app, client):
    for path in ("/", "/config", "/gradio_api/info"):
        with urllib.request.urlopen(fake_app.url + path, timeout=30) as response:
            headers = response.headers
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy and "object-src 'none'" in policy
    summary = client.predict(api_name="/index_summary")
    assert summary["corpus"] == "corpus" and str(fake_app.corpus.parent) not in json.dumps(summary)


def test_the_api_returns_json_with_named_parameters_and_needs_no_password_when_none_is_set(tmp_path):
    from gradio_client import Client, handle_file

    with running_app(write_articles(tmp_path / "corpus", NEWS), tmp_path / "index", FakeEmbedder()) as app:
        client = Client(app.url, verbose=False, download_files=False)
        described = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert set(described) == {"/ask", "/chat", "/index_summary", "/upload", "/rebuild"}  # no page events
        parameters = {name: [p["parameter_name"] for p in info["parameters"]] for name, info in described.items()}
        assert parameters == {
            "/ask": ["question", "history"],
            "/chat": ["question", "history"],
            "/index_summary": [],
            "/upload": ["files", "password"],
            "/rebuild": ["password"],
        }
        for name in ("/upload", "/rebuild"):
            password = next(p for p in described[name]["parameters"] if p["parameter_name"] == "password")
            assert password["parameter_has_default"] and password["parameter_default"] == ""
        assert not any(r["label"].startswith("value_") for info in described.values() for r in info["returns"])

        summary = client.predict(api_name="/index_summary")
        assert summary["articles"] == len(NEWS) and summary["generation"] == app.service.generation.name
        assert all(set(row) == {"period", "articles"} for row in summary["timeline"])
        upload = write_articles(tmp_path / "incoming", {"comet.txt": NEW_ARTICLE}) / "comet.txt"
        assert client.predict(files=[handle_file(str(upload))], api_name="/upload") == {"added": ["comet.txt"]}
        report = client.predict(api_name="/rebuild")  # no password argument: none is set
        assert report["ok"] and report["new"] == 1 and report["articles"] == len(NEWS) + 1
        turn = client.predict(question="When will the comet be visible with binoculars?", api_name="/chat")
        assert set(turn) == {"answer", "text", "generation", "history"} and "<" not in turn["text"]
        assert turn["generation"] == report["generation"]
        assert NEW_ARTICLE[0] in {app.service.generation.article(p["doc_id"]).title for p in turn["answer"]["passages"]}


def test_a_page_kept_by_its_headline_alone_is_shown_inert_with_its_link_and_no_text(tmp_path):
    """A crawled page without text, its headline and link written to attack the page: listed under the verdict
    and opened in the viewer as escaped text, its link only as an http(s) link, with the line saying why there
    is no passage."""
    from qa.render import NO_TEXT

    page_record = {
        "doc_id": "pier-page",
        "title": "<img src=x onerror=alert(1)>Pier fees rise",
        "url": 'https://e.example/pier"onmouseover="alert(1)',
        "text": "",
    }
    corpus = write_articles(tmp_path / "corpus", NEWS)
    (corpus / "pier.json").write_text(json.dumps(page_record), encoding="utf-8")
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    generation = load_generation(tmp_path / "index")
    (passage,) = generation.article_passages("pier-page")
    answer = Answer("q", NOT_FOUND, True, [], [Hit(1, passage.passage_id, "pier-page", 0.3, 0, 0)])
    for shown in (render_answer(answer, generation), render_article(generation.article("pier-page"), 0, 0, "g")):
        assert_inert(shown)
        assert "&lt;img src=x onerror=alert(1)&gt;Pier fees rise" in shown and html.escape(NO_TEXT) in shown
        links = [attrs["href"] for tag, attrs in tags_in(shown) if tag == "a" and "href" in attrs]
        assert 'https://e.example/pier"onmouseover="alert(1)' in links
    generation.close()
