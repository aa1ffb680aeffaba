"""The Gradio web chat: presentation only. Every piece of article text is HTML-escaped here, once, on its
way to the page; links are made only for http(s) URLs; nothing is rendered as Markdown."""

import html
import json
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from qa.answer import NOT_FOUND
from qa.errors import QAError
from qa.service import (
    MAX_HISTORY_TURNS,
    MAX_QUESTION_CHARS,
    BuildStatus,
    ChatService,
    IndexSummary,
    QuestionRefused,
    TooManyAttempts,
)
from qa.store import Generation
from qa.types import Answer, Article, Citation, Hit, Sentence
from qa.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, UPLOAD_SUFFIXES, upload_name_problem

MAX_CHAT_MESSAGES = 40  # the chat keeps its last 20 questions and answers: what a request brings back is bounded
# Questions answered at once ($QA_ANSWER_CONCURRENCY). With the int8 embedder a question's model call is cheap, so
# batching many gains little, and more questions at once only share the interpreter lock: on two cores, 2 at
# once kept p95 within 2.2x of one client's under 16 sessions with pauses (16 at once: up to 4.2x) for 10 %
# fewer answers per second back to back (docs/reliability.md).
ANSWER_CONCURRENCY = int(os.environ.get("QA_ANSWER_CONCURRENCY", "2"))
CLOSEST_PASSAGES = 3  # articles shown under a "not found" verdict, one passage each
CLOSEST_CHARS = 220  # ... cut to about two lines, so that the verdict above them stays in view
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
// The chat's Copy buttons copy the plain text each answer carries (.qa-plain), not its HTML: the click is seen
// first, and the clipboard write Gradio makes in the same click (or its copy-command fallback) gets that text.
if (!window.__qaCopying) {
  window.__qaCopying = true;
  const plainOf = (row) => {
    const plain = row.querySelector('.qa-plain');
    const message = row.querySelector('.message-content') || row;
    return plain ? plain.textContent : message.innerText.trim();
  };
  document.addEventListener('click', (event) => {
    const button = event.target.closest('#qa-chat button');
    if (!button) return;
    const label = button.getAttribute('aria-label') || '';
    const buttons = button.closest('.message-buttons');  // just after the message they belong to
    const row = buttons ? buttons.previousElementSibling : button.closest('.message-row');
    if (row && /^Cop(y|ied)/.test(label)) {
      window.__qaPlainCopy = plainOf(row);
    } else if (/conversation/i.test(label)) {
      const rows = [...document.querySelectorAll('#qa-chat .message-row')];
      window.__qaPlainCopy = rows.map((r) => (r.classList.contains('user-row') ? 'Question: ' : '')
        + plainOf(r)).join('\\n\\n');
    } else {
      return;
    }
    setTimeout(() => { window.__qaPlainCopy = null; }, 1000);
  }, true);
  if (navigator.clipboard && navigator.clipboard.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => {
      const plain = window.__qaPlainCopy;
      window.__qaPlainCopy = null;
      return write(plain == null ? text : plain);
    };
  }
  document.addEventListener('copy', (event) => {
    if (window.__qaPlainCopy == null) return;
    event.clipboardData.setData('text/plain', window.__qaPlainCopy);
    event.preventDefault();
    window.__qaPlainCopy = null;
  }, true);
}
watch('value', () => {
  const quote = element.querySelector('mark.qa-quote');
  if (quote) quote.scrollIntoView({block: 'center'});
});
"""

PAGE_TITLE = "newsqa: answers quoted from your news articles"
# After an answer: the chat is scrolled to the newest question, so its answer (or a "not found" verdict above the
# closest passages) is read from its first line rather than its last.
_SHOW_NEWEST_JS = """() => {
  const rows = document.querySelectorAll('#qa-chat .message-row');
  const row = rows[Math.max(0, rows.length - 2)], wrap = row && row.closest('.bubble-wrap');
  if (wrap) wrap.scrollTop += row.getBoundingClientRect().top - wrap.getBoundingClientRect().top - 8;
}"""

CSS = """
h1.qa-title { font-size: 1.35em; margin: 0; }
/* The scroll-down button sits in the gutter right of the messages, not over their text. */
#qa-chat .message-wrap { margin-right: 44px; }
#qa-chat .scroll-down-button-container { left: auto; right: 6px; transform: none; }
.qa-answer { margin: 0 0 .4em; }
.qa-cite { font-weight: 600; text-decoration: none !important; }
.qa-sources { margin: .3em 0 0; padding-left: 0; list-style: none; font-size: .92em; }
.qa-sources li { margin-bottom: .5em; }
.qa-meta { color: var(--body-text-color-subdued); }
.qa-passage { margin: .2em 0 0; padding-left: .6em; border-left: 3px solid var(--border-color-primary); }
mark.qa-quote { background: #fde68a; color: inherit; padding: 0 1px; }
.qa-notfound { font-weight: 600; }
.qa-plain { display: none !important; }
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
    """An answer as chat HTML: the answer phrase in bold, quotes with clickable [n] markers, then the numbered
    sources with their quotes highlighted in context; for an abstention, the closest passages. A hidden copy in
    plain text (plain_answer) goes with it: the message's Copy button copies that, not the HTML."""
    if answer.abstained or not answer.citations:
        return _render_abstention(answer, generation) + _plain_html(plain_answer(answer, generation))
    # The answer text is exactly “quote” [n] per citation, in order (qa.answer.compose_answer), so the
    # body is rebuilt from the citations: each marker links its own quote, whatever the quotes contain.
    body = " ".join(
        f'“{text_html(c.quote)}” <a class="qa-cite" href="{_link(generation, c)}">[{c.n}]</a>'
        for c in answer.citations
    )
    if answer.answer_phrase is not None:
        body = f'<strong class="qa-phrase">{text_html(answer.answer_phrase.text)}</strong> — {body}'
    by_article: dict[tuple[int, str], list[Citation]] = {}
    for citation in answer.citations:
        by_article.setdefault((citation.n, citation.doc_id), []).append(citation)
    items = "".join(_render_source(quotes, answer.passages, generation) for _, quotes in sorted(by_article.items()))
    return (f'<p class="qa-answer">{body}</p><ul class="qa-sources">{items}</ul>'
            + _plain_html(plain_answer(answer, generation)))


def plain_answer(answer: Answer, generation: Generation) -> str:
    """An answer as plain text, what the chat's Copy button copies and the API's `/chat` returns: the answer
    (phrase, then each quote with its [n]), then the numbered sources with title, outlet, date and link; for an
    abstention, the verdict and the closest articles."""
    if answer.abstained or not answer.citations:
        lines = [NOT_FOUND]
        closest = _closest(answer.passages, generation)
        if closest:
            lines += ["", "Closest passages:"]
        for n, (hit, article) in enumerate(closest, 1):
            title = article.title or article.doc_id
            lines.append(f"{n}. {_source_line(title, article.source, article.publish_date, article.url)}")
            lines.append(f"   “{_clip(' '.join(article.text[hit.start : hit.end].split()), CLOSEST_CHARS)}”")
        return "\n".join(lines)
    body = " ".join(f"“{c.quote}” [{c.n}]" for c in answer.citations)
    if answer.answer_phrase is not None:
        body = f"{answer.answer_phrase.text} — {body}"
    lines = [body, "", "Sources:"]
    for n in dict.fromkeys(c.n for c in answer.citations):
        c = next(c for c in answer.citations if c.n == n)
        lines.append(f"[{n}] {_source_line(c.title or c.doc_id, c.source, c.publish_date, c.url)}")
    return "\n".join(lines)


def _source_line(title: str, source: str, publish_date: str | None, url: str) -> str:
    parts = [title, *(part for part in (source, publish_date or "undated") if part)]
    return " — ".join(parts[:2]) + "".join(f", {part}" for part in parts[2:]) + (f" {url}" if url else "")


def _plain_html(text: str) -> str:
    """The plain-text copy of a message, carried in it but never shown (the Copy button reads it)."""
    return f'<div class="qa-plain" hidden>{html.escape(text)}</div>'


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


def _closest(hits: Sequence[Hit], generation: Generation) -> list[tuple[Hit, Article]]:
    """The best passage of each of the first CLOSEST_PASSAGES articles among `hits`."""
    closest: dict[str, tuple[Hit, Article]] = {}
    for hit in hits:
        if hit.doc_id not in closest and len(closest) < CLOSEST_PASSAGES:
            closest[hit.doc_id] = (hit, generation.article(hit.doc_id))
    return list(closest.values())


def _render_abstention(answer: Answer, generation: Generation) -> str:
    """The verdict first, then one short passage from each of the closest articles."""
    items = []
    for hit, article in _closest(answer.passages, generation):
        link = open_link(generation.name, hit.doc_id, hit.start, hit.end)
        excerpt = _clip(" ".join(article.text[hit.start : hit.end].split()), CLOSEST_CHARS)
        items.append(
            f'<li><a class="qa-open" href="{link}">{html.escape(article.title or article.doc_id)}</a>'
            f' <span class="qa-meta">{_meta(article.source, article.publish_date)}</span>'
            f'<blockquote class="qa-passage">{text_html(excerpt)}</blockquote></li>'
        )
    closest = f'<p>Closest passages:</p><ul class="qa-sources">{"".join(items)}</ul>' if items else ""
    return f'<p class="qa-answer qa-notfound">{html.escape(NOT_FOUND)}</p>{closest}'


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

def client_address(request) -> str:
    """The address a Gradio request came from ("" when unknown): whom wrong admin passwords are counted for."""
    return getattr(getattr(request, "client", None), "host", "") or ""


def summary_json(summary: IndexSummary) -> dict:
    """The index summary for the API: counts, model, generation, and articles per period by publication date."""
    data = asdict(summary)
    data["timeline"] = [{"period": period, "articles": count} for period, count in summary.timeline]
    return data


def status_json(status: BuildStatus) -> dict:
    """A finished rebuild for the API: the generation answering now, what the build read and skipped, or why it
    failed."""
    report = status.report
    return {
        "ok": status.phase != "failed",
        "error": status.error,
        "generation": report.generation if report is not None else "",
        "up_to_date": bool(report is not None and report.up_to_date),
        "articles": report.articles_read if report is not None else 0,
        "new": report.new if report is not None else 0,
        "changed": report.changed if report is not None else 0,
        "removed": report.removed if report is not None else 0,
        "passages": report.passages if report is not None else 0,
        "seconds": round(report.seconds, 2) if report is not None else 0.0,
        "skipped": [{"origin": s.origin, "reason": s.reason} for s in (report.skipped if report is not None else [])],
    }


def build_ui(service: ChatService, examples: Sequence[str] = ()):
    """The Blocks app: a Chat tab (answers, sources, article viewer) and an Index tab (summary, upload, rebuild).
    The page's events return HTML and are left out of the API docs; the API (`/ask`, `/chat`, `/index_summary`,
    `/upload`, `/rebuild`) returns JSON, with named parameters, the password optional."""
    import gradio as gr

    def refuse(message: str) -> Exception:
        """The message shown on the page; no traceback in the log: it is the caller's mistake, not ours."""
        return gr.Error(message, print_exception=False)

    def question_problem(question: str) -> str:
        if not question:
            return "Type a question first."
        if len(question) > MAX_QUESTION_CHARS:
            return f"Questions are limited to {MAX_QUESTION_CHARS} characters."
        return ""

    def respond(question: str, messages: list, asked: list[str]):
        """The page's chat. A question refused (empty, too long, nothing to search for) leaves the chat as it is
        and shows a hint: an error would mark the chat and the question box as failed."""
        question = question.strip() if isinstance(question, str) else ""
        problem = question_problem(question)
        if not problem:
            try:
                answer, generation = service.ask(question, history=asked or [])
            except QuestionRefused as error:
                problem = f"{str(error)[:1].upper()}{str(error)[1:]}."
            except QAError as error:
                raise refuse(str(error)) from None
        if problem:
            gr.Warning(problem, duration=4, title="")
            return gr.skip(), gr.skip(), gr.skip()
        earlier = messages[-(MAX_CHAT_MESSAGES - 2) :] if isinstance(messages, list) else []
        messages = [
            *earlier,
            {"role": "user", "content": render_question(question)},
            {"role": "assistant", "content": render_answer(answer, generation)},
        ]
        return "", messages, [*(asked or []), question][-MAX_HISTORY_TURNS:]

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

    def answered(question: object, history: object) -> tuple[Answer, Generation]:
        question = question.strip() if isinstance(question, str) else ""
        if question_problem(question):
            raise refuse(f"Give a question of 1 to {MAX_QUESTION_CHARS} characters.")
        try:
            return service.ask(question, history=history if isinstance(history, list) else [])
        except QAError as error:
            raise refuse(str(error)) from None

    def ask_json(question: str, history: list[str] | None = None) -> dict:
        """Answer one question; the result has the same fields as `python -m qa ask --json`."""
        from qa.cli import answer_json

        return answer_json(answered(question, history)[0])

    def chat_json(question: str, history: list[str] | None = None) -> dict:
        """One turn of a conversation: `answer` (as `/ask` gives it), `text` (the answer and its numbered sources
        in plain text, as the page's Copy button copies it), `generation` (the index generation that answered:
        citations are offsets into its articles) and `history` (the questions so far, to pass with the next)."""
        from qa.cli import answer_json

        earlier = [q for q in history if isinstance(q, str)] if isinstance(history, list) else []
        answer, generation = answered(question, earlier)
        return {"answer": answer_json(answer), "text": plain_answer(answer, generation), "generation":
                generation.name, "history": [*earlier, answer.question][-MAX_HISTORY_TURNS:]}

    def index_summary() -> dict:
        """What the index holds: generation, build time, articles, passages, model, articles per period."""
        service.refresh()
        return summary_json(service.summary())

    def show_index():
        service.refresh()  # picks up a `python -m qa build` run while the page was open
        summary = service.summary()
        return render_summary(summary), render_timeline(summary)

    def save(files: list[str] | None, password: str | None, request: gr.Request) -> list[Path]:
        try:
            return service.save_uploads(files or [], [Path(f).name for f in files or []], password,
                                        client_address(request))
        except QAError as error:
            raise refuse(str(error)) from None

    def add_files(files: list[str] | None, password: str, request: gr.Request):
        names = ", ".join(html.escape(path.name) for path in save(files, password, request))
        return f"<p>Added to the corpus: {names}. Press “Rebuild index” to index them.</p>", None

    def run_rebuild(password: str | None, request: gr.Request, progress) -> BuildStatus:
        try:
            service.start_rebuild(password, client_address(request))
        except QAError as error:
            raise refuse(str(error)) from None
        while (status := service.build_status()).running:
            progress((status.done, status.total or None), desc=status.describe(), unit="passages")
            time.sleep(0.2)
        return status

    def rebuild(files: list[str] | None, password: str, request: gr.Request,
                progress=gr.Progress()):  # noqa: B008 (Gradio's progress bar)
        """The page's Rebuild: files chosen and not yet added are added first, so a chosen file is never left out."""
        added = ""
        if files:
            names = ", ".join(html.escape(path.name) for path in save(files, password, request))
            added = f"<p>Added to the corpus: {names}.</p>"
        status = run_rebuild(password, request, progress)
        return added + render_status(status), None, *show_index()

    def upload_json(files: list[str] | None, password: str | None, request: gr.Request) -> dict:
        """Add articles to the corpus (`<corpus>/uploads/`); `/rebuild` indexes them. `password`: the admin
        password, when one is set."""
        return {"added": [path.name for path in save(files, password, request)]}

    def rebuild_json(password: str | None, request: gr.Request,
                     progress=gr.Progress()) -> dict:  # noqa: B008 (Gradio's progress bar)
        """Rebuild the index from the corpus and switch to it; returns when it is answering (or failed).
        `password`: the admin password, when one is set."""
        return status_json(run_rebuild(password, request, progress))

    # Files sent to Gradio's upload route are deleted an hour after they came (checked every 5 minutes).
    with gr.Blocks(title=PAGE_TITLE, analytics_enabled=False,
                   delete_cache=(min(300, UPLOAD_CACHE_SECONDS), UPLOAD_CACHE_SECONDS)) as demo:
        gr.HTML(f'<h1 class="qa-title">{html.escape(PAGE_TITLE)}</h1>', elem_id="qa-heading", padding=False)
        asked = gr.State([])
        with gr.Tab("Chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Answers, quoted word for word",
                        show_label=False,  # a floating label would cover the first lines of the chat
                        elem_id="qa-chat",
                        height=560,
                        autoscroll=False,  # the newest answer is scrolled to its top instead (_SHOW_NEWEST_JS)
                        render_markdown=False,  # messages are HTML built here, every text escaped
                        latex_delimiters=[],
                        sanitize_html=True,
                        feedback_options=None,
                        buttons=["copy", "copy_all"],  # no "share": it posts to an outside site
                        placeholder="Ask a question about the indexed articles. Answers are quotes from them, "
                        "each with its source.",
                    )
                    with gr.Row(equal_height=True):
                        question = gr.Textbox(
                            show_label=False, placeholder="Ask about the indexed articles…", elem_id="qa-question",
                            scale=1, max_length=MAX_QUESTION_CHARS, submit_btn=False, container=False,
                        )
                        ask_button = gr.Button("Ask", variant="primary", scale=0, min_width=72, elem_id="qa-ask")
                        new_button = gr.Button("New chat", scale=0, min_width=128, elem_id="qa-new-chat")
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
                    gr.HTML('<p class="qa-hint">Rebuild index adds the chosen files first.</p>', padding=False)
            build_html = gr.HTML(elem_id="qa-build")
        # The API's own inputs and outputs, never shown: JSON results, parameters named after the functions'.
        api_files = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES), visible=False,
                            elem_id="qa-api-files")
        api_password = gr.Textbox("", visible=False, elem_id="qa-api-password")
        api_result = gr.JSON(label="result", visible=False)
        api_upload, api_rebuild = gr.Button(visible=False), gr.Button(visible=False)

        page = {"api_visibility": "undocumented"}  # the page's HTML events; scripts use the JSON API
        chat_inputs, chat_outputs = [question, chatbot, asked], [question, chatbot, asked]
        question.submit(respond, chat_inputs, chat_outputs, api_name="page_chat",
                        concurrency_limit=ANSWER_CONCURRENCY, **page).then(None, js=_SHOW_NEWEST_JS)
        ask_button.click(respond, chat_inputs, chat_outputs, api_visibility="private",
                         concurrency_limit=ANSWER_CONCURRENCY).then(None, js=_SHOW_NEWEST_JS)
        if examples:
            example_list.load_input_event.then(respond, chat_inputs, chat_outputs, api_visibility="private").then(
                None, js=_SHOW_NEWEST_JS)
        new_button.click(new_chat, None, [chatbot, asked, viewer, question], api_visibility="private")
        chatbot.clear(new_chat, None, [chatbot, asked, viewer, question], api_visibility="private")
        viewer.open(open_article, None, viewer, api_visibility="private", concurrency_limit=8)
        gr.api(ask_json, api_name="ask", concurrency_limit=ANSWER_CONCURRENCY)
        gr.api(chat_json, api_name="chat", concurrency_limit=ANSWER_CONCURRENCY)
        gr.api(index_summary, api_name="index_summary")

        # The browser sends the password typed so far with its uploads (a cookie of this site only): with an
        # admin password set, the upload route stores nothing without it (GuardUploads).
        password.change(None, [password], None, js=_ADMIN_COOKIE_JS, queue=False)
        index_outputs = [summary_html, chart]
        demo.load(show_index, None, index_outputs, api_name="page_index", **page)
        index_tab.select(show_index, None, index_outputs, api_visibility="private")
        add_button.click(add_files, [files, password], [build_html, files], api_name="page_upload", **page)
        # Not queued behind a running rebuild: a second press must be refused at once, not run afterwards.
        rebuild_button.click(rebuild, [files, password], [build_html, files, *index_outputs],
                             api_name="page_rebuild", concurrency_limit=None, **page)
        api_upload.click(upload_json, [api_files, api_password], api_result, api_name="upload")
        api_rebuild.click(rebuild_json, [api_password], api_result, api_name="rebuild", concurrency_limit=None)
    return demo


# Any other request (a question, a chat with its messages) holds at most this much: the page's largest, a chat
# of MAX_CHAT_MESSAGES answers, is about a fifth of it.
MAX_REQUEST_BYTES = 1024 * 1024
# ... and no list in it has more items than this: the page sends at most MAX_CHAT_MESSAGES chat messages,
# MAX_UPLOAD_FILES files, a history of MAX_HISTORY_TURNS questions.
MAX_LIST_ITEMS = 64
UPLOAD_CACHE_SECONDS = 3600  # Gradio deletes an uploaded file after this long (delete_cache)
TOTAL_UPLOAD_BYTES = 1024 * 1024 * 1024  # what all clients may have sent to the upload cache within that time
ADMIN_HEADER, ADMIN_COOKIE = "x-admin-password", "qa_admin"
_ADMIN_COOKIE_JS = (f"(password) => {{ document.cookie = '{ADMIN_COOKIE}=' + encodeURIComponent(password || '') + "
                    "'; path=/; SameSite=Strict'; }")
# The page needs inline scripts and styles (Gradio's own) and eval (js_on_load); nothing else leaves this site,
# and no other site may frame it.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CLOSE = {"connection": "close"}  # on a refusal: the server drops the connection rather than read the rest
# One upload request holds at most this much: every file the page takes at once, plus room for the form's
# headers. Larger than one file's limit, so Gradio's own 413 for a single oversized file still answers.
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES * MAX_UPLOAD_FILES + 1024 * 1024
CLIENT_UPLOAD_BYTES_PER_HOUR = 3 * MAX_UPLOAD_REQUEST_BYTES  # three full pages of uploads an hour
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


def is_upload_route(path: str) -> bool:
    """Gradio's upload route (`/gradio_api/upload`, under any root path), not an event named "upload"."""
    return path.rstrip("/").endswith("/gradio_api/upload")


class UploadQuota:
    """What Gradio's upload route may still take: per client (address) per hour, and from all clients
    together over the life of an uploaded file in the cache (UPLOAD_CACHE_SECONDS and one deletion round)."""

    def __init__(self, per_client: int | None = None, total: int | None = None) -> None:
        self.per_client = CLIENT_UPLOAD_BYTES_PER_HOUR if per_client is None else per_client
        self.total = TOTAL_UPLOAD_BYTES if total is None else total
        self._taken: deque[tuple[float, str, int]] = deque()  # (when, client, bytes), oldest first
        self._lock = threading.Lock()

    def allowance(self, client: str) -> tuple[int, tuple[int, str]]:
        """The bytes `client` may send now, and the refusal (status, message) for more than that."""
        now = time.monotonic()
        with self._lock:
            while self._taken and now - self._taken[0][0] > UPLOAD_CACHE_SECONDS + 300:
                self._taken.popleft()
            everyone = sum(size for _, _, size in self._taken)
            mine = sum(size for when, who, size in self._taken if who == client and now - when <= 3600)
        if self.total - everyone < self.per_client - mine:
            return max(0, self.total - everyone), (507, "refused: the upload cache is full; try again in an hour")
        return max(0, self.per_client - mine), (
            429, f"refused: at most {self.per_client / (1024 * 1024):.1f} MiB of uploads an hour from one address")

    def record(self, client: str, size: int) -> None:
        with self._lock:
            self._taken.append((time.monotonic(), client, size))


class RefuseUploadPaths:
    """ASGI middleware for Gradio's upload route (POST `.../upload`), which the admin password does not guard by
    itself: it stores files in Gradio's cache before any event runs. Refused here, each with a JSON
    {"detail": message}: a request from another site's page (403); with an admin password set, one that does
    not carry it (401: an `X-Admin-Password` header, or the `qa_admin` cookie the page sets as it is typed; wrong
    ones count against the client like any other, 429 past the limit); more than a client may store in an hour
    or than the cache may hold (429, 507: UploadQuota); a body over MAX_UPLOAD_REQUEST_BYTES (413); and, as its
    part headers are parsed, a file name that is not a plain one (400, qa.uploads.upload_name_problem), since
    Gradio keeps only its last part. Otherwise Gradio gets the body unchanged, spooled to disk past 1 MiB."""

    def __init__(self, app, service: ChatService | None = None, quota: UploadQuota | None = None) -> None:
        self.app, self.service, self.quota = app, service, quota or UploadQuota()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not is_upload_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser, parse_options_header
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        headers = Headers(scope=scope)

        async def refuse(status: int, message: str) -> None:
            # closed after the answer: what is left of a refused body is never read
            await JSONResponse({"detail": message}, status_code=status, headers=CLOSE)(scope, receive, send)

        client = (scope.get("client") or ("",))[0]
        if problem := self._refusal(headers, client):
            await refuse(*problem)
            return
        content_type, options = parse_options_header(headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            await self.app(scope, receive, send)  # Gradio answers 400 "Invalid content type."
            return

        too_large = (f"refused: an upload request may hold at most {MAX_UPLOAD_REQUEST_BYTES // (1024 * 1024)} MiB "
                     f"(the maximum allowed size: {MAX_UPLOAD_FILES} files of {MAX_UPLOAD_BYTES // (1024 * 1024)} "
                     "MiB each)")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_REQUEST_BYTES:
            await refuse(413, too_large)
            return
        allowed, over_quota = self.quota.allowance(client)
        if declared.isdigit() and int(declared) > allowed:
            await refuse(*over_quota)
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
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as body:
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
                if size > allowed:
                    await refuse(*over_quota)
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
                body.write(chunk)
            self.quota.record(client, size)
            body.seek(0)
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    chunk = body.read(256 * 1024)
                    replayed = not chunk or body.tell() >= size
                    return {"type": "http.request", "body": chunk, "more_body": not replayed}
                return await receive()  # after the body: the client's disconnect, as the server would say

            await self.app(scope, replay, send)

    def _refusal(self, headers, client: str) -> tuple[int, str] | None:
        """(status, message) for an upload request refused on its headers alone, else None."""
        from http.cookies import CookieError, SimpleCookie

        origin, host = headers.get("origin", ""), headers.get("host", "")
        if (origin and urlsplit(origin).netloc != host) or headers.get("sec-fetch-site") == "cross-site":
            return 403, "refused: uploads are taken only from this site's own page"
        if self.service is None or not self.service.admin_required:
            return None
        password = headers.get(ADMIN_HEADER)
        if password is None:
            try:
                cookie = SimpleCookie(headers.get("cookie", "")).get(ADMIN_COOKIE)
            except CookieError:
                cookie = None
            password = unquote(cookie.value) if cookie is not None else ""
        try:
            self.service.check_admin(password, client)
        except QAError as error:
            return (429 if isinstance(error, TooManyAttempts) else 401), f"refused: {error}"
        return None


def json_problem(body: bytes, content_type: str) -> str:
    """Why a JSON request body is refused (a list of more than MAX_LIST_ITEMS items anywhere in it: Gradio's
    chat parses every message of a 1 MiB list of tiny ones for most of a second), else ""."""
    if not content_type.lower().startswith("application/json"):
        return ""
    try:
        pending = [json.loads(body)]
    except (ValueError, RecursionError):
        return ""  # Gradio answers a malformed body itself
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                return f"refused: a list in a request may hold at most {MAX_LIST_ITEMS} items"
            pending.extend(value)
    return ""


class GuardRequests:
    """ASGI middleware in front of everything: any POST other than an upload carries at most
    MAX_REQUEST_BYTES (413 past it, before the app parses any of it: a 10 MB "history" never reaches the
    queue), and every response carries SECURITY_HEADERS."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if scope["method"] != "POST" or is_upload_route(scope["path"]):
            await self.app(scope, receive, send_with_headers)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        too_large = JSONResponse({"detail": f"refused: a request may hold at most {MAX_REQUEST_BYTES // 1024} KiB"},
                                 status_code=413, headers=CLOSE)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            await too_large(scope, receive, send_with_headers)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            if size > MAX_REQUEST_BYTES:
                await too_large(scope, receive, send_with_headers)
                return
        body = b"".join(chunks)
        if problem := json_problem(body, Headers(scope=scope).get("content-type", "")):
            await JSONResponse({"detail": problem}, status_code=413)(scope, receive, send_with_headers)
            return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


def launch(service: ChatService, examples: Sequence[str] = (), host: str = "127.0.0.1", port: int = 7860,
           block: bool = True):
    """Serve the chat. Gradio's file routes serve only its own upload cache: the index and corpus folders
    are never in allowed_paths, and are listed in blocked_paths as well. Gradio's upload route is guarded by
    RefuseUploadPaths (names that are paths, other sites, the admin password, quotas), every other request
    is bounded in size and every response carries security headers (GuardRequests)."""
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
        app_kwargs={"middleware": [Middleware(GuardRequests), Middleware(RefuseUploadPaths, service=service)]},
    )
    return demo
