"""Cold start of the web chat: from `python app.py` to the page and to the first answer, with a built index.

Usage: python benchmarks/cold_start.py --index /tmp/idx_int8 [--corpus DIR] [--runs 3] [--question "..."]
Starts app.py on a free loopback port for each run, polls the page until it is served, then asks one question
through the HTTP API (`/gradio_api/call/ask`, as a script would) and stops the server. Prints, per run and as
a median: seconds to the page, seconds to the first answer, and the server's peak resident memory (VmHWM).
Also prints what a bare import of gradio costs in a fresh process, the part of the start the app cannot cut.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from served import ask, peak_rss_mib, served_app

ROOT = Path(__file__).resolve().parent.parent


def one_run(index: str, corpus: str, question: str) -> tuple[float, float, float]:
    started = time.perf_counter()
    with served_app(index, corpus) as (http, server, page):
        answer = ask(http, question)
        answered = time.perf_counter() - started
        if not answer.get("answer"):
            sys.exit(f"no answer in {answer}")
        return page, answered, peak_rss_mib(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_int8")
    parser.add_argument("--corpus", default=str(ROOT / "corpus"), help="only read when the index is missing")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--question", default="Who did Ishaq Dar speak with by phone?")
    args = parser.parse_args()
    if not (Path(args.index) / "CURRENT").is_file():
        sys.exit(f"{args.index} holds no built index; build it first (python -m qa build --index {args.index})")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    print(f"bare `import gradio` in a fresh process: {time.perf_counter() - started:.1f} s")
    runs = [one_run(args.index, args.corpus, args.question) for _ in range(args.runs)]
    for number, (page, answered, rss) in enumerate(runs, start=1):
        print(f"run {number}: page {page:.1f} s, first answer {answered:.1f} s, peak RSS {rss:.0f} MiB")
    print(
        f"median: page {statistics.median(r[0] for r in runs):.1f} s, first answer "
        f"{statistics.median(r[1] for r in runs):.1f} s, peak RSS {statistics.median(r[2] for r in runs):.0f} MiB"
    )


if __name__ == "__main__":
    main()
