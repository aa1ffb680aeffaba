"""Does int8 cost retrieval quality? Article-level dense Hits@1/5/10 and MRR@10, fp32 versus int8 embeddings.

Usage: python benchmarks/embed_quality.py --index /tmp/idx_eval [--int8-vectors /tmp/int8_vectors.npy]
The index must be an fp32 build of ../shared/eval/realtimeqa/corpus.jsonl.gz (`python -m qa build`); its
vectors are the fp32 side. Every one of its passages is embedded again with the int8 embedder (about 50
minutes on two cores; kept in --int8-vectors, so a rerun takes seconds), and the 110 questions of
dev.jsonl are searched by exact inner product over all passages, with questions embedded by either model.
Passages rank articles: the ranked list of distinct doc_ids, scored by the rank of the first gold article.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "realtimeqa"
DEPTH = 10


def passage_texts(generation) -> list[str]:
    """What the build embedded for each passage, checked against the hash it stored."""
    from qa.chunk import embed_text

    texts = []
    for stored in generation.passages:
        article = generation.article(stored.doc_id)
        text = embed_text(article.title, article.text[stored.start : stored.end])
        if hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest() != stored.embed_hash:
            sys.exit(f"passage {stored.passage_id}: text does not match its stored hash; is the index current?")
        texts.append(text)
    return texts


def int8_vectors(embedder, texts: list[str], cache: Path) -> np.ndarray:
    """The int8 vectors of `texts`, from `cache` when it holds exactly these texts for this model."""
    key = hashlib.sha256(json.dumps([embedder.model_id, texts]).encode("utf-8", "surrogatepass")).hexdigest()
    stamp = cache.with_suffix(".json")
    if cache.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        print(f"int8 passage vectors from {cache}")
        return np.load(cache)
    embedder.embed(["warm up"])  # makes the int8 model first if this machine has none: not part of the rate
    started = time.perf_counter()
    vectors = embedder.embed(texts, progress=True)
    seconds = time.perf_counter() - started
    print(f"int8 embedded {len(texts)} passages in {seconds:.0f} s ({len(texts) / seconds:.1f} passages/s)")
    np.save(cache, vectors)
    stamp.write_text(json.dumps({"key": key, "model": embedder.model_id, "passages": len(texts), "seconds": seconds}))
    return vectors


def article_ranks(scores: np.ndarray, passage_doc: np.ndarray, gold: list[set[str]]) -> list[int | None]:
    """Per question, the 1-based rank of its first gold article among distinct articles (None past DEPTH)."""
    ranks: list[int | None] = []
    for row, wanted in zip(scores, gold, strict=True):
        seen: list[str] = []
        rank = None
        for passage in np.argsort(-row, kind="stable"):
            doc_id = passage_doc[passage]
            if doc_id in seen:
                continue
            seen.append(doc_id)
            if doc_id in wanted:
                rank = len(seen)
                break
            if len(seen) == DEPTH:
                break
        ranks.append(rank)
    return ranks


def summary(ranks: list[int | None]) -> dict[str, float]:
    found = [r for r in ranks if r is not None]
    return {
        "Hits@1": 100 * sum(r <= 1 for r in found) / len(ranks),
        "Hits@5": 100 * sum(r <= 5 for r in found) / len(ranks),
        "Hits@10": 100 * sum(r <= 10 for r in found) / len(ranks),
        "MRR@10": sum(1 / r for r in found) / len(ranks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/tmp/idx_eval")
    parser.add_argument("--int8-vectors", type=Path, default=Path("/tmp/int8_vectors.npy"))
    args = parser.parse_args()
    if not (EVAL / "dev.jsonl").exists():
        sys.exit(f"evaluation set not found at {EVAL} (it lives outside the repository); nothing to measure")

    from qa.embed import SentenceTransformerEmbedder
    from qa.embed_onnx import OnnxInt8Embedder
    from qa.evaluate import read_questions
    from qa.store import load_generation

    generation = load_generation(args.index)
    fp32 = SentenceTransformerEmbedder()
    int8 = OnnxInt8Embedder()
    if generation.model_id != fp32.model_id:
        sys.exit(f"{args.index} was built with {generation.model_id}, not the fp32 model {fp32.model_id}")
    questions = read_questions(EVAL / "dev.jsonl")
    gold = [set(q.gold_doc_ids) for q in questions]
    passage_doc = np.array([p.doc_id for p in generation.passages])
    texts = passage_texts(generation)

    passages = {"fp32": generation.vectors.reconstruct_n(0, generation.vectors.ntotal)}
    check = fp32.embed(texts[:16])  # the stored vectors are what this fp32 model gives for these texts
    print(f"stored vs re-embedded fp32 cosine (16 passages): min {(check * passages['fp32'][:16]).sum(1).min():.5f}")
    passages["int8"] = int8_vectors(int8, texts, args.int8_vectors)
    agreement = (passages["fp32"] * passages["int8"]).sum(axis=1)
    print(f"passages {len(texts)}, articles {len(set(passage_doc))}, questions {len(questions)}")
    print(
        f"cosine int8 vs fp32 over all passages: mean {agreement.mean():.4f}, "
        f"1st percentile {np.percentile(agreement, 1):.4f}, min {agreement.min():.4f}"
    )

    asked = [q.question for q in questions]
    queries = {"fp32": fp32.embed(asked), "int8": int8.embed(asked)}
    print("| passages | questions | Hits@1 | Hits@5 | Hits@10 | MRR@10 |")
    print("|---|---|---|---|---|---|")
    for passage_model, question_model in (("fp32", "fp32"), ("int8", "int8"), ("int8", "fp32"), ("fp32", "int8")):
        scores = queries[question_model] @ passages[passage_model].T
        row = summary(article_ranks(scores, passage_doc, gold))
        print(
            f"| {passage_model} | {question_model} | {row['Hits@1']:.1f} | {row['Hits@5']:.1f} | "
            f"{row['Hits@10']:.1f} | {row['MRR@10']:.3f} |"
        )


if __name__ == "__main__":
    main()
