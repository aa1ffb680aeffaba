"""The web app as the benchmarks drive it: app.py on a free loopback port, asked over its HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.webapp import free_port  # noqa: E402 (after the path is set)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def served_app(index: str | Path, corpus: str | Path | None = None) -> Iterator[tuple]:
    """Start app.py over `index` and wait for its page: yields (httpx client, server process, seconds to page)."""
    import httpx

    port = free_port()
    command = [sys.executable, "app.py", "--index", str(index), "--port", str(port)]
    if corpus is not None:
        command += ["--corpus", str(corpus)]
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            while True:
                if server.poll() is not None:
                    sys.exit(f"app.py exited with {server.returncode}: {server.stderr.read()[-2000:]}")
                try:
                    if http.get("/").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            yield http, server, time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)


def ask(http, question: str) -> dict:
    """One question through `/gradio_api/call/ask`, as a script would; the answer's JSON."""
    event = http.post("/gradio_api/call/ask", json={"data": [question, None]})
    stream = http.get(f"/gradio_api/call/ask/{event.json()['event_id']}").text
    if "event: complete" not in stream:
        sys.exit(f"{question!r} failed: {stream[:500]}")
    return json.loads(stream.split("data: ", 1)[1].split("\n", 1)[0])[0]
