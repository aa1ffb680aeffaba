"""Rebuilds over HTTP while chat sessions keep asking: no failed request, and every answer's citations resolve
in the generation that produced it (the quote is that generation's article text at the cited offsets)."""

import importlib.util
import json
import sys
import threading
import time

from tests.conftest import ROOT, FakeEmbedder
from tests.test_web import PASSWORD, news_corpus
from tests.webapp import running_app

# The load benchmark's HTTP client and citation check (by path: site-packages holds another `benchmarks`).
_spec = importlib.util.spec_from_file_location("load_benchmark", ROOT / "benchmarks" / "load.py")
load_benchmark = sys.modules.setdefault("load_benchmark", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(load_benchmark)
Generations, HttpChat, Result = load_benchmark.Generations, load_benchmark.HttpChat, load_benchmark.Result
check_reply, cited_quotes = load_benchmark.check_reply, load_benchmark.cited_quotes

SESSIONS = 4
QUESTIONS = [
    "How many homes lost power in the hurricane?",
    "Who won the chess championship?",
    "Did the Senate pass the budget?",
    "When will the comet be visible?",
    "How much do apples cost?",
]
ADDED = [
    {
        "doc_id": "comet",
        "title": "Glacier observatory spots a new comet",
        "text": "Astronomers spotted a faint comet on Thursday. The comet will be visible with binoculars in October.",
    },
    {
        "doc_id": "orchard",
        "title": "Hillside orchard opens",
        "text": "The Hillside orchard opens on Saturday. A basket of apples costs 12 dollars, the owner said.",
    },
]


def upload(url: str, article: dict) -> None:
    import httpx

    data = json.dumps(article).encode()
    with httpx.Client(base_url=url, timeout=60, headers={"x-admin-password": PASSWORD}) as http:
        cached = http.post("/gradio_api/upload", files={"files": (f"{article['doc_id']}.json", data)}).json()[0]
    HttpChat(url).predict(
        [{"path": cached, "orig_name": f"{article['doc_id']}.json", "meta": {"_type": "gradio.FileData"}}],
        PASSWORD,
        api_name="/upload",
    )


def test_rebuilds_while_sessions_ask_fail_nothing_and_every_citation_resolves(tmp_path, monkeypatch):
    # the build process (tests/fake_build.py) pauses in embedding: long enough for questions to arrive meanwhile
    monkeypatch.setenv("FAKE_BUILD_PAUSE", "0.5")
    with running_app(news_corpus(tmp_path / "corpus"), tmp_path / "index", FakeEmbedder(), password=PASSWORD) as app:
        generations, result, stop = Generations(app.index), Result(), threading.Event()
        answered_at: list[tuple[float, str]] = []  # (time, generation) of every answer

        def session(number: int) -> None:
            chat = HttpChat(app.url)
            asked = 0
            while not stop.is_set():
                question = QUESTIONS[(number + asked) % len(QUESTIONS)]
                asked += 1
                try:
                    messages = chat.predict(question, [], api_name="/page_chat")[1]  # the page's HTML
                except Exception as error:  # noqa: BLE001 (any failure fails the test below)
                    result.errors.append(f"{type(error).__name__}: {error}")
                    continue
                reply = messages[-1]["content"][0]["text"]
                check_reply(reply, generations, result)
                answered_at.extend((time.monotonic(), cite[0]) for cite in cited_quotes(reply)[:1])

        threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
        for thread in threads:
            thread.start()
        windows = []
        try:
            for article in ADDED:
                time.sleep(0.5)
                upload(app.url, article)
                began = time.monotonic()
                report = HttpChat(app.url).predict(PASSWORD, api_name="/rebuild")
                windows.append((began, time.monotonic()))
                assert report["ok"] and report["new"] == 1 and not report["up_to_date"], report
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        assert not result.errors, result.errors[:5]
        assert not result.bad_citations, result.bad_citations[:5]
        assert len(result.generations) == 1 + len(ADDED), result.generations  # answers from every generation
        during = [name for at, name in answered_at if any(a <= at <= b for a, b in windows)]
        assert during, "no answer arrived while a rebuild ran"
        newest = app.service.generation.name
        reply = HttpChat(app.url).predict("How much does a basket of apples cost?", [], api_name="/page_chat")[1]
        cites = cited_quotes(reply[-1]["content"][0]["text"])
        assert cites and cites[0][0] == newest and "12 dollars" in cites[0][4]
