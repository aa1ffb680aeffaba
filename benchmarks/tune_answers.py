"""Compare retrieval and answer settings on the development sets, side by side, with one loaded index.

Usage: python benchmarks/tune_answers.py --index /tmp/idx_eval [--variants baseline|fusion|dates|answers|all]
Reads ../shared/eval/realtimeqa/{dev,dev_later_year}.jsonl (licensed: never copied into the repo).
Prints one row per retrieval variant. The reader (which sentence answers, when to abstain) is fitted and
cross-validated by benchmarks/fit_reader.py.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.answer import AnswerSettings, ask_many  # noqa: E402
from qa.embed import RememberingEmbedder, SentenceTransformerEmbedder  # noqa: E402
from qa.evaluate import read_questions, score  # noqa: E402
from qa.retrieve import RetrievalSettings  # noqa: E402
from qa.store import load_generation  # noqa: E402

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "realtimeqa"


def run(generation, embedder, questions, retrieval, answering):
    answers = ask_many(
        generation,
        embedder,
        [q.question for q in questions],
        10,
        None,
        [q.question_date for q in questions],
        retrieval,
        answering,
    )
    return answers, score(generation, questions, answers)


def variants(kind: str):
    base_r, base_a = RetrievalSettings(), AnswerSettings()
    table = {
        "baseline": [
            ("bm25 only", replace(base_r, fusion="keyword"), base_a),
            ("dense only", replace(base_r, fusion="dense"), base_a),
            ("rrf k=60", base_r, base_a),
        ],
        "fusion": [
            (f"rrf k={k} kw={w}", replace(base_r, rrf_k=k, keyword_weight=w), base_a)
            for k in (10, 30, 60)
            for w in (0.5, 1.0, 1.5)
        ]
        + [(f"weighted kw={w}", replace(base_r, fusion="weighted", keyword_weight=w), base_a) for w in (0.2, 0.4)]
        + [(f"per_article={n}", replace(base_r, per_article=n), base_a) for n in (1, 3)],
        "dates": [
            (f"date_weight={w} default_days={d}", replace(base_r, date_weight=w, default_days=d), base_a)
            for w in (0.0, 0.25, 0.5, 1.0)
            for d in (8, 15)
        ]
        + [(f"future_penalty={p}", replace(base_r, date_weight=0.5, future_penalty=p), base_a) for p in (0.5, 0.9)],
    }
    if kind == "none":
        return []
    if kind == "all":
        return [v for rows in table.values() for v in rows]
    return table[kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_eval")
    parser.add_argument("--variants", default="baseline")
    args = parser.parse_args()
    if not (EVAL / "dev.jsonl").exists():
        sys.exit(f"evaluation set not found at {EVAL}")
    generation = load_generation(args.index)
    embedder = RememberingEmbedder(SentenceTransformerEmbedder())  # each question embedded once for all variants
    dev = read_questions(EVAL / "dev.jsonl")
    later = read_questions(EVAL / "dev_later_year.jsonl")
    keys = ("hits@1", "hits@5", "hits@10", "mrr@10", "answer_in_quote", "abstained_answerable")
    print("| variant | " + " | ".join(keys) + " | wrong_later_year |")
    print("|---" * (len(keys) + 2) + "|")
    for name, retrieval, answering in variants(args.variants):
        dev_answers, metrics = run(generation, embedder, dev, retrieval, answering)
        later_answers, later_metrics = run(generation, embedder, later, retrieval, answering)
        cells = [str(metrics.get(k, "")) for k in keys] + [str(later_metrics.get("wrong_unanswerable", ""))]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
