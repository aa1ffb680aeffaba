"""Instruction lines planted in every article: is any of them quoted instead of the answer? (real model)

Usage: python benchmarks/injection_probe.py
Builds the sample corpus in a temporary folder twice, with the injected lines of tests/test_hostile.py and
with a line that repeats a question's own words, planted the same way, asks the five example questions,
and prints per question whether the answer quotes the fact and whether it quotes (part of) an injected line.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from qa.build import build_index
    from qa.embedders import make_embedder
    from qa.service import ChatService
    from tests.test_hostile import ECHO, INJECTED_QUESTIONS, INJECTIONS, plant_injections
    from tests.webapp import sample_corpus_copy

    embedder = make_embedder()  # what a new index gets here
    quoted_injection = 0
    for label, lines in (("generic", INJECTIONS), ("echoing the question", [ECHO])):
        work = Path(tempfile.mkdtemp(prefix="qa-injection-"))
        corpus = plant_injections(sample_corpus_copy(work / "corpus"), lines)
        build_index(corpus, work / "index", embedder)
        service = ChatService(corpus, work / "index", embedder)
        print(f"injected lines: {label}")
        for question, fact in INJECTED_QUESTIONS.items():
            answer, _ = service.ask(question)
            quotes = " ".join(c.quote for c in answer.citations)
            injected = any(part.strip(". ") in quotes for line in lines for part in line.split(". "))
            quoted_injection += injected
            print(
                f"  fact quoted: {'yes' if fact in quotes else 'NO '}  injection quoted: "
                f"{'YES' if injected else 'no '}  {question}"
            )
        shutil.rmtree(work, ignore_errors=True)
    return 1 if quoted_injection else 0


if __name__ == "__main__":
    sys.exit(main())
