"""HTML (and JSON) for the page: answers, citations, sources, the article viewer and the index summary. Pure
functions, no Gradio. Every piece of article text is HTML-escaped here, once, on its way to the page; links are
made only for http(s) URLs; nothing is rendered as Markdown."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict
from urllib.parse import quote, unquote, urlsplit

from qa.answer import NOT_FOUND
from qa.backend import SearchIndex
from qa.service import BuildStatus, IndexSummary
from qa.types import Answer, Article, Citation, Hit, Sentence

CLOSEST_PASSAGES = 3  # articles shown under a "not found" verdict, one passage each
NO_TEXT = "Only this page's headline is indexed: its text could not be read. Open its link to check it."
CLOSEST_CHARS = 220  # ... cut to about two lines, so that the verdict above them stays in view
CONTEXT_CHARS = 240  # context around a quote when the index has no sentence offsets
OPEN_PREFIX = "#qa-open/"


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


def render_answer(answer: Answer, generation: SearchIndex) -> str:
    """An answer as chat HTML: the answer phrase in bold, quotes with clickable [n] markers, then the numbered
    sources with their quotes highlighted in context; for an abstention, the closest passages. A hidden copy in
    plain text (plain_answer) goes with it: the message's Copy button copies that, not the HTML."""
    if answer.abstained or not answer.citations:
        return _render_abstention(answer, generation) + _plain_html(plain_answer(answer, generation))
    # Made from the Answer's fields, never by parsing its text: each marker links its own quote, whatever
    # characters the quotes hold (“ ” [n] —), and another wording of the text changes nothing here.
    body = " ".join(
        f'“{text_html(c.quote)}” <a class="qa-cite" href="{_link(generation, c)}">[{c.n}]</a>' for c in answer.citations
    )
    if answer.answer_phrase is not None:
        body = f'<strong class="qa-phrase">{text_html(answer.answer_phrase.text)}</strong> — {body}'
    by_article: dict[tuple[int, str], list[Citation]] = {}
    for citation in answer.citations:
        by_article.setdefault((citation.n, citation.doc_id), []).append(citation)
    items = "".join(_render_source(quotes, answer.passages, generation) for _, quotes in sorted(by_article.items()))
    return f'<p class="qa-answer">{body}</p><ul class="qa-sources">{items}</ul>' + _plain_html(
        plain_answer(answer, generation)
    )


def plain_answer(answer: Answer, generation: SearchIndex) -> str:
    """An answer as plain text, what the chat's Copy button copies and the API's `/chat` returns: the answer
    (phrase, then each quote with its [n]), then the numbered sources with title, outlet, date and link; for an
    abstention, the verdict and the closest articles."""
    if answer.abstained or not answer.citations:
        lines = [_verdict(answer)]
        closest = _closest(answer.passages, generation)
        if closest:
            lines += ["", "Closest passages:"]
        for n, (hit, article) in enumerate(closest, 1):
            title = article.title or article.doc_id
            lines.append(f"{n}. {_source_line(title, article.source, article.publish_date, article.url)}")
            if article.text:
                lines.append(f"   “{_clip(' '.join(article.text[hit.start : hit.end].split()), CLOSEST_CHARS)}”")
            else:
                lines.append(f"   ({NO_TEXT})")
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


def _link(generation: SearchIndex, citation: Citation) -> str:
    return open_link(generation.name, citation.doc_id, citation.start, citation.end)


def _render_source(quotes: list[Citation], hits: Sequence[Hit], generation: SearchIndex) -> str:
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
        f" {external_link(first.url, 'original ↗')}{''.join(excerpts)}</li>"
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


def _closest(hits: Sequence[Hit], generation: SearchIndex) -> list[tuple[Hit, Article]]:
    """The best passage of each of the first CLOSEST_PASSAGES articles among `hits`."""
    closest: dict[str, tuple[Hit, Article]] = {}
    for hit in hits:
        if hit.doc_id not in closest and len(closest) < CLOSEST_PASSAGES:
            closest[hit.doc_id] = (hit, generation.article(hit.doc_id))
    return list(closest.values())


def _render_abstention(answer: Answer, generation: SearchIndex) -> str:
    """The verdict first, then one short passage from each of the closest articles."""
    items = []
    for hit, article in _closest(answer.passages, generation):
        link = open_link(generation.name, hit.doc_id, hit.start, hit.end)
        excerpt = _clip(" ".join(article.text[hit.start : hit.end].split()), CLOSEST_CHARS)
        shown = (
            f'<blockquote class="qa-passage">{text_html(excerpt)}</blockquote>'
            if article.text
            else f'<p class="qa-hint">{html.escape(NO_TEXT)} {external_link(article.url)}</p>'
        )
        items.append(
            f'<li><a class="qa-open" href="{link}">{html.escape(article.title or article.doc_id)}</a>'
            f' <span class="qa-meta">{_meta(article.source, article.publish_date)}</span>{shown}</li>'
        )
    closest = f'<p>Closest passages:</p><ul class="qa-sources">{"".join(items)}</ul>' if items else ""
    return f'<p class="qa-answer qa-notfound">{html.escape(_verdict(answer))}</p>{closest}'


def _verdict(answer: Answer) -> str:
    """What an answer without quotes says: its own text when it abstained (the CLI's words), else NOT_FOUND."""
    return answer.answer if answer.abstained and answer.answer.strip() else NOT_FOUND


def _clip(text: str, limit: int = 2 * CONTEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _meta(source: str, publish_date: str | None) -> str:
    return html.escape(" · ".join(part for part in (source, publish_date or "undated") if part))


def render_article(article: Article, start: int, end: int, generation: str) -> str:
    """The whole article for the viewer: headline, byline, date, outlet, URL, the quoted span highlighted."""
    byline = f"By {', '.join(article.authors)}" if article.authors else ""
    meta = " · ".join(part for part in (byline, article.source, article.publish_date or "undated") if part)
    url = f'<p class="qa-meta">{external_link(article.url)}</p>' if article.url else ""
    body = (
        f'<div class="qa-body">{highlighted(article.text, [(start, end)])}</div>'
        if article.text
        else f'<p class="qa-hint">{html.escape(NO_TEXT)}</p>'
    )
    return (
        f'<article class="qa-article"><h2>{html.escape(article.title or article.doc_id)}</h2>'
        f'<p class="qa-meta">{html.escape(meta)}</p>{url}{body}'
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
        bars.append(
            f'<div class="qa-bar" title="{tip}"><span>{count or ""}</span>'
            f'<div class="qa-fill" style="height:{100 * count / most:.0f}%"></div></div>'
        )
        labels.append(f"<span>{html.escape(period) if i % every == 0 else ''}</span>")
    first, last = summary.timeline[0][0], summary.timeline[-1][0]
    undated = f"; {summary.undated:,} undated not shown" if summary.undated else ""
    return (
        f'<figure class="qa-chart"><div class="qa-bars">{"".join(bars)}</div>'
        f'<div class="qa-labels">{"".join(labels)}</div>'
        f"<figcaption>Articles per {summary.period} by publication date, {html.escape(first)} to "
        f"{html.escape(last)}{undated}.</figcaption></figure>"
    )


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
