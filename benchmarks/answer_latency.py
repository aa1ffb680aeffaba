"""Latency of one question end to end (retrieval, fusion, answer composition, quote verification), in-process
and through the web app's HTTP interface, side by side.

Usage: python benchmarks/answer_latency.py --index /tmp/idx_int8 [--repeat 1] [--no-http]
Asks the 110 development questions of ../shared/eval/realtimeqa/dev.jsonl one at a time after a warm-up of
10, with the embedder the index was built with and the place names loaded first (as the web app's warm-up
does), and prints p50/p95/max in milliseconds plus load times.
In-process it is timed twice: with each question's asked-on date (as `qa eval` does) and without (as the
web chat asks). Then, unless --no-http, it starts app.py on a free loopback port and asks the same questions
over HTTP (`/gradio_api/call/ask`, one client, one question at a time), and prints the overhead of the web
app over in-process answers without dates.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa"


def summary(values: list[float]) -> str:
    array = np.array(values)
    return f"p50 {np.percentile(array, 50):.1f}, p95 {np.percentile(array, 95):.1f}, max {array.max():.1f}"


def over_http(index: str, questions: list[str]) -> list[float]:
    from served import ask, served_app

    with served_app(index) as (http, _, _):
        for question in questions[:10]:
            ask(http, question)
        latencies = []
        for question in questions:
            started = time.perf_counter()
            ask(http, question)
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_int8")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    if not (EVAL / "dev.jsonl").exists():
        sys.exit(f"evaluation set not found at {EVAL}")
    started = time.perf_counter()
    from qa.answer import ask
    from qa.embedders import make_embedder
    from qa.evaluate import read_questions
    from qa.places import load_places
    from qa.store import load_generation

    imported = time.perf_counter()
    generation = load_generation(args.index)
    loaded = time.perf_counter()
    embedder = make_embedder(index_dir=args.index)
    embedder.embed(["warm up"])
    warmed = time.perf_counter()
    load_places()  # the web app loads them while it starts (`ChatService.warm_up`), not at a question
    placed = time.perf_counter()
    questions = read_questions(EVAL / "dev.jsonl")
    for q in questions[:10]:
        ask(generation, embedder, q.question, asked_on=q.question_date)
    dated, undated = [], []
    for _ in range(args.repeat):
        for q in questions:
            for asked_on, into in ((q.question_date, dated), (None, undated)):
                t = time.perf_counter()
                ask(generation, embedder, q.question, asked_on=asked_on)
                into.append((time.perf_counter() - t) * 1000)
    print(
        f"passages {generation.passage_count()}, questions {len(questions)} x {args.repeat}, "
        f"embedder {embedder.model_id}"
    )
    print(
        f"import {imported - started:.2f} s, index load {loaded - imported:.2f} s, model load {warmed - loaded:.2f} s, "
        f"place names {placed - warmed:.2f} s"
    )
    print(f"in-process, asked-on dates: {summary(dated)} ms")
    print(f"in-process, no dates:       {summary(undated)} ms")
    if args.no_http:
        return
    http = over_http(args.index, [q.question for q in questions] * args.repeat)
    print(f"HTTP /gradio_api/call/ask:  {summary(http)} ms")
    print(
        f"web app overhead (median HTTP - median in-process, no dates): "
        f"{np.percentile(http, 50) - np.percentile(undated, 50):.1f} ms"
    )


if __name__ == "__main__":
    main()
