"""Which signals tell the answering sentence, and the answerable question: measured one by one (issue 11).

Usage: python benchmarks/reader_signals.py --index /tmp/idx [--cache F] [--seeds 5]

Reads the development questions of fit_reader.py through its `gather` (every sentence of the top five passages,
with the product's features; `--cache` is the same pickle as fit_reader's). Adds, for every candidate, three
signals of the bundled model that the product does not compute, because they need the token vectors of the
retrieved passages (about 60 ms a passage on one core here) or a second vector per sentence in the index:

- `maxsim_passage`: each content word piece of the question against the sentence's word pieces as the model
  reads them inside their passage, the best cosine each, averaged (ColBERT's late interaction, this model as is);
- `maxsim_alone`: the same with the sentence read alone, as the reader's shortlist embedding call reads it;
- `late_cosine`: the question's vector against the sentence's word pieces in their passage, mean-pooled (a
  "late chunking" sentence vector, which a build could store from the passages' own forward pass).

Then prints (1) the share of answerable questions whose answer is in the sentence each signal ranks first, over
all candidates; (2) the same for fitted rankers, as the mean and spread over `--seeds` draws of 5-fold
cross-validation by question: a pairwise logistic model and the shipped listwise (conditional) logit, each
with these signals added; (3) how well question-level signals of the out-of-fold readings tell the answerable
questions from the unanswerable ones (ROC AUC per set; 0.5 is chance, under 0.5 the wrong way round).
Licensed data is read from ../shared at run time; nothing of it is written into the repository.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_reader import Item, fit_listwise, fit_ranker, folds_of, gather  # noqa: E402

from qa.embedders import make_embedder  # noqa: E402
from qa.keyword import tokenize  # noqa: E402
from qa.reader import CHEAP, FEATURES, feature_rows  # noqa: E402
from qa.store import load_generation  # noqa: E402

SETS = ("natural", "realtimeqa")
ADDED = ("maxsim_passage", "maxsim_alone", "late_cosine")


class TokenReader:
    """The int8 embedder's word-piece vectors of a text, with their character offsets."""

    def __init__(self, embedder):
        if not hasattr(embedder, "session"):
            sys.exit("this benchmark reads word-piece vectors from the int8 embedder: use an int8 index")
        self.embedder = embedder
        self.names = {node.name for node in embedder.session.get_inputs()}
        self.known: dict[str, tuple[list, np.ndarray]] = {}

    def read(self, text: str) -> tuple[list[tuple[int, int]], np.ndarray]:
        if text not in self.known:
            if len(self.known) > 4000:
                self.known.clear()
            encoding = self.embedder.tokenizer.encode(text)
            ids = np.array([encoding.ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            vectors = self.embedder.session.run(None, {n: feed[n] for n in self.names})[0][0]
            self.known[text] = (encoding.offsets, vectors)
        return self.known[text]


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def add_token_signals(items: list[Item], generation, tokens: TokenReader) -> None:
    """The three signals above on every candidate, and each one's gap to the best of its question."""
    for item in items:
        question = item.question.question
        offsets, vectors = tokens.read(question)
        pieces = unit(vectors[1:-1])
        vector = unit(vectors.mean(axis=0))
        # a word piece counts when its word is a term (not a stop word): "how", "did", "the" match anything
        content = np.array([_is_term(question, start) for start, _ in offsets[1:-1]], dtype=bool)
        asked = pieces[content] if content.any() else pieces
        hits = {hit.rank: hit for hit in item.hits}
        for candidate in item.pool:
            hit = hits[candidate.rank]
            passage_offsets, passage_vectors = tokens.read(generation.article(hit.doc_id).text[hit.start : hit.end])
            first = candidate.sentence_start - hit.start
            last = first + len(candidate.sentence)
            inside = [i for i, (a, b) in enumerate(passage_offsets) if b > a and a >= first and b <= last]
            _, alone = tokens.read(candidate.sentence)
            alone_pieces = unit(alone[1:-1]) if len(alone) > 2 else unit(alone)
            features = candidate.features
            features["maxsim_alone"] = float((asked @ alone_pieces.T).max(axis=1).mean())
            if inside:  # a sentence past the model's 256 word pieces is not read in its passage
                in_passage = passage_vectors[inside]
                features["maxsim_passage"] = float((asked @ unit(in_passage).T).max(axis=1).mean())
                features["late_cosine"] = float(unit(in_passage.mean(axis=0)) @ vector)
            else:
                features["maxsim_passage"] = features["maxsim_alone"]
                features["late_cosine"] = features["cosine"]
        for name in ADDED:
            best = max((c.features[name] for c in item.pool), default=0.0)
            for candidate in item.pool:
                candidate.features[f"{name}_gap"] = candidate.features[name] - best


def _is_term(text: str, start: int) -> bool:
    word = next((w.group() for w in re.finditer(r"\w+", text) if w.start() <= start < w.end()), "")
    return bool(tokenize(word))


def top_share(items: list[Item], score) -> dict[str, float]:
    """Per set: the share of answerable questions (answer in the gold article) whose first-ranked candidate
    holds the answer; a question with no candidate holding it counts as a miss."""
    result = {}
    for dataset in SETS:
        marks = []
        for item in items:
            if item.dataset != dataset or not item.labelled:
                continue
            marks.append(bool(item.pool) and bool(item.labels[int(np.argmax(score(item)))]))
        result[dataset] = float(np.mean(marks))
    return result


def cross_validated(items: list[Item], features: list[str], listwise: bool, seeds: int, shortlist: int = 6):
    """Mean and spread over seeds of the top-sentence share, each fold's models fitted on the other four. As in
    the product, the full model ranks only the `shortlist` candidates a cheap model (no cosines) puts first."""
    draws = []
    for seed in range(seeds):
        assignment = folds_of(items, 5, seed=11 + seed)
        picked: dict[int, float] = {}
        for fold in range(5):
            train = [it for it, f in zip(items, assignment, strict=True) if f != fold and it.labelled and it.pool]
            labels = [it.labels for it in train]
            cheap = fit_ranker([feature_rows(it.pool, CHEAP) for it in train], labels, CHEAP)
            if listwise:
                full = fit_listwise([feature_rows(it.pool, features) for it in train], labels, features).logit
            else:
                full = fit_ranker([feature_rows(it.pool, features) for it in train], labels, features).logit
            for i, item in enumerate(items):
                if assignment[i] != fold or not item.labelled:
                    continue
                if not item.pool:
                    picked[i] = 0.0
                    continue
                listed = np.argsort(-cheap.logit(feature_rows(item.pool, CHEAP)), kind="stable")[:shortlist]
                best = listed[int(np.argmax(full(feature_rows([item.pool[j] for j in listed], features))))]
                picked[i] = float(item.labels[best])
        draws.append([np.mean([v for i, v in picked.items() if items[i].dataset == d]) for d in SETS])
    draws = np.array(draws)
    return draws.mean(axis=0), draws.std(axis=0)


def answerability_aucs(items: list[Item], generation, model_id: str) -> dict[str, dict[str, float]]:
    """ROC AUC of question-level signals of the out-of-fold readings (answerable = 1), per set."""
    from fit_reader import cross_validate
    from sklearn.metrics import roc_auc_score

    readings, _ = cross_validate(generation, items, 5, 6, 5, model_id)
    signals: dict[str, dict[str, list]] = {}
    for item, reading in zip(items, readings, strict=True):
        if not reading.candidates:
            continue
        ranked = reading.candidates
        top = ranked[0]
        pool = {c.sentence_start: c for c in item.pool}
        values = {
            "answerability (shipped model)": reading.answerable,
            "best sentence score (sentence model)": max(c.evidence for c in ranked),
            "best sentence score (order model)": top.score,
            "best cosine of the shortlist": max(c.features["cosine"] for c in ranked),
            "date agreement": top.features["date"],
            "passage cosine (top passage)": top.features["dense"],
            "margin to the second sentence": top.score - (ranked[1].score if len(ranked) > 1 else top.score),
            "coverage, best of all candidates": max(c.features["coverage"] for c in item.pool),
            "kind asked for, in the best sentence": top.features["kind_match"],
            "maxsim_alone, best sentence": pool[top.sentence_start].features["maxsim_alone"],
            "maxsim_passage, best of all candidates": max(c.features["maxsim_passage"] for c in item.pool),
        }
        for name, value in values.items():
            signals.setdefault(name, {d: [] for d in SETS})[item.dataset].append((item.answerable, value))
    aucs = {}
    for name, by_set in signals.items():
        aucs[name] = {d: float(roc_auc_score(*zip(*pairs, strict=True))) for d, pairs in by_set.items()}
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--cache", help="fit_reader.py's pickle of the gathered features (outside the repo)")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    generation = load_generation(args.index)
    if args.cache and Path(args.cache).exists():
        items = pickle.loads(Path(args.cache).read_bytes())
    else:
        items, _ = gather(Path(args.index), 5)
        if args.cache:
            Path(args.cache).write_bytes(pickle.dumps(items))
    add_token_signals(items, generation, TokenReader(make_embedder(index_dir=args.index)))
    print(f"{len(items)} questions, signals added in {time.perf_counter() - started:.0f} s\n")

    print("answer in the sentence ranked first by one signal, all candidates | natural | RealTime QA")
    for name in ("coverage", "cosine", *ADDED):
        share = top_share(items, lambda item, n=name: np.array([c.features[n] for c in item.pool]))
        print(f"  {name:40s} | {share['natural']:.3f} | {share['realtimeqa']:.3f}")

    print(f"\nanswer in the sentence ranked first by a fitted model ({args.seeds} x 5-fold, mean ± spread)")
    base = list(FEATURES)
    variants = {
        "shipped features": base,
        "+ maxsim_alone": [*base, "maxsim_alone", "maxsim_alone_gap"],
        "+ maxsim_passage": [*base, "maxsim_passage", "maxsim_passage_gap"],
        "+ late_cosine": [*base, "late_cosine", "late_cosine_gap"],
        "late_cosine instead of cosine": [f for f in base if "cosine" not in f] + ["late_cosine", "late_cosine_gap"],
        "no cosine at all": [f for f in base if "cosine" not in f],
    }
    for listwise in (False, True):
        for name, features in variants.items():
            mean, spread = cross_validated(items, features, listwise, args.seeds)
            kind = "listwise" if listwise else "pairwise"
            print(
                f"  {kind} {name:32s} | natural {mean[0]:.3f} ± {spread[0]:.3f} | RealTime QA {mean[1]:.3f} ± "
                f"{spread[1]:.3f} | sum {mean.sum():.3f}"
            )

    print("\ntelling answerable from unanswerable questions: ROC AUC | natural | RealTime QA")
    model_id = generation.model_id.removesuffix("-int8")
    for name, by_set in answerability_aucs(items, generation, model_id).items():
        print(f"  {name:40s} | {by_set['natural']:.3f} | {by_set['realtimeqa']:.3f}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
