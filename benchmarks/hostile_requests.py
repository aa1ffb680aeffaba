"""What oversized requests and big uploads cost the web app: the figures of issue 14 in docs/reliability.md.

Usage: python benchmarks/hostile_requests.py

Launches the app in this process (fake embedder, the tests' small news corpus, no admin password) and sends,
over loopback HTTP, each request below twice: its HTTP status and the seconds until the answer (the second
of the two). Then three concurrent uploads of 19 files of 5 MiB each, and the growth of this process's
resident memory (VmRSS) they leave behind.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import FakeEmbedder  # noqa: E402 (after the path is set)
from tests.test_web import news_corpus  # noqa: E402
from tests.webapp import running_app  # noqa: E402

TINY = {"role": "user", "content": [{"type": "text", "text": "x"}]}
REQUESTS = {
    "a question": ("ask", ["How many homes lost power?", None]),
    "10 MB history": ("ask", ["and him?", ["ferry fare adult Gull Island " * 360_000]]),
    "1 MB history": ("ask", ["and him?", ["ferry fare adult " * 58_000]]),
    "200,000 history turns": ("ask", ["and him?", ["a"] * 200_000]),
    "200,000 chat messages": ("chat", ["and him?", [TINY] * 200_000]),
    "12,000 chat messages (1 MB)": ("chat", ["and him?", [TINY] * 12_000]),
    "64 chat messages of 15 KB": (
        "chat",
        ["and him?", [{**TINY, "content": [{"type": "text", "text": "ferry " * 2_500}]}] * 64],
    ),
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(http: httpx.Client, endpoint: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        sent = http.post(f"/gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"})
    except httpx.HTTPError:
        return 0, time.perf_counter() - started
    if sent.status_code == 200:
        http.get(f"/gradio_api/call/{endpoint}/{sent.json()['event_id']}")
    return sent.status_code, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        with running_app(news_corpus(root / "corpus"), root / "index", FakeEmbedder()) as app:
            with httpx.Client(base_url=app.url, timeout=300) as http:
                print(f"{'request':30} {'status':>6} {'seconds':>8}")
                for name, (endpoint, data) in REQUESTS.items():
                    body = json.dumps({"data": data}).encode()  # made before the clock starts
                    timed(http, endpoint, body)
                    status, seconds = timed(http, endpoint, body)
                    print(f"{name:30} {status:>6} {seconds:>8.3f}")
            body = b"Harbour news\n" + b"The harbour reopened on Monday. " * (5 * 1024 * 1024 // 33)
            files = [("files", (f"a{i}.txt", body, "text/plain")) for i in range(19)]
            before = rss_mib()

            def upload() -> None:
                with httpx.Client(timeout=300) as http:
                    http.post(app.url + "/gradio_api/upload", files=files)

            uploads = [threading.Thread(target=upload) for _ in range(3)]
            for thread in uploads:
                thread.start()
            for thread in uploads:
                thread.join()
            time.sleep(1)
            print(f"3 concurrent uploads of 19 x 5 MiB: resident memory {before:.0f} -> {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
