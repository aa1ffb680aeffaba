"""Launch the web app in this process on a free local port, over a temporary corpus (never the repository's)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from qa.build import build_index
from qa.config import Settings
from qa.service import ChatService
from tests.conftest import ROOT, FakeEmbedder
from tests.fake_build import fake_build_command

# An article whose every field carries a payload; rendered anywhere, it must show as text and run nothing.
HOSTILE = {
    "doc_id": "hostile-typewriters",
    "title": "Museum shows antique typewriters <script>window.__pwned = 'title'</script>",
    "authors": ["<img src=x onerror=\"window.__pwned='author'\">"],
    "source": "<b onmouseover=alert(1)>Payload Post</b>",
    "url": "javascript:window.__pwned='url'",
    "publish_date": "2025-07-30",
    "text": (
        "The Zephyrville museum opened an exhibition of 80 antique typewriters on Tuesday. "
        "<img src=x onerror=\"window.__pwned='img'; alert('img')\"> The oldest machine was built in 1878. "
        "Visitors can type a letter on a restored 1920s model <script>window.__pwned='script'</script>.\n"
        "A guide to the collection is at [the museum site](javascript:window.__pwned='link') and "
        "<a href=\"javascript:window.__pwned='anchor'\">here</a>. "
        "<svg onload=\"window.__pwned='svg'\"></svg> Entry is free for children under twelve."
    ),
}


@dataclass
class App:
    url: str
    service: ChatService
    corpus: Path
    index: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sample_corpus_copy(folder: Path, hostile: bool = False) -> Path:
    """The repository's sample corpus copied into `folder` (plus the hostile article when asked)."""
    shutil.copytree(ROOT / "corpus", folder, ignore=shutil.ignore_patterns("uploads"))
    if hostile:
        (folder / "hostile.json").write_text(json.dumps(HOSTILE), encoding="utf-8")
    return folder


@contextlib.contextmanager
def running_app(corpus: Path, index: Path, embedder, password: str = "", examples=()) -> Iterator[App]:
    from qa.web import launch

    build_index(corpus, index, embedder)
    # the rebuild process builds with the embedder of the test: the fake one, or the product's (`python -m qa build`)
    command = fake_build_command(corpus, index) if isinstance(embedder, FakeEmbedder) else None
    service = ChatService(corpus, index, embedder, admin_password=password, rebuild_command=command)
    port = free_port()
    demo = launch(service, examples, Settings(port=port), block=False)
    try:
        yield App(f"http://127.0.0.1:{port}", service, corpus, index)
    finally:
        demo.close()
        service.close()


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_in(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag of an HTML fragment with its attributes, as a browser would parse them."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


SAFE_TAGS = {
    "p",
    "br",
    "a",
    "strong",
    "ul",
    "li",
    "blockquote",
    "mark",
    "span",
    "article",
    "h2",
    "div",
    "table",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
}


def assert_inert(html: str) -> None:
    """Only our own harmless tags, no event handlers, links only to http(s) or to an article in the viewer."""
    for tag, attrs in tags_in(html):
        assert tag in SAFE_TAGS, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("http://", "https://", "#qa-open/")), href
