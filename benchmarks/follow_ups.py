"""Questions asked one after another in one chat: does the conversation help or hurt?

Usage: python benchmarks/follow_ups.py --index /tmp/idx_int8
Asks the 110 development questions of ../shared/eval/realtimeqa/dev.jsonl in order in one conversation (each
with all the earlier ones as its history), as the web chat does, and alone, and prints answer in quote and
abstentions for each, with and without each question's asked-on date. Two ways of answering a question that
reads as a follow-up are compared: with the conversation only (qa.answer.FOLLOW_UP_MARGIN set out of reach),
and the shipped one (also asked alone, the better supported answer given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_int8")
    args = parser.parse_args()
    if not (EVAL / "dev.jsonl").exists():
        sys.exit(f"evaluation set not found at {EVAL}")
    import qa.answer
    from qa.embedders import make_embedder
    from qa.evaluate import quotes_contain, read_questions
    from qa.store import load_generation

    generation = load_generation(args.index)
    embedder = make_embedder(index_dir=args.index)
    questions = read_questions(EVAL / "dev.jsonl")
    shipped = qa.answer.FOLLOW_UP_MARGIN
    print("| reading | dates | answer in quote | abstained |")
    print("|---|---|---|---|")
    for label, chat, margin in (
        ("alone", False, shipped),
        ("in one chat, conversation only", True, 1e9),
        ("in one chat, shipped", True, shipped),
    ):
        qa.answer.FOLLOW_UP_MARGIN = margin
        for dated in (True, False):
            history: list[str] = []
            found = counted = abstained = 0
            for q in questions:
                answer = qa.answer.ask(
                    generation,
                    embedder,
                    q.question,
                    history=tuple(history) if chat else (),
                    asked_on=q.question_date if dated else None,
                )
                history.append(q.question)
                abstained += answer.abstained
                if q.answer_in_gold_article and q.answer_text:
                    counted += 1
                    found += not answer.abstained and quotes_contain(answer, q.answer_text)
            print(
                f"| {label} | {'yes' if dated else 'no'} | {found / counted:.3f} | {abstained}/{len(questions)} |",
                flush=True,
            )
    qa.answer.FOLLOW_UP_MARGIN = shipped


if __name__ == "__main__":
    main()
