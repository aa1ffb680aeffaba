"""Load on the web chat through its real HTTP interface, optionally with a rebuild while it runs.

Usage: python benchmarks/load.py [--clients 16] [--questions 25] [--duration 120] [--rebuild [--rebuild-articles N]]
                                 [--index DIR] [--endpoint chat|ask] [--server-env KEY=VALUE ...] [--json]

Starts `app.py` on 127.0.0.1 (a free port) over a copy of the sample corpus in a temporary folder (or,
with --index, over a copy of that built index, e.g. /tmp/idx_eval), then drives it with gradio_client:
first one client alone (the single-client latency of this run), then --clients concurrent chat
sessions of --questions questions each, stopped after --duration seconds. With --rebuild, a few new
articles (and --rebuild-articles altered copies of the corpus's own, so that the build has real work: each of
their passages is embedded) are uploaded and the index rebuilt over HTTP (admin password) while the load runs;
the sessions keep asking until --after-rebuild seconds after it, and the answers that overlap the rebuild are
measured apart from the others (`quiet_p95_ms`, `rebuild_p95_ms`, `rebuild_over_quiet_p95`).
Every answer of `/page_chat` (the page's chat, HTML) has its citations checked against the generation named in its
links: the quote must equal that generation's article text at the cited offsets. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app import SAMPLE_QUESTIONS  # noqa: E402 (after the path is set)
from tests.webapp import free_port  # noqa: E402

EVAL_QUESTIONS = ROOT.parent / "shared" / "eval" / "realtimeqa" / "dev.jsonl"
QUESTIONS_ABOUT_SAMPLE = [
    *SAMPLE_QUESTIONS,
    "What did Dar and Rubio discuss?",
    "How many seeds can library members borrow?",
    "Where will the new bike lanes run in Riverton?",
    "What prize did the sourdough baker win?",
    "How often does the Gull Island ferry sail?",
    "Who placed the heat sensors in backyards?",
    "What does the seed library lend?",
    "Which city is building protected bike lanes?",
    "What is the price of a ferry ticket for children?",
    "What is the capital of Mongolia?",
]
# Articles uploaded during --rebuild, and questions that only they answer.
NEW_ARTICLES = [
    {
        "doc_id": "load-comet",
        "title": "Glacier Ridge observatory spots a new comet",
        "source": "Valley Courier",
        "publish_date": "2025-08-14",
        "url": "https://example.com/comet",
        "text": "Astronomers at the Glacier Ridge observatory spotted a faint comet on Thursday night. "
        "The comet will be visible with binoculars in October, observatory director Ana Lind said.",
    },
    {
        "doc_id": "load-orchard",
        "title": "Hillside orchard opens for apple picking",
        "source": "Valley Courier",
        "publish_date": "2025-09-02",
        "url": "https://example.com/orchard",
        "text": "The Hillside orchard opens for apple picking on Saturday. A basket of apples costs 12 dollars, "
        "and the orchard grows 40 varieties, owner Teo Marsh said.",
    },
    {
        "doc_id": "load-pool",
        "title": "Eastside pool closes for repairs",
        "source": "Riverton Times",
        "publish_date": "2025-09-05",
        "url": "https://example.com/pool",
        "text": "The Eastside public pool will close for six weeks of repairs starting Monday. "
        "The city will spend 300,000 dollars on new filters and tiles.",
    },
]
NEW_QUESTIONS = [
    "When will the comet be visible with binoculars?",
    "How much does a basket of apples cost?",
    "How long will the Eastside pool be closed?",
]
_CITE = re.compile(r'<a class="qa-cite" href="#qa-open/([^/"]+)/([^/"]+)/(\d+)/(\d+)">\[\d+\]</a>')


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each answer, perf_counter
    errors: list[str] = field(default_factory=list)
    answered: int = 0  # answers with at least one citation
    citations: int = 0
    bad_citations: list[str] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)  # answers per generation that produced them
    lock: threading.Lock = field(default_factory=threading.Lock)


class Generations:
    """Generations opened from the index folder the first time an answer names them (while still on disk).
    Opened for their article texts only, so that a server of another version (--app-root) is checked too."""

    def __init__(self, index: Path):
        self.index, self.opened, self.lock = index, {}, threading.Lock()

    def get(self, name: str):
        from qa.store import Generation

        with self.lock:
            if name not in self.opened:
                self.opened[name] = Generation(self.index / name, for_reuse=True)
            return self.opened[name]


def cited_quotes(reply: str) -> list[tuple[str, str, int, int, str]]:
    """(generation, doc_id, start, end, quote) for each [n] link of a rendered answer: “quote” <a ...>[n]</a>."""
    from urllib.parse import unquote

    found, position = [], 0
    for match in _CITE.finditer(reply):
        before = reply[position : match.start()]
        position = match.end()
        opening, closing = before.find("“"), before.rfind("”")
        quote = html.unescape(before[opening + 1 : closing].replace("<br>", "\n")) if 0 <= opening < closing else ""
        found.append((unquote(match[1]), unquote(match[2]), int(match[3]), int(match[4]), quote))
    return found


def check_reply(reply: str, generations: Generations, result: Result) -> None:
    cites = cited_quotes(reply)
    names = {c[0] for c in cites}
    with result.lock:
        result.citations += len(cites)
        result.answered += bool(cites)
        for name in names:
            result.generations[name] = result.generations.get(name, 0) + 1
    for name, doc_id, start, end, quote in cites:
        try:
            text = generations.get(name).article(doc_id).text
            ok = text[start:end] == quote
        except Exception as error:  # noqa: BLE001 (any failure to resolve is a failed check)
            ok, text = False, f"{type(error).__name__}: {error}"
        if not ok:
            with result.lock:
                result.bad_citations.append(f"{name}/{doc_id}/{start}/{end}: {quote[:60]!r}")


class HttpChat:
    """Gradio's plain REST API: POST /gradio_api/call/<endpoint>, then read the event stream to its result."""

    def __init__(self, url: str):
        import httpx

        self.http = httpx.Client(base_url=url, timeout=300)
        self.session = secrets.token_hex(8)  # one chat session, as a browser tab keeps

    def predict(self, *data, api_name: str):
        name = api_name.strip("/")
        event = self.http.post(f"/gradio_api/call/{name}", json={"data": list(data), "session_hash": self.session})
        event.raise_for_status()
        stream = self.http.get(f"/gradio_api/call/{name}/{event.json()['event_id']}")
        kind = None
        for line in stream.text.splitlines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: ") and kind in ("complete", "error"):
                payload = json.loads(line[len("data: ") :])
                if kind == "error":
                    raise RuntimeError(f"the app answered with an error: {payload}")
                return payload if len(payload) > 1 else payload[0]
        raise RuntimeError(f"no result in the event stream: {stream.text[:200]!r}")


def make_client(url: str, driver: str):
    if driver == "http":
        return HttpChat(url)
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def ask_once(client, endpoint: str, question: str, generations: Generations, result: Result) -> None:
    started = time.perf_counter()
    try:
        if endpoint == "chat":
            messages = client.predict(question, [], api_name="/page_chat")[1]  # the page's chat, HTML
            reply = messages[-1]["content"]
            reply = reply[0]["text"] if isinstance(reply, list) else str(reply)
        else:
            client.predict(question, None, api_name="/ask")
            reply = ""
    except Exception as error:  # noqa: BLE001 (every failure counts as an error)
        with result.lock:
            result.errors.append(f"{type(error).__name__}: {str(error)[:200]}")
        return
    ended = time.perf_counter()
    with result.lock:
        result.latencies.append(ended - started)
        result.spans.append((started, ended))
    if reply:
        check_reply(reply, generations, result)


def prepare(work: Path, index: str | None) -> tuple[Path, Path]:
    """A corpus folder and an index folder of our own under `work`; the originals are never written."""
    corpus, index_copy = work / "corpus", work / "index"
    if index is None:
        shutil.copytree(ROOT / "corpus", corpus, ignore=shutil.ignore_patterns("uploads"))
        return corpus, index_copy
    source = Path(index)
    current = (source / "CURRENT").read_text().strip()
    shutil.copytree(source, index_copy, ignore=shutil.ignore_patterns(".build.lock", ".tmp-*"))  # any layout
    corpus.mkdir()
    original = Path(json.loads((source / current / "manifest.json").read_text())["corpus"])
    for item in [original] if original.is_file() else original.iterdir():  # copied: a build skips links
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, corpus / item.name)
    return corpus, index_copy


def start_server(
    app_root: Path, corpus: Path, index: Path, port: int, password: str, env_overrides: dict[str, str], log_path: Path
) -> subprocess.Popen:
    env = {**os.environ, "QA_ADMIN_PASSWORD": password, **env_overrides}
    command = [
        sys.executable,
        str(app_root / "app.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--corpus",
        str(corpus),
        "--index",
        str(index),
    ]
    log = open(log_path, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    return subprocess.Popen(command, cwd=app_root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(url: str, server: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server did not answer within {timeout:.0f} s")


def altered_copies(corpus: Path, count: int) -> list[dict]:
    """`count` articles of the corpus under new ids, each with its title and first line changed so that every
    passage of it is new to the index (written to a temporary folder for the upload, never kept)."""
    from qa.ingest import read_corpus

    articles = sorted(read_corpus(corpus).articles, key=lambda a: a.doc_id)
    if not articles or count <= 0:
        return []
    copies = []
    for number in range(count):
        article = articles[number * 7919 % len(articles)]  # spread over the corpus, the same in every run
        copies.append(
            {
                "doc_id": f"load-copy-{number}",
                "title": f"{article.title} (update {number})",
                "source": article.source,
                "publish_date": article.publish_date,
                "url": article.url,
                "text": f"Update {number} to this story, as filed again. {article.text}",
            }
        )
    return copies


def rebuild_over_http(
    url: str, password: str, extra: list[dict], events: list[str], started: float, window: list[float]
) -> None:
    """Upload the new articles and rebuild, through the same endpoints as the page (admin password); `window`
    gets the rebuild's start and end (perf_counter)."""
    from gradio_client import Client, handle_file

    admin = Client(url, verbose=False, download_files=False, headers={"x-admin-password": password})
    folder = Path(tempfile.mkdtemp(prefix="qa-load-upload-"))
    files = []
    for article in NEW_ARTICLES:
        path = folder / f"{article['doc_id']}.json"
        path.write_text(json.dumps(article), encoding="utf-8")
        files.append(handle_file(str(path)))
    for part in range(0, len(extra), 200):  # a few files of JSON lines, each well under the upload limit
        path = folder / f"load-copies-{part}.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in extra[part : part + 200]), encoding="utf-8")
        files.append(handle_file(str(path)))
    try:
        admin.predict(files=files, password=password, api_name="/upload")
        events.append(f"{time.perf_counter() - started:6.1f} s  uploaded {len(NEW_ARTICLES) + len(extra)} articles")
        began = time.perf_counter()
        window.append(began)
        report = admin.predict(password=password, api_name="/rebuild")
        window.append(time.perf_counter())
        plain = (
            f"generation {report['generation']}: {report['articles']} articles ({report['new']} new), "
            f"{report['passages']} passages"
            if report["ok"]
            else f"failed: {report['error']}"
        )
        events.append(
            f"{time.perf_counter() - started:6.1f} s  rebuild done in {time.perf_counter() - began:.1f} s: "
            f"{plain[:160]}"
        )
    except Exception as error:  # noqa: BLE001
        events.append(f"{time.perf_counter() - started:6.1f} s  rebuild FAILED: {type(error).__name__}: {error}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def split_by_window(result: Result, window: list[float]) -> tuple[list[float], list[float]]:
    """Latencies of the answers that overlap the rebuild's window, and of the others (the same load, quiet)."""
    if len(window) < 2:
        return [], list(result.latencies)
    began, ended = window[0], window[1]
    during, quiet = [], []
    for latency, (start, end) in zip(result.latencies, result.spans, strict=True):
        (during if start < ended and end > began else quiet).append(latency)
    return during, quiet


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile in milliseconds, rounded; None when there is nothing to measure."""
    return round(float(np.percentile(np.array(values), q)) * 1000) if values else None


def load_questions(args, external_index: bool) -> list[str]:
    if args.questions_from == "dev" or (args.questions_from == "auto" and external_index):
        if not EVAL_QUESTIONS.exists():
            sys.exit(f"no evaluation questions at {EVAL_QUESTIONS}")
        with open(EVAL_QUESTIONS, encoding="utf-8") as handle:
            return [q for q in (json.loads(line).get("question") for line in handle if line.strip()) if q]
    return QUESTIONS_ABOUT_SAMPLE + NEW_QUESTIONS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--questions", type=int, default=25, help="questions per client")
    parser.add_argument("--single", type=int, default=25, help="questions of the single-client run")
    parser.add_argument("--duration", type=float, default=120, help="stop the concurrent run after this many s")
    parser.add_argument("--rebuild", action="store_true", help="upload articles and rebuild while the load runs")
    parser.add_argument("--rebuild-after", type=float, default=5, help="seconds into the concurrent run")
    parser.add_argument(
        "--rebuild-articles",
        type=int,
        default=0,
        help="with --rebuild: also upload this many altered copies of the corpus's articles",
    )
    parser.add_argument(
        "--after-rebuild",
        type=float,
        default=10,
        help="with --rebuild: the sessions keep asking this many seconds after the rebuild",
    )
    parser.add_argument("--index", help="serve a copy of this built index (e.g. /tmp/idx_eval)")
    parser.add_argument("--endpoint", choices=("chat", "ask"), default="chat")
    parser.add_argument(
        "--driver",
        choices=("http", "gradio_client"),
        default="http",
        help="plain HTTP (Gradio's REST API, light) or gradio_client sessions (heavier client)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean pause of each client between questions, in s (uniform 0..2x); 0: closed loop",
    )
    parser.add_argument(
        "--questions-from",
        choices=("auto", "dev", "sample"),
        default="auto",
        help="auto: the dev set with --index, else questions about the sample corpus",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the server, e.g. OMP_NUM_THREADS=1 (repeatable)",
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="serve the app.py of this tree, e.g. an older commit from `git archive` (default: here)",
    )
    parser.add_argument("--startup-timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and server log")
    args = parser.parse_args()
    questions = load_questions(args, args.index is not None)
    if args.index is not None and not (Path(args.index) / "CURRENT").is_file():
        sys.exit(f"no built index in {args.index} (it has no CURRENT file)")
    work = Path(tempfile.mkdtemp(prefix="qa-load-"))
    corpus, index = prepare(work, args.index)
    extra = altered_copies(corpus, args.rebuild_articles) if args.rebuild else []  # read before the load starts
    password = secrets.token_urlsafe(12)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    env = dict(item.split("=", 1) for item in args.server_env)
    load_before = os.getloadavg()
    boot = time.perf_counter()
    server = start_server(args.app_root.resolve(), corpus, index, port, password, env, log_path)
    try:
        wait_until_up(url, server, args.startup_timeout, log_path)
        up = time.perf_counter() - boot
        generations = Generations(index)
        warm = make_client(url, args.driver)
        ask_once(warm, args.endpoint, questions[0], generations, Result())  # loads the model
        ready = time.perf_counter() - boot

        single = Result()
        for i in range(args.single):
            ask_once(warm, args.endpoint, questions[i % len(questions)], generations, single)

        clients = [make_client(url, args.driver) for _ in range(args.clients)]
        load = Result()
        events: list[str] = []
        deadline = time.monotonic() + args.duration
        started = time.perf_counter()
        server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()

        window: list[float] = []  # the rebuild's start and end
        rebuilt = threading.Event()

        def asking(i: int) -> bool:
            """Whether a session asks its i-th question: --questions of them; with --rebuild, also until
            --after-rebuild seconds after the rebuild."""
            if time.monotonic() > deadline:
                return False
            if i < args.questions or not args.rebuild:
                return i < args.questions
            return not rebuilt.is_set() or time.perf_counter() - window[-1] < args.after_rebuild

        def session(number: int) -> None:
            pauses = random.Random(number)
            i = 0
            while asking(i):
                if i and args.think:
                    time.sleep(pauses.uniform(0, 2 * args.think))
                question = questions[(number * args.questions + i) % len(questions)]
                ask_once(clients[number], args.endpoint, question, generations, load)
                i += 1

        threads = [threading.Thread(target=session, args=(n,), daemon=True) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        rebuilder = None
        if args.rebuild:
            time.sleep(min(args.rebuild_after, args.duration / 4))

            def rebuild() -> None:
                try:
                    rebuild_over_http(url, password, extra, events, started, window)
                finally:
                    window.append(time.perf_counter())  # also when it failed: the sessions stop in time
                    rebuilt.set()

            rebuilder = threading.Thread(target=rebuild)
            rebuilder.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 120)
        wall = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
        if rebuilder is not None:
            rebuilder.join(timeout=600)
        if args.rebuild and args.endpoint == "chat":  # the new articles are answered from the new generation
            after = Result()
            for question in NEW_QUESTIONS:
                ask_once(warm, args.endpoint, question, generations, after)
            events.append(
                f"after the rebuild: {after.answered}/{len(NEW_QUESTIONS)} questions about the new "
                f"articles answered with citations, from {sorted(after.generations)}; "
                f"bad citations {len(after.bad_citations)}; errors {len(after.errors)}"
            )
            load.bad_citations += after.bad_citations
            load.errors += after.errors
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if args.keep:
            print(f"kept {work}")
        else:  # also when the server did not start
            shutil.rmtree(work, ignore_errors=True)
    during, quiet = split_by_window(load, window)
    figures = {
        "app": str(args.app_root),
        "index": args.index or "sample corpus copy",
        "endpoint": args.endpoint,
        "driver": args.driver,
        "clients": args.clients,
        "think_s": args.think,
        "questions_per_client": args.questions,
        "duration_limit_s": args.duration,
        "server_env": env,
        "startup_s": round(up, 1),
        "first_answer_s": round(ready, 1),
        "single_requests": len(single.latencies),
        "single_errors": len(single.errors),
        "single_p50_ms": percentile(single.latencies, 50),
        "single_p95_ms": percentile(single.latencies, 95),
        "requests": len(load.latencies) + len(load.errors),
        "errors": len(load.errors),
        "wall_s": round(wall, 1),
        "throughput_rps": round(len(load.latencies) / wall, 2),
        "p50_ms": percentile(load.latencies, 50),
        "p95_ms": percentile(load.latencies, 95),
        "max_ms": round(max(load.latencies) * 1000) if load.latencies else None,
        "p95_over_single_p95": round(percentile(load.latencies, 95) / percentile(single.latencies, 95), 2)
        if load.latencies and single.latencies
        else None,
        "rebuild_s": round(window[1] - window[0], 1) if len(window) >= 2 else None,
        "quiet_requests": len(quiet),
        "quiet_p50_ms": percentile(quiet, 50),
        "quiet_p95_ms": percentile(quiet, 95),
        "rebuild_requests": len(during),
        "rebuild_p50_ms": percentile(during, 50),
        "rebuild_p95_ms": percentile(during, 95),
        "rebuild_max_ms": round(max(during) * 1000) if during else None,
        "rebuild_over_quiet_p95": round(percentile(during, 95) / percentile(quiet, 95), 2)
        if during and quiet
        else None,
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(load.latencies))),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, len(load.latencies))),
        "answers_with_citations": load.answered,
        "citations_checked": load.citations,
        "bad_citations": len(load.bad_citations),
        "answers_per_generation": load.generations,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    for line in events:
        print("rebuild:", line)
    for line in (load.errors + single.errors)[:10]:
        print("error:", line)
    for line in load.bad_citations[:10]:
        print("bad citation:", line)
    return 1 if load.errors or single.errors or load.bad_citations else 0


if __name__ == "__main__":
    sys.exit(main())
