"""The web chat in a real browser: Playwright driving Debian's headless Chromium against the launched app.

Screenshots go to test-artifacts/; with QA_README_SCREENSHOT=1 the chat is also saved as docs/screenshot-chat.png.
"""

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.webapp import HOSTILE, running_app, sample_corpus_copy

pytestmark = [pytest.mark.browser, pytest.mark.model]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "browser-admin"
SEED_QUESTION = "Who did Ishaq Dar speak with by phone?"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app(tmp_path_factory, product_embedder):
    from app import SAMPLE_QUESTIONS

    root = tmp_path_factory.mktemp("browser")
    corpus = sample_corpus_copy(root / "corpus", hostile=True)
    with running_app(corpus, root / "index", product_embedder, password=PASSWORD, examples=SAMPLE_QUESTIONS) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "no Chromium: run `bash scripts/setup.sh` as root (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, app):
    # clipboard permissions: the Copy buttons' text is read back from the clipboard
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, permissions=["clipboard-read", "clipboard-write"]
    )
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    opened.dialogs = []  # any alert() a payload manages to run
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    opened.goto(app.url)
    opened.locator("#qa-question textarea").wait_for()
    yield opened
    context.close()


def ask(page, question: str):
    """Ask in the chat; returns the locator of the new answer."""
    answers = page.locator("#qa-chat .message-content")
    before = answers.count()
    page.locator("#qa-question textarea").fill(question)
    page.locator("#qa-ask").click()
    page.wait_for_function(f"document.querySelectorAll('#qa-chat .message-content').length >= {before + 2}")
    return answers.nth(before + 1)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def readme_screenshot(png: bytes, path: Path) -> None:
    """Save a screenshot for the README in 64 colours: a fraction of the size, still sharp."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=64).save(path, optimize=True)


def test_ask_then_click_the_citation_to_read_the_article(page):
    answer = ask(page, SEED_QUESTION)
    marker = answer.locator("a.qa-cite").first
    assert marker.inner_text() == "[1]"
    assert "Rubio" in answer.locator("mark.qa-quote").first.inner_text()
    assert "Dar, Rubio discuss bilateral ties, regional issues" in answer.locator("a.qa-open").first.inner_text()
    marker.click()
    quote = page.locator("#qa-viewer .qa-article mark.qa-quote")
    quote.wait_for()
    assert page.locator("#qa-viewer h2").inner_text() == "Dar, Rubio discuss bilateral ties, regional issues"
    assert "Rubio" in quote.inner_text()
    page.wait_for_function(  # scrolled into view inside the viewer
        """() => { const m = document.querySelector('#qa-viewer mark.qa-quote').getBoundingClientRect();
                   return m.top >= 0 && m.bottom <= window.innerHeight; }"""
    )
    screenshot(page, "chat-citation.png")

    page.get_by_role("button", name="How many parking spaces worry Riverton shop owners?").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .message-content').length >= 4")
    follow_up = page.locator("#qa-chat .message-content").nth(3)
    follow_up.locator("a.qa-open", has_text="Riverton council approves").click()
    page.locator("#qa-viewer h2", has_text="Riverton council approves").wait_for()
    viewer = page.locator("#qa-viewer .qa-article").inner_text()
    assert "By Dana Whitfield · Riverton Ledger · 2025-06-03" in viewer
    link = page.locator("#qa-viewer .qa-article a[href^='https://riverton-ledger.example/']")
    assert link.get_attribute("target") == "_blank"

    page.locator("#qa-new-chat").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .message-content').length === 0")
    assert "Click a citation" in page.locator("#qa-viewer").inner_text()

    # The README's picture: an answer led by its answer phrase in bold, its article open beside the chat.
    answer = ask(page, "Who won the sourdough category of the National Bread Guild competition?")
    assert answer.locator("strong.qa-phrase").inner_text() == "Ines Carvalho"
    answer.locator("a.qa-cite").first.click()
    page.locator("#qa-viewer h2", has_text="Oak Hollow baker wins national sourdough prize").wait_for()
    page.locator("#qa-viewer mark.qa-quote").wait_for()
    if os.environ.get("QA_README_SCREENSHOT"):
        readme_screenshot(page.screenshot(), ROOT / "docs" / "screenshot-chat.png")


def test_an_empty_question_shows_a_hint_and_leaves_the_chat_usable(page, capfd):
    answered = ask(page, SEED_QUESTION)
    page.locator("#qa-ask").click()  # empty box
    page.locator(".toast-body", has_text="Type a question first.").first.wait_for()
    page.locator("#qa-question textarea").fill("   ")
    page.locator("#qa-question textarea").press("Enter")
    page.wait_for_function(  # the hint again (Gradio groups toasts of one kind under a count)
        "document.querySelector('.toast-count') || document.body.innerText.split('Type a question first.').length > 2"
    )
    # no red "Error" badge over the chat or the question box, the answer still there and readable
    assert page.locator("#qa-chat .error, #qa-question .error, .error").count() == 0
    assert page.get_by_text("Error", exact=True).count() == 0
    assert "Rubio" in answered.inner_text() and answered.is_visible()
    answer = ask(page, "When does construction of the Riverton bike lanes begin?")  # typed, asked, answered
    assert "Riverton council approves" in answer.locator(".qa-sources").inner_text()
    assert "Traceback" not in capfd.readouterr().err  # a refused question is no server error


def test_copy_puts_the_answer_and_its_sources_on_the_clipboard_as_plain_text(page):
    answer = ask(page, SEED_QUESTION)
    answer.hover()
    page.locator("#qa-chat .message-buttons button[aria-label='Copy message']").last.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "<" not in copied and "class=" not in copied, copied
    phrase = answer.locator(".qa-phrase").inner_text() if answer.locator(".qa-phrase").count() else ""
    body, sources = copied.split("\n\nSources:\n")
    assert body.startswith(phrase) and "Rubio" in body and body.rstrip().endswith("[1]"), body
    assert sources.startswith("[1] Dar, Rubio discuss bilateral ties, regional issues — The Express Tribune, "), sources
    page.locator("#qa-chat button[aria-label='Copy conversation']").click()
    everything = page.evaluate("navigator.clipboard.readText()")
    assert everything == f"Question: {SEED_QUESTION}\n\n{copied}", everything


def test_an_abstention_keeps_its_verdict_in_view_above_short_passages_one_per_article(page, monkeypatch):
    import qa.service
    from qa.answer import NOT_FOUND
    from qa.render import CLOSEST_CHARS
    from qa.types import Answer

    ask(page, SEED_QUESTION)  # a long answer first: the chat has to scroll to show the next one
    real_ask = qa.service.ask

    def abstaining(*args, **kwargs):  # whatever the answer stage decides, show how an abstention looks
        found = real_ask(*args, **kwargs)
        return Answer(found.question, NOT_FOUND, True, [], found.passages)

    monkeypatch.setattr(qa.service, "ask", abstaining)
    answer = ask(page, "How much is the adult fare on the Gull Island ferry?")
    verdict = answer.locator(".qa-notfound")
    assert verdict.inner_text() == NOT_FOUND  # the CLI's and the API's wording
    assert "Closest passages" in answer.inner_text() and answer.locator("a.qa-cite").count() == 0
    titles = answer.locator("a.qa-open").all_inner_texts()
    assert 1 <= len(titles) <= 3 and len(set(titles)) == len(titles), titles  # one passage per article
    assert "Gull Island ferry returns" in answer.locator(".qa-sources").inner_text()
    assert all(len(text) <= CLOSEST_CHARS + 2 for text in answer.locator(".qa-passage").all_inner_texts())
    page.wait_for_function(  # the verdict is inside the chat's visible area, not scrolled away
        """() => { const v = document.querySelectorAll('#qa-chat .qa-notfound');
                   const box = v[v.length - 1].getBoundingClientRect();
                   const chat = document.querySelector('#qa-chat .bubble-wrap').getBoundingClientRect();
                   return box.top >= chat.top && box.bottom <= chat.bottom; }""",
        timeout=5_000,
    )


def test_the_page_has_a_title_a_wide_question_box_and_nothing_over_the_answers(page):
    assert page.title() == "newsqa: answers quoted from your news articles"
    assert page.locator("h1.qa-title").inner_text() == page.title()
    box = page.locator("#qa-question").bounding_box()
    buttons = [page.locator(s).bounding_box() for s in ("#qa-ask", "#qa-new-chat")]
    assert box["width"] >= 2 * sum(b["width"] for b in buttons), (box, buttons)
    assert page.locator("#qa-chat [data-testid='block-label']").count() == 0  # no label floating over the chat
    for question in (SEED_QUESTION, "When does construction of the Riverton bike lanes begin?"):
        ask(page, question)
    page.locator("#qa-chat .bubble-wrap").evaluate("wrap => { wrap.scrollTop = 0; }")
    scroll_down = page.locator("#qa-chat .scroll-down-button-container button")
    scroll_down.wait_for()
    button = scroll_down.bounding_box()
    rows = page.locator("#qa-chat .message-row").evaluate_all("rows => rows.map(r => r.getBoundingClientRect().right)")
    assert button["x"] >= max(rows), (button, rows)  # beside the messages, not over their text


def test_upload_rebuild_then_ask_about_the_new_article(page, app, tmp_path):
    article = tmp_path / "comet news.md"
    article.write_text(
        "# Glacier Ridge observatory spots a new comet\n\n"
        "Astronomers at the Glacier Ridge observatory spotted a faint comet on Thursday night. "
        "Observatory director Ana Lind said the comet will be visible with binoculars in October.\n",
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Index").click()
    page.locator("#qa-summary table").wait_for()
    assert "Articles per week by publication date" in page.locator("#qa-timeline").inner_text()
    page.locator("#qa-password input").fill(PASSWORD)  # first: the upload route stores nothing without it
    page.locator("#qa-upload input[type=file]").set_input_files(str(article))
    page.locator("#qa-upload", has_text="comet news.md").wait_for()
    old = app.service.generation.name
    page.locator("#qa-rebuild").click()  # without "Add to corpus" first: the chosen file is added, then indexed
    page.locator("#qa-build", has_text="is now answering").wait_for()
    assert "Added to the corpus: comet_news.md" in page.locator("#qa-build").inner_text()
    assert (app.corpus / "uploads" / "comet_news.md").is_file()
    assert app.service.generation.name != old
    assert app.service.generation.name in page.locator("#qa-summary").inner_text()
    screenshot(page, "index-after-rebuild.png")

    page.get_by_role("tab", name="Chat").click()
    answer = ask(page, "Who spotted a new comet, and when will it be visible?")
    assert "Glacier Ridge observatory spots a new comet" in answer.locator(".qa-sources").inner_text()
    screenshot(page, "chat-new-article.png")


def test_hostile_article_renders_as_text_and_runs_nothing(page):
    answer = ask(page, "Which museum opened an exhibition of antique typewriters?")
    answer.locator("a.qa-open", has_text="Museum shows antique typewriters").first.click()
    article = page.locator("#qa-viewer .qa-article")
    article.wait_for()
    text = article.inner_text()
    assert "<script>window.__pwned = 'title'</script>" in text
    assert "<img src=x onerror=" in text and "[the museum site](javascript:window.__pwned='link')" in text
    assert "<svg onload=" in text and "javascript:window.__pwned='url'" in text
    for scope in ("#qa-viewer .qa-article", "#qa-chat .message-content"):
        assert page.locator(f"{scope} :is(img, script, svg, iframe, object, embed, b)").count() == 0
        hrefs = page.locator(f"{scope} a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert all(h.startswith(("https://", "http://", "#qa-open/")) for h in hrefs), hrefs
    page.locator("#qa-viewer .qa-article").hover()
    page.wait_for_timeout(300)  # give any handler that slipped through the time to fire
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert HOSTILE["title"] in page.locator("#qa-viewer h2").inner_text()
    screenshot(page, "hostile-article.png")
