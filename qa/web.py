"""The Gradio web chat: presentation only. Every piece of article text is HTML-escaped here, once, on its
way to the page; links are made only for http(s) URLs; nothing is rendered as Markdown."""

import html
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from qa.errors import QAError
from qa.service import (
    MAX_QUESTION_CHARS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_FILES,
    UPLOAD_SUFFIXES,
    BuildStatus,
    ChatService,
    IndexSummary,
    upload_name_problem,
)
from qa.store import Generation
from qa.types import Answer, Article, Citation, Hit, Sentence

NOT_FOUND_HEADING = "Not found in the indexed articles."
# Questions answered at once ($QA_ANSWER_CONCURRENCY). With the int8 embedder a question's model call is cheap, so
# batching many gains little, and more questions at once only share the interpreter lock: on two cores, 2 at
# once kept p95 within 2.2x of one client's under 16 sessions with pauses (16 at once: up to 4.2x) for 10 %
# fewer answers per second back to back (docs/reliability.md).
ANSWER_CONCURRENCY = int(os.environ.get("QA_ANSWER_CONCURRENCY", "2"))
CLOSEST_PASSAGES = 3
CONTEXT_CHARS = 240  # context around a quote when the index has no sentence offsets
OPEN_PREFIX = "#qa-open/"
_VIEWER_HINT = '<p class="qa-hint">Click a citation like [1], or a source title, to read the whole article here.</p>'

# The article viewer listens for clicks on citation links anywhere on the page (the chat's sanitiser drops
# data-* attributes, so the target travels in the link's fragment) and scrolls the highlighted quote into view.
_VIEWER_JS = """
window.__qaOpenArticle = (link) => trigger('open', {link: link});
if (!window.__qaListening) {
  window.__qaListening = true;
  document.addEventListener('click', (event) => {
    const anchor = event.target.closest('a[href^="#qa-open/"]');
    if (!anchor) return;
    event.preventDefault();
    window.__qaOpenArticle(anchor.getAttribute('href'));
  }, true);
}
watch('value', () => {
  const quote = element.querySelector('mark.qa-quote');
  if (quote) quote.scrollIntoView({block: 'center'});
});
"""

CSS = """
.qa-answer { margin: 0 0 .4em; }
.qa-cite { font-weight: 600; text-decoration: none !important; }
.qa-sources { margin: .3em 0 0; padding-left: 0; list-style: none; font-size: .92em; }
.qa-sources li { margin-bottom: .5em; }
.qa-meta { color: var(--body-text-color-subdued); }
.qa-passage { margin: .2em 0 0; padding-left: .6em; border-left: 3px solid var(--border-color-primary); }
mark.qa-quote { background: #fde68a; color: inherit; padding: 0 1px; }
.qa-notfound { font-weight: 600; }
.qa-article h2 { margin-top: 0; }
.qa-article .qa-body { line-height: 1.55; }
.qa-hint { color: var(--body-text-color-subdued); }
.qa-summary, .qa-summary tr, .qa-summary th, .qa-summary td { border: none !important; }
.qa-summary th { text-align: left; padding: 2px 16px 2px 0; font-weight: 600; }
.qa-failed { color: #b91c1c; }
.qa-chart { margin: 0; }
.qa-bars { display: flex; align-items: flex-end; gap: 3px; height: 160px; }
.qa-bar { flex: 1; height: 100%; display: flex; flex-direction: column; justify-content: flex-end;
          align-items: center; }
.qa-bar span { font-size: .8em; }
.qa-fill { width: 100%; min-height: 1px; background: var(--color-accent); border-radius: 2px 2px 0 0; }
.qa-labels { display: flex; gap: 3px; border-top: 1px solid var(--border-color-primary); }
.qa-labels span { flex: 1; font-size: .75em; white-space: nowrap; overflow: visible; }
.qa-chart figcaption { color: var(--body-text-color-subdued); margin-top: .4em; }
"""


# ---------------------------------------------------------------- rendering (pure functions, unit-tested)

def text_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


def safe_url(url: str) -> str | None:
    """The URL when it is an absolute http(s) URL, else None (javascript:, data:, relative...)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def external_link(url: str, label: str = "") -> str:
    """A link that opens in a new tab for an http(s) URL; any other URL is shown as text."""
    href = safe_url(url)
    text = html.escape(label or url)
    if href is None:
        return f'<span class="qa-url">{text}</span>' if url else ""
    return f'<a href="{html.escape(href, quote=True)}" target="_blank" rel="noopener noreferrer nofollow">{text}</a>'


def open_link(generation: str, doc_id: str, start: int, end: int) -> str:
    """The fragment a citation link carries: which article to open and which span to highlight."""
    return f"{OPEN_PREFIX}{quote(generation, safe='')}/{quote(doc_id, safe='')}/{int(start)}/{int(end)}"


def parse_open_link(link: str) -> tuple[str, str, int, int] | None:
    if not isinstance(link, str) or not link.startswith(OPEN_PREFIX):
        return None
    parts = link[len(OPEN_PREFIX) :].split("/")
    if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
        return None
    return unquote(parts[0]), unquote(parts[1]), int(parts[2]), int(parts[3])


def highlighted(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` escaped, each [start, end) span (offsets into `text`) wrapped in <mark class="qa-quote">."""
    parts, position = [], 0
    for start, end in sorted(spans):
        start, end = max(position, min(start, len(text))), max(0, min(end, len(text)))
        if start >= end:
            continue
        parts.append(f'{text_html(text[position:start])}<mark class="qa-quote">{text_html(text[start:end])}</mark>')
        position = end
    return "".join(parts) + text_html(text[position:])


def render_question(question: str) -> str:
    return text_html(question)


def render_answer(answer: Answer, generation: Generation) -> str:
    """An answer as chat HTML: quotes with clickable [n] markers, then the numbered sources with their quotes
    highlighted in context; for an abstention, the closest passages."""
    if answer.abstained or not answer.citations:
        return _render_abstention(answer, generation)
    # The answer text is exactly “quote” [n] per citation, in order (qa.answer.compose_answer), so the
    # body is rebuilt from the citations: each marker links its own quote, whatever the quotes contain.
    body = " ".join(
        f'“{text_html(c.quote)}” <a class="qa-cite" href="{_link(generation, c)}">[{c.n}]</a>'
        for c in answer.citations
    )
    by_article: dict[tuple[int, str], list[Citation]] = {}
    for citation in answer.citations:
        by_article.setdefault((citation.n, citation.doc_id), []).append(citation)
    items = "".join(_render_source(quotes, answer.passages, generation) for _, quotes in sorted(by_article.items()))
    return f'<p class="qa-answer">{body}</p><ul class="qa-sources">{items}</ul>'


def _link(generation: Generation, citation: Citation) -> str:
    return open_link(generation.name, citation.doc_id, citation.start, citation.end)


def _render_source(quotes: list[Citation], hits: Sequence[Hit], generation: Generation) -> str:
    """One source: [n], title, outlet, date, link, and its quotes highlighted in their context."""
    first = quotes[0]
    text = generation.article(first.doc_id).text
    sentences = generation.sentences(first.doc_id)
    excerpts = []
    for start, end in _merge([_context(q, hits, sentences, len(text)) for q in quotes]):
        spans = [(q.start - start, q.end - start) for q in quotes if start <= q.start and q.end <= end]
        before, after = ("… " if start > 0 else ""), (" …" if end < len(text) else "")
        excerpt = highlighted(text[start:end], spans)
        excerpts.append(f'<blockquote class="qa-passage">{before}{excerpt}{after}</blockquote>')
    title = html.escape(first.title or first.doc_id)
    return (
        f'<li><a class="qa-open" href="{_link(generation, first)}">[{first.n}] {title}</a>'
        f' <span class="qa-meta">{_meta(first.source, first.publish_date)}</span>'
        f' {external_link(first.url, "original ↗")}{"".join(excerpts)}</li>'
    )


def _context(citation: Citation, hits: Sequence[Hit], sentences: Sequence[Sentence], length: int) -> tuple[int, int]:
    """The quote with one sentence either side, inside the retrieved passage that holds it (when one does)."""
    low, high = 0, length
    for hit in hits:
        if hit.doc_id == citation.doc_id and hit.start <= citation.start and citation.end <= hit.end:
            low, high = hit.start, hit.end
            break
    before = [s.start for s in sentences if low <= s.start and s.end <= citation.start]
    after = [s.end for s in sentences if citation.end <= s.start and s.end <= high]
    if not sentences:
        before, after = [max(low, citation.start - CONTEXT_CHARS)], [min(high, citation.end + CONTEXT_CHARS)]
    return (before[-1] if before else citation.start), (after[0] if after else citation.end)


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _render_abstention(answer: Answer, generation: Generation) -> str:
    items = []
    for hit in answer.passages[:CLOSEST_PASSAGES]:
        article = generation.article(hit.doc_id)
        link = open_link(generation.name, hit.doc_id, hit.start, hit.end)
        items.append(
            f'<li><a class="qa-open" href="{link}">{html.escape(article.title or article.doc_id)}</a>'
            f' <span class="qa-meta">{_meta(article.source, article.publish_date)}</span>'
            f'<blockquote class="qa-passage">{text_html(_clip(article.text[hit.start : hit.end]))}</blockquote></li>'
        )
    closest = f'<p>Closest passages:</p><ul class="qa-sources">{"".join(items)}</ul>' if items else ""
    return f'<p class="qa-answer qa-notfound">{NOT_FOUND_HEADING}</p>{closest}'


def _clip(text: str, limit: int = 2 * CONTEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _meta(source: str, publish_date: str | None) -> str:
    return html.escape(" · ".join(part for part in (source, publish_date or "undated") if part))


def render_article(article: Article, start: int, end: int, generation: str) -> str:
    """The whole article for the viewer: headline, byline, date, outlet, URL, the quoted span highlighted."""
    byline = f"By {', '.join(article.authors)}" if article.authors else ""
    meta = " · ".join(part for part in (byline, article.source, article.publish_date or "undated") if part)
    url = f'<p class="qa-meta">{external_link(article.url)}</p>' if article.url else ""
    return (
        f'<article class="qa-article"><h2>{html.escape(article.title or article.doc_id)}</h2>'
        f'<p class="qa-meta">{html.escape(meta)}</p>{url}'
        f'<div class="qa-body">{highlighted(article.text, [(start, end)])}</div>'
        f'<p class="qa-meta">Article {html.escape(article.doc_id)} in index generation {html.escape(generation)}</p>'
        "</article>"
    )


def render_summary(summary: IndexSummary) -> str:
    rows = [
        ("Articles", f"{summary.articles:,}" + (f" ({summary.undated:,} undated)" if summary.undated else "")),
        ("Passages", f"{summary.passages:,}"),
        ("Model", f"{summary.model} ({summary.dimension} dimensions)"),
        ("Built", summary.built_at),
        ("Generation", summary.generation),
        ("Corpus", summary.corpus),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    warning = f'<p class="qa-failed">{html.escape(summary.warning)}</p>' if summary.warning else ""
    return f'{warning}<table class="qa-summary">{cells}</table>'


def render_status(status: BuildStatus) -> str:
    """A finished (or failed) rebuild: what it did, and what was skipped and why."""
    if status.phase == "idle":
        return ""
    lines = []
    if status.phase == "failed":
        why = html.escape(status.error)
        lines.append(f'<p class="qa-failed">Rebuild failed: {why}. The previous index stays in use.</p>')
    report = status.report
    if report is not None and report.generation:
        if report.up_to_date:
            lines.append(f"<p>The index is up to date (generation {html.escape(report.generation)}).</p>")
        else:
            lines.append(
                f"<p>Generation {html.escape(report.generation)} is now answering: {report.articles_read} articles "
                f"({report.new} new, {report.changed} changed, {report.removed} removed), {report.passages} passages, "
                f"{report.embedded} embedded, in {report.seconds:.1f} s.</p>"
            )
    if report is not None and report.skipped:
        skipped = "".join(f"<li>{html.escape(s.origin)}: {html.escape(s.reason)}</li>" for s in report.skipped[:50])
        more = f"<li>… and {len(report.skipped) - 50} more</li>" if len(report.skipped) > 50 else ""
        lines.append(f"<p>Skipped {len(report.skipped)}:</p><ul>{skipped}{more}</ul>")
    return "".join(lines)


def render_timeline(summary: IndexSummary, max_labels: int = 14) -> str:
    """Articles per period as an HTML bar chart (every bar has its count as a tooltip), with a caption."""
    if not summary.timeline:
        return '<p class="qa-hint">No article has a publication date.</p>'
    most = max(count for _, count in summary.timeline) or 1
    every = -(-len(summary.timeline) // max_labels)  # label at most `max_labels` periods
    bars, labels = [], []
    for i, (period, count) in enumerate(summary.timeline):
        tip = html.escape(f"{summary.period} of {period}: {count} article{'s' * (count != 1)}")
        bars.append(f'<div class="qa-bar" title="{tip}"><span>{count or ""}</span>'
                    f'<div class="qa-fill" style="height:{100 * count / most:.0f}%"></div></div>')
        labels.append(f"<span>{html.escape(period) if i % every == 0 else ''}</span>")
    first, last = summary.timeline[0][0], summary.timeline[-1][0]
    undated = f"; {summary.undated:,} undated not shown" if summary.undated else ""
    return (
        f'<figure class="qa-chart"><div class="qa-bars">{"".join(bars)}</div>'
        f'<div class="qa-labels">{"".join(labels)}</div>'
        f"<figcaption>Articles per {summary.period} by publication date, {html.escape(first)} to "
        f"{html.escape(last)}{undated}.</figcaption></figure>"
    )


# ---------------------------------------------------------------- the page

def build_ui(service: ChatService, examples: Sequence[str] = ()):
    """The Blocks app: a Chat tab (answers, sources, article viewer) and an Index tab (summary, upload, rebuild)."""
    import gradio as gr

    def respond(question: str, messages: list, asked: list[str]):
        question = question.strip() if isinstance(question, str) else ""
        if not question:
            raise gr.Error("Type a question first.")
        if len(question) > MAX_QUESTION_CHARS:
            raise gr.Error(f"Questions are limited to {MAX_QUESTION_CHARS} characters.")
        try:
            answer, generation = service.ask(question, history=asked or [])
        except QAError as error:
            raise gr.Error(str(error)) from None
        messages = [
            *(messages or []),
            {"role": "user", "content": render_question(question)},
            {"role": "assistant", "content": render_answer(answer, generation)},
        ]
        return "", messages, [*(asked or []), question]

    def open_article(evt: gr.EventData):
        target = parse_open_link(getattr(evt, "link", ""))
        if target is None:
            return '<p class="qa-hint">That link does not point to an article.</p>'
        generation_name, doc_id, start, end = target
        try:
            article, generation = service.find_article(generation_name, doc_id)
        except KeyError:
            return '<p class="qa-hint">That article is no longer in the index.</p>'
        return render_article(article, start, end, generation.name)

    def new_chat():
        return [], [], _VIEWER_HINT, ""

    def ask_json(question: str, history: list[str] | None = None) -> dict:
        """Answer one question; the result has the same fields as `python -m qa ask --json`."""
        from qa.cli import answer_json

        question = question.strip() if isinstance(question, str) else ""
        if not question or len(question) > MAX_QUESTION_CHARS:
            raise gr.Error(f"Give a question of 1 to {MAX_QUESTION_CHARS} characters.")
        try:
            return answer_json(service.ask(question, history=history or [])[0])
        except QAError as error:
            raise gr.Error(str(error)) from None

    def show_index():
        service.refresh()  # picks up a `python -m qa build` run while the page was open
        summary = service.summary()
        return render_summary(summary), render_timeline(summary)

    def add_files(files: list[str] | None, password: str):
        try:
            saved = service.save_uploads(files or [], [Path(f).name for f in files or []], password)
        except QAError as error:
            raise gr.Error(str(error)) from None
        names = ", ".join(html.escape(path.name) for path in saved)
        return f"<p>Added to the corpus: {names}. Press “Rebuild index” to index them.</p>", None

    def rebuild(password: str, progress=gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        try:
            service.start_rebuild(password)
        except QAError as error:
            raise gr.Error(str(error)) from None
        while (status := service.build_status()).running:
            progress((status.done, status.total or None), desc=status.describe(), unit="passages")
            time.sleep(0.2)
        return render_status(status), *show_index()

    with gr.Blocks(title="newsqa: answers quoted from your news articles", analytics_enabled=False) as demo:
        asked = gr.State([])
        with gr.Tab("Chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Answers, quoted word for word",
                        elem_id="qa-chat",
                        height=560,
                        render_markdown=False,  # messages are HTML built here, every text escaped
                        latex_delimiters=[],
                        sanitize_html=True,
                        feedback_options=None,
                        buttons=["copy", "copy_all"],  # no "share": it posts to an outside site
                        placeholder="Ask a question about the indexed articles. Answers are quotes from them, "
                        "each with its source.",
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            show_label=False, placeholder="Ask about the indexed articles…", elem_id="qa-question",
                            scale=5, max_length=MAX_QUESTION_CHARS, submit_btn=False,
                        )
                        ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
                        new_button = gr.Button("New chat", scale=1, elem_id="qa-new-chat")
                    if examples:
                        example_list = gr.Examples([[q] for q in examples], inputs=[question],
                                                   label="Example questions")
                with gr.Column(scale=2):
                    viewer = gr.HTML(_VIEWER_HINT, js_on_load=_VIEWER_JS, elem_id="qa-viewer", max_height=680,
                                     container=True, padding=True, label="Article")
        with gr.Tab("Index", elem_id="qa-index-tab") as index_tab:
            summary_html = gr.HTML(elem_id="qa-summary")
            chart = gr.HTML(elem_id="qa-timeline")
            with gr.Row():
                files = gr.File(label="Articles to add (.txt .md .html .json .jsonl, at most "
                                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MiB each)", file_count="multiple",
                                file_types=list(UPLOAD_SUFFIXES), elem_id="qa-upload", scale=3)
                with gr.Column(scale=2):
                    password = gr.Textbox(label="Admin password", type="password", elem_id="qa-password",
                                          visible=service.admin_required)
                    add_button = gr.Button("Add to corpus", elem_id="qa-add")
                    rebuild_button = gr.Button("Rebuild index", variant="primary", elem_id="qa-rebuild")
            build_html = gr.HTML(elem_id="qa-build")

        chat_inputs, chat_outputs = [question, chatbot, asked], [question, chatbot, asked]
        question.submit(respond, chat_inputs, chat_outputs, api_name="chat", concurrency_limit=ANSWER_CONCURRENCY)
        ask_button.click(respond, chat_inputs, chat_outputs, api_visibility="undocumented",
                         concurrency_limit=ANSWER_CONCURRENCY)
        if examples:
            example_list.load_input_event.then(respond, chat_inputs, chat_outputs, api_visibility="undocumented")
        new_button.click(new_chat, None, [chatbot, asked, viewer, question], api_name="new_chat")
        chatbot.clear(new_chat, None, [chatbot, asked, viewer, question], api_visibility="undocumented")
        viewer.open(open_article, None, viewer, api_visibility="undocumented", concurrency_limit=8)
        gr.api(ask_json, api_name="ask", concurrency_limit=ANSWER_CONCURRENCY)

        index_outputs = [summary_html, chart]
        demo.load(show_index, None, index_outputs, api_name="index_summary")
        index_tab.select(show_index, None, index_outputs, api_visibility="undocumented")
        add_button.click(add_files, [files, password], [build_html, files], api_name="upload")
        # Not queued behind a running rebuild: a second press must be refused at once, not run afterwards.
        rebuild_button.click(rebuild, [password], [build_html, *index_outputs], api_name="rebuild",
                             concurrency_limit=None)
    return demo


# One upload request holds at most this much: every file the page takes at once, plus room for the form's
# headers. Larger than one file's limit, so Gradio's own 413 for a single oversized file still answers.
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES * MAX_UPLOAD_FILES + 1024 * 1024
# A Content-Disposition parameter: name=value, the value a quoted string (with \\ escapes) or a bare token.
_DISPOSITION_PARAM = re.compile(r'(?:^|;)\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL)


def _header_text(raw: bytes) -> str:
    """Header bytes as Gradio reads them: UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def disposition_file_names(disposition: bytes) -> list[str]:
    """Every file name a part's Content-Disposition header gives: `filename` as python-multipart (so Gradio)
    reads it, and as written, before its work-around for old browsers keeps only what follows a backslash;
    `filename*` (RFC 5987, which Gradio ignores) as written and percent-decoded."""
    from python_multipart.multipart import parse_options_header

    text = disposition.decode("latin-1")
    names = []
    for key, value in _DISPOSITION_PARAM.findall(text):
        key, value = key.lower(), value.strip()
        if not key.startswith("filename"):
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        names.append(_header_text(value.encode("latin-1")))
        if "*" in key:  # charset'language'percent-encoded
            names.append(unquote(names[-1].split("'", 2)[-1], errors="replace"))
    gradio_name = parse_options_header(disposition)[1].get(b"filename")
    return names if gradio_name is None else [*names, _header_text(gradio_name)]


class RefuseUploadPaths:
    """ASGI middleware for Gradio's upload route. Gradio keeps only the last part of an uploaded file's name
    (`Path(filename).name`) before this app sees it, so a name that is a path would be silently renamed. Here
    the multipart body of a POST to `.../upload` is read first (at most MAX_UPLOAD_REQUEST_BYTES, else 413),
    its part headers parsed as it arrives, and the request refused with 400 and a JSON {"detail": message} as
    soon as a file name is not a plain one (qa.service.upload_name_problem); otherwise Gradio gets the body
    unchanged."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or not scope["path"].rstrip("/").endswith("/upload")):
            await self.app(scope, receive, send)
            return
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser, parse_options_header
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        headers = Headers(scope=scope)
        content_type, options = parse_options_header(headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            await self.app(scope, receive, send)  # Gradio answers 400 "Invalid content type."
            return

        async def refuse(status: int, message: str) -> None:
            await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)

        too_large = (f"refused: an upload request may hold at most {MAX_UPLOAD_REQUEST_BYTES // (1024 * 1024)} MiB "
                     f"(the maximum allowed size: {MAX_UPLOAD_FILES} files of {MAX_UPLOAD_BYTES // (1024 * 1024)} "
                     "MiB each)")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_REQUEST_BYTES:
            await refuse(413, too_large)
            return
        problems: list[str] = []
        header_name, header_value = bytearray(), bytearray()

        def header_end() -> None:
            if bytes(header_name).strip().lower() == b"content-disposition":
                names = disposition_file_names(bytes(header_value))
                problems.extend(p for p in map(upload_name_problem, names) if p)
            header_name.clear()
            header_value.clear()

        callbacks = {
            "on_header_field": lambda data, start, end: header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: header_value.extend(data[start:end]),
            "on_header_end": header_end,
        }
        chunks: deque[bytes] = deque()
        size, more, parser = 0, True, None
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > MAX_UPLOAD_REQUEST_BYTES:
                await refuse(413, too_large)
                return
            try:
                parser = parser or MultipartParser(options[b"boundary"], callbacks)
                parser.write(chunk)
            except FormParserError as error:  # Gradio's parser, the same one, would refuse it too
                await refuse(400, f"refused: the upload is not a well-formed multipart form ({error})")
                return
            if problems:
                await refuse(400, problems[0])
                return
            chunks.append(chunk)

        async def replay():
            if chunks:
                chunk = chunks.popleft()
                return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
            return await receive()  # after the body: the client's disconnect, as the server would say

        await self.app(scope, replay, send)


def launch(service: ChatService, examples: Sequence[str] = (), host: str = "127.0.0.1", port: int = 7860,
           block: bool = True):
    """Serve the chat. Gradio's file routes serve only its own upload cache: the index and corpus folders
    are never in allowed_paths, and are listed in blocked_paths as well. Uploads whose file names are paths
    are refused at Gradio's upload route (RefuseUploadPaths), before Gradio strips them to a base name."""
    from starlette.middleware import Middleware

    demo = build_ui(service, examples)
    demo.queue(default_concurrency_limit=2)
    demo.launch(
        server_name=host,
        server_port=port,
        css=CSS,
        blocked_paths=[str(service.index_dir.resolve()), str(service.corpus.resolve())],
        max_file_size=MAX_UPLOAD_BYTES,
        prevent_thread_lock=not block,
        show_error=False,
        footer_links=["api"],
        quiet=not block,
        # Every request through this process, so every upload through RefuseUploadPaths: no static workers.
        num_workers=0,
        app_kwargs={"middleware": [Middleware(RefuseUploadPaths)]},
    )
    return demo
