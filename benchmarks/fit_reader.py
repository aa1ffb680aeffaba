"""Fit the reader on the development questions, report every figure by cross-validation, write the model.

Usage: python benchmarks/fit_reader.py --index /tmp/idx [--folds 5] [--write]

Reads ../shared/eval/natural/dev.jsonl and ../shared/eval/realtimeqa/{dev,dev_later_year}.jsonl (licensed:
never copied into the repo). Each question is retrieved once; every sentence of its top passages gets its
features (cosines for all of them, so that any shortlist can be tried). Then, per fold (questions split at
random within each set), the sentence, order and answerability models are fitted on the other folds and
the held-out questions are answered by the product's own `compose_answer`. The thresholds (answerability,
further quotes) and the shortlist size are chosen on these out-of-fold answers; `--write` refits on all
questions and writes qa/reader_model.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.answer import AnswerSettings, compose_answer, default_asked_on  # noqa: E402
from qa.embedders import make_embedder  # noqa: E402
from qa.evaluate import Question, contains, read_questions, score  # noqa: E402
from qa.reader import (  # noqa: E402
    ANSWERABILITY,
    CHEAP,
    FEATURES,
    MODEL_FILE,
    Logistic,
    ReaderModel,
    add_cosines,
    answerability_row,
    base_model_id,
    candidates_for,
    cosine_gaps,
    feature_rows,
    readable,
    score_candidates,
    shortlist,
)
from qa.retrieve import RetrievalSettings, make_query, retrieve_many  # noqa: E402
from qa.store import load_generation  # noqa: E402
from qa.timeframe import parse_date  # noqa: E402

SAMPLE_QUESTIONS = Path(__file__).resolve().parent.parent / "corpus" / "questions.jsonl"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SETS = {
    "natural": [SHARED / "natural" / "dev.jsonl"],
    "realtimeqa": [SHARED / "realtimeqa" / "dev.jsonl", SHARED / "realtimeqa" / "dev_later_year.jsonl"],
}
# Sentences embedded per question, compared: at most 5, the answer latency target's budget (p50 50 ms in-process;
# benchmarks/answer_latency.py --index /tmp/idx --no-http measured p50 55.7 to 57.6 ms with 6, 48.0 to 51.6 with 5)
SHORTLISTS = (4, 5)
ANSWERABLE_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
FURTHER_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def fit_logistic(rows: np.ndarray, labels: np.ndarray, names, weights=None, c: float = 1.0) -> Logistic:
    """scikit-learn's L2 logistic regression on standardised features, kept as plain numbers."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standard(rows)
    model = LogisticRegression(C=c, max_iter=2000).fit((rows - mean) / scale, labels, sample_weight=weights)
    return Logistic(
        tuple(names),
        tuple(mean.tolist()),
        tuple(scale.tolist()),
        tuple(model.coef_[0].tolist()),
        float(model.intercept_[0]),
    )


def fit_ranker(groups: list[np.ndarray], labels: list[np.ndarray], names, c: float = 1.0) -> Logistic:
    """Pairwise logistic regression (the cheap model that picks the shortlist, and the sentence model whose best
    score gives the answerability): within each question, each answering sentence against each other one, so
    that a score difference is the log-odds of answering better. Every pair weighs the same (measured against
    every question weighing the same: natural 0.388 vs 0.388, RealTime QA 0.482 vs 0.446 sentences right first,
    5-fold, all candidates). The listwise fit below shortlisted no better (5 draws, first sentence right with the
    order model: natural 0.328 / RealTime QA 0.541 against 0.328 / 0.569)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standard(np.vstack(groups))
    pairs = []
    for rows, positive in zip(groups, labels, strict=True):
        if positive.all() or not positive.any():
            continue
        z = (rows - mean) / scale
        diff = (z[positive][:, None, :] - z[~positive][None, :, :]).reshape(-1, z.shape[1])
        pairs.append(diff)
    x = np.vstack([*pairs, *(-p for p in pairs)])
    y = np.r_[np.ones(sum(len(p) for p in pairs)), np.zeros(sum(len(p) for p in pairs))]
    model = LogisticRegression(C=c, max_iter=2000, fit_intercept=False).fit(x, y)
    return Logistic(tuple(names), tuple(mean.tolist()), tuple(scale.tolist()), tuple(model.coef_[0].tolist()), 0.0)


def fit_listwise(groups: list[np.ndarray], labels: list[np.ndarray], names, strength: float = 3.0) -> Logistic:
    """Conditional (listwise) logit, the order model: per question, the softmax of the scores over its
    candidates, fitted to put the mass on the answering ones, with an L2 penalty `strength` on the standardised
    weights (3; 5 draws, shortlist 4, first sentence right natural / RealTime QA: 0.328 / 0.574 with 1, 0.330 /
    0.569 with 3, 0.310 / 0.579 with 10, 0.290 / 0.593 with 30); a score difference is the log-odds of one
    sentence being the answering one rather than the other.
    It puts the answering sentence first more often than the pairwise fit (5 fold draws, out of fold, shortlist
    5, natural / RealTime QA: 0.328 / 0.569 against 0.305 / 0.567), but its best score tells answerable questions
    from the others less well (ROC AUC 0.622 / 0.913 against 0.663 / 0.926), so the pairwise model does that.
    Written out (scipy's L-BFGS on the exact gradient) rather than taken from statsmodels' ConditionalLogit,
    which models which set of sentences answers given how many do (here: that one of them comes first), and
    would be a new dependency for a benchmark."""
    from scipy.optimize import minimize

    rows = np.vstack(groups)
    mean, scale = _standard(rows)
    kept = [((g - mean) / scale, y) for g, y in zip(groups, labels, strict=True) if y.any() and not y.all()]

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = 0.5 * strength * weights @ weights, strength * weights
        for z, y in kept:
            scores = z @ weights
            odds = np.exp(scores - scores.max())
            value -= np.log(odds[y].sum() / odds.sum())
            gradient = gradient - ((odds[y] / odds[y].sum()) @ z[y] - (odds / odds.sum()) @ z)
        return float(value), gradient

    weights = minimize(loss, np.zeros(rows.shape[1]), jac=True, method="L-BFGS-B").x
    return Logistic(tuple(names), tuple(mean.tolist()), tuple(scale.tolist()), tuple(weights.tolist()), 0.0)


def _standard(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


class Item:
    """One question, retrieved once, with every candidate's features and label."""

    def __init__(self, dataset: str, question: Question, query, hits, pool):
        self.dataset, self.question, self.query, self.hits, self.pool = dataset, question, query, hits, pool
        self.answerable = not question.unanswerable
        target = question.answer_text if question.answer_in_gold_article and not question.unanswerable else None
        self.labels = np.array([bool(target) and contains(c.text, target) for c in pool], dtype=bool)
        self.labelled = target is not None


def gather(index: Path, passages: int) -> tuple[list[Item], object]:
    generation = load_generation(index)
    embedder = make_embedder(index_dir=index)
    items = []
    for dataset, files in SETS.items():
        questions = [q for f in files for q in read_questions(f)]
        queries = [
            make_query(q.question, (), parse_date(q.question_date), RetrievalSettings(), dated=True) for q in questions
        ]
        ranked = retrieve_many(generation, embedder, queries, 10)
        pools = [
            candidates_for(generation, query, readable(hits, passages))
            for query, hits in zip(queries, ranked, strict=True)
        ]
        add_cosines(embedder, queries, pools)
        items += [Item(dataset, *row) for row in zip(questions, queries, ranked, pools, strict=True)]
    return items, generation


def folds_of(items: list[Item], folds: int, seed: int = 7) -> np.ndarray:
    """Questions split at random into folds within each set (the sets differ in kind)."""
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(items), dtype=int)
    for dataset in SETS:
        members = [i for i, item in enumerate(items) if item.dataset == dataset]
        for position, i in enumerate(rng.permutation(members)):
            assignment[i] = position % folds
    return assignment


def group_weights(items: list[Item]) -> np.ndarray:
    """Each (set, answerable or not) group weighs the same in the answerability fit."""
    keys = [(item.dataset, item.answerable) for item in items]
    counts = {k: keys.count(k) for k in set(keys)}
    return np.array([len(items) / (len(counts) * counts[k]) for k in keys])


def fit(items: list[Item], embed_top: int, passages: int, model_id: str) -> ReaderModel:
    labelled = [item for item in items if item.labelled and item.pool]
    labels = [item.labels for item in labelled]
    cheap = fit_ranker([feature_rows(item.pool, CHEAP) for item in labelled], labels, CHEAP)
    groups = [feature_rows(item.pool, FEATURES) for item in labelled]
    sentence = fit_ranker(groups, labels, FEATURES)
    order = fit_listwise(groups, labels, FEATURES)
    placeholder = Logistic(
        ANSWERABILITY, (0.0,) * len(ANSWERABILITY), (1.0,) * len(ANSWERABILITY), (0.0,) * len(ANSWERABILITY), 0.0
    )
    model = ReaderModel(model_id, cheap, sentence, placeholder, embed_top=embed_top, passages=passages, order=order)
    rows, targets, kept = [], [], []
    for item in items:
        reading = read(model, item)
        if reading.candidates:
            rows.append([answerability_row(reading.candidates)[f] for f in ANSWERABILITY])
            targets.append(item.answerable)
            kept.append(item)
    answerability = fit_logistic(np.array(rows), np.array(targets), ANSWERABILITY, group_weights(kept))
    return replace(model, answerability=answerability)


def read(model: ReaderModel, item: Item):
    """The product's reading of an item (shortlist by the cheap model, then the full one), on copies."""
    listed = [replace_features(c) for c in shortlist(model, item.pool)]
    if listed:
        cosine_gaps(listed)  # within the shortlist, as the product computes them
    return score_candidates(model, item.query, listed)


def replace_features(candidate):
    """A copy whose features can change without touching the gathered item."""
    twin = copy.copy(candidate)
    twin.features = dict(candidate.features)
    return twin


def answers_at(generation, items, readings, model, min_answerable, min_further):
    settings = AnswerSettings(min_answerable=min_answerable, min_further=min_further)
    return [
        compose_answer(generation, item.query, item.hits, reading, settings, model)
        for item, reading in zip(items, readings, strict=True)
    ]


def metrics(generation, items, answers) -> dict[str, dict]:
    result = {}
    for dataset in SETS:
        chosen = [i for i, item in enumerate(items) if item.dataset == dataset]
        result[dataset] = score(generation, [items[i].question for i in chosen], [answers[i] for i in chosen])
    return result


def cross_validate(generation, items, folds, embed_top, passages, model_id, seed: int = 7):
    """Out-of-fold readings (and the fold models that made them), folds drawn with `seed`."""
    assignment = folds_of(items, folds, seed)
    readings, models = [None] * len(items), [None] * len(items)
    for fold in range(folds):
        train = [item for item, f in zip(items, assignment, strict=True) if f != fold]
        model = fit(train, embed_top, passages, model_id)
        for i, item in enumerate(items):
            if assignment[i] == fold:
                readings[i], models[i] = read(model, item), model
    return readings, models


def oof_answers(generation, items, readings, models, min_answerable, min_further):
    return [
        answers_at(generation, [item], [reading], model, min_answerable, min_further)[0]
        for item, reading, model in zip(items, readings, models, strict=True)
    ]


TARGETS = {"natural": (0.20, 0.35), "realtimeqa": (0.10, 0.18)}  # abstained on answerable, wrong on unanswerable


def choose_threshold(generation, items, readings, models, min_further, sample=None) -> tuple[float, list]:
    """The answerability threshold the product ships: the first in `preference` order, each threshold's rates
    measured out of fold (and on the sample corpus, when given)."""
    curve = []
    for t in ANSWERABLE_GRID:
        m = metrics(generation, items, oof_answers(generation, items, readings, models, float(t), min_further))
        if sample is not None:
            m["sample"] = sample(float(t))
        key = preference(m)
        every_target_met = key[:2] == (False, -2 * len(TARGETS))  # and the sample corpus's guard kept
        curve.append((float(t), m, key, every_target_met))
    return min(curve, key=lambda row: row[2])[0], curve


def preference(rates: dict[str, dict]) -> tuple:
    """How good a threshold's error rates are, as a sort key (least first): it meets the most of the error
    targets (abstained on answerable, wrong on unanswerable, each set); between those, the one that meets them
    with the most room (the least room over the targets it meets is largest: one question either way moves a
    rate by 0.01 to 0.05, and other questions decide), then the least error summed over all of them. Counting the
    targets met first, and weighing room only on those, keeps a target that no threshold meets (the natural
    look-alikes, docs/benchmarks.md) from pulling the threshold up on its own. A guard comes before all: thresholds
    that refuse more of any set's answerable questions than the natural set's target allows come after all others,
    the sample corpus's plain questions (what a new user asks first) included when given ("sample"). Without it, a
    threshold that refuses nearly everything meets both "answered wrongly" targets, and once one abstention target
    is missed by a question it ties on targets met with the right one and wins on room. The sample's 4
    unanswerable questions (a rate in steps of 0.25) are reported, not chosen on."""
    ratios = [
        ratio
        for d, (a, w) in TARGETS.items()
        for ratio in (rates[d]["abstained_answerable"] / a, rates[d]["wrong_unanswerable"] / w)
    ]
    guard = max(rates[d]["abstained_answerable"] for d in (*TARGETS, *(["sample"] if "sample" in rates else [])))
    guard /= TARGETS["natural"][0]
    met = [ratio for ratio in ratios if ratio <= 1.0]
    room = min((1.0 - ratio for ratio in met), default=0.0)
    return guard > 1.0, -len(met), -round(room, 6), round(sum(ratios), 6)


def sample_curve(model: ReaderModel, index: Path):
    """The sample corpus's questions read once by `model`; then its rates at any answerability threshold."""
    from qa.reader import SentenceReader

    generation, embedder = load_generation(index), make_embedder(index_dir=index)
    questions = read_questions(SAMPLE_QUESTIONS)
    day = default_asked_on(generation)
    now_known = day == date.today()  # as the web chat asks: no date stated (ask_many)
    queries = [make_query(q.question, (), day, RetrievalSettings(), False, now_known) for q in questions]
    ranked = retrieve_many(generation, embedder, queries, 10)
    readings = SentenceReader(embedder, model).read(generation, queries, ranked)

    def rates(threshold: float) -> dict:
        settings = AnswerSettings(min_answerable=threshold)
        answers = [
            compose_answer(generation, query, hits, reading, settings, model)
            for query, hits, reading in zip(queries, ranked, readings, strict=True)
        ]
        return score(generation, questions, answers)

    return rates


DRAW_SEEDS = (7, 21, 33, 45, 57, 69, 81, 93)
DRAW_MEASURES = (
    "answer_in_first_quote",
    "answer_in_quote",
    "answer_in_phrase",
    "abstained_answerable",
    "wrong_unanswerable",
)


def fold_draws(generation, items, args, embed_top, threshold, further, model_id, first) -> None:
    """The chosen settings' figures over `--draws` fold draws (the first is seed 7, already computed): one draw
    moves them by a question or two. Prints each set's mean and range of the main measures and quotes per answer."""
    runs = [first]
    for seed in DRAW_SEEDS[1 : args.draws]:
        readings, models = cross_validate(generation, items, args.folds, embed_top, args.passages, model_id, seed)
        runs.append(metrics(generation, items, oof_answers(generation, items, readings, models, threshold, further)))
    print(f"\nover {len(runs)} fold draws (seeds {', '.join(map(str, DRAW_SEEDS[: len(runs)]))}): mean (min-max)")
    for d in SETS:
        cells = []
        for key in (*DRAW_MEASURES, "quotes_per_answer"):
            values = [run[d][key] for run in runs]
            cells.append(f"{key} {np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"  {d}: " + ", ".join(cells))


def line(name, m) -> str:
    parts = []
    for d in SETS:
        x = m[d]
        parts.append(
            f"{d}: hits@5 {x.get('hits@5', 0):.3f} first {x.get('answer_in_first_quote', 0):.3f} "
            f"any {x.get('answer_in_quote', 0):.3f} phrase {x.get('answer_in_phrase', 0):.3f} "
            f"abst {x.get('abstained_answerable', 0):.3f} wrong {x.get('wrong_unanswerable', 0):.3f} "
            f"q/a {x.get('quotes_per_answer', 0):.2f}"
        )
    return f"{name:>28} | " + " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--passages", type=int, default=5)
    parser.add_argument("--embed-top", default=",".join(map(str, SHORTLISTS)), help="shortlist sizes to compare")
    parser.add_argument(
        "--sample-index",
        help="an index of the sample corpus: the fitted reader is also scored "
        "there on corpus/questions.jsonl (questions written for it; not fitted on)",
    )
    parser.add_argument("--cache", help="pickle file to keep the gathered features in between runs (outside the repo)")
    parser.add_argument("--write", action="store_true", help="refit on all questions and write qa/reader_model.json")
    parser.add_argument(
        "--draws", type=int, default=1, help=f"also report the chosen settings over up to {len(DRAW_SEEDS)} fold draws"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.cache and Path(args.cache).exists():  # features of an earlier run on the same index and code
        items, generation = pickle.loads(Path(args.cache).read_bytes()), load_generation(args.index)
    else:
        items, generation = gather(Path(args.index), args.passages)
        if args.cache:
            Path(args.cache).write_bytes(pickle.dumps(items))
    model_id = base_model_id(generation.model_id)
    positives = sum(item.labels.any() for item in items if item.labelled)
    print(
        f"{len(items)} questions, {sum(len(i.pool) for i in items)} candidate sentences, "
        f"{positives}/{sum(i.labelled for i in items)} answerable with the answer in a candidate "
        f"({time.perf_counter() - started:.0f} s)"
    )

    rows = []  # (answer in first quote + in any quote, summed over the sets; mean quotes; settings)
    for embed_top in [int(n) for n in args.embed_top.split(",")]:
        readings, models = cross_validate(generation, items, args.folds, embed_top, args.passages, model_id)
        # compared without abstaining (the lowest threshold): which sentences come first and which follow do not
        # depend on it, and each shortlist's own chosen threshold would compare answer rates at different ones
        threshold = float(ANSWERABLE_GRID[0])
        for further in FURTHER_GRID:
            m = metrics(generation, items, oof_answers(generation, items, readings, models, threshold, further))
            print(line(f"top{embed_top} t={threshold:.2f} f={further}", m))
            gain = sum(m[d]["answer_in_quote"] + m[d]["answer_in_first_quote"] for d in SETS)
            rows.append((gain, sum(m[d]["quotes_per_answer"] for d in SETS), embed_top, further))
    # the shortest shortlist (each sentence embedded costs about 4 ms of a question's time) whose best sum is
    # within 0.04 of the best (about one question per set); then the fewest quotes that keep it there
    best = max(r[0] for r in rows)
    embed_top = min(r[2] for r in rows if r[0] >= best - 0.04)
    top = max(r[0] for r in rows if r[2] == embed_top)
    _, _, embed_top, further = min((r for r in rows if r[2] == embed_top and r[0] >= top - 0.04), key=lambda r: r[1])
    readings, models = cross_validate(generation, items, args.folds, embed_top, args.passages, model_id)
    full = replace(fit(items, embed_top, args.passages, model_id), min_further=further)  # on every question
    sample = sample_curve(full, Path(args.sample_index)) if args.sample_index else None
    threshold, curve = choose_threshold(generation, items, readings, models, further, sample)
    print(f"\nchosen: embed_top={embed_top} min_further={further} min_answerable={threshold}")
    print("abstention curve (out of fold): threshold | per set: share answered, share of answered right")
    for t, m, _, meets in curve:
        cells = []
        for d in [*SETS, *(["sample"] if "sample" in m else [])]:
            x = m[d]
            answered = 1 - x["abstained_answerable"]
            cells.append(
                f"{d} answered {answered:.2f} first {x['answer_in_first_quote']:.2f} "
                f"any {x['answer_in_quote']:.2f} wrong-unans {x['wrong_unanswerable']:.2f}"
            )
        print(f"  {t:.2f}{' *' if meets else '  '} | " + " | ".join(cells))
    final = metrics(generation, items, oof_answers(generation, items, readings, models, threshold, further))
    print("\nout-of-fold figures at the chosen settings:")
    print(json.dumps(final, indent=1))
    if args.draws > 1:
        fold_draws(generation, items, args, embed_top, threshold, further, model_id, final)
    model = replace(full, min_answerable=threshold)
    if sample is not None:  # the same model, read once: its figures at the chosen threshold
        keys = (
            "answer_in_first_quote",
            "answer_in_quote",
            "answer_in_phrase",
            "abstained_answerable",
            "wrong_unanswerable",
        )
        print("sample corpus:", json.dumps({k: v for k, v in sample(threshold).items() if k in keys}))
    if args.write:
        model = replace(
            model,
            fitted_on={
                "questions": {d: sum(i.dataset == d for i in items) for d in SETS},
                "folds": args.folds,
                "cross_validated": {
                    d: {
                        k: final[d][k]
                        for k in (
                            "answer_in_first_quote",
                            "answer_in_quote",
                            "abstained_answerable",
                            "wrong_unanswerable",
                        )
                    }
                    for d in SETS
                },
            },
        )
        model.save(MODEL_FILE)
        print(f"wrote {MODEL_FILE}")


if __name__ == "__main__":
    main()
