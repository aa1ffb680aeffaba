"""python -m qa build | ask | stats: the command line over the same functions the web chat uses."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qa.config import Settings
from qa.errors import NothingIndexed, QAError


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_env()  # flags, then QA_* variables, then defaults: qa/config.py
        args = _parser(settings).parse_args(argv)
        return args.run(args, settings.with_flags(vars(args)))
    except NothingIndexed as error:
        if error.report is not None:
            _print_report(error.report)
        print(f"error: {error}", file=sys.stderr)
        return 1
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m qa stats --json | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qa",
        description="Question answering with verbatim, cited quotes over a folder of news articles.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="build or update the index from a corpus of articles",
        description="Read articles (.txt .md .html .json .jsonl .jsonl.gz), embed what is "
        "new or changed, and switch the index to a new generation.",
    )
    build.add_argument("--corpus", default=settings.corpus, help="folder or file of articles (default: %(default)s)")
    build.add_argument("--index", default=settings.index, help="index folder (default: %(default)s)")
    build.add_argument(
        "--model",
        default=None,
        help="local sentence-transformers model folder (default: $QA_MODEL, else the bundled all-MiniLM-L6-v2)",
    )
    build.add_argument(
        "--embedder",
        choices=("auto", "int8", "fp32"),
        default=None,
        help="int8 (ONNX Runtime, CPU) or fp32 (sentence-transformers, a CUDA GPU when there is one); "
        "default $QA_EMBEDDER, else auto: the index's own, and for a new index fp32 on a GPU, else int8",
    )
    build.add_argument(
        "--vectors-from",
        default=None,
        metavar="INDEX",
        help="take the passage vectors from another (embedded) index folder of the same corpus instead "
        "of embedding: moves an index to --backend qdrant; a passage that index lacks is refused",
    )
    _backend_flags(build, settings)
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    build.add_argument(
        "--progress-json",
        action="store_true",
        help="print one JSON object a line: {stage, done, total} while it runs, then {report} or "
        "{error, report} (how the web chat's rebuild process reports to the server)",
    )
    build.set_defaults(run=_build)

    ask = commands.add_parser(
        "ask",
        help="answer a question (or a file of questions) with cited quotes",
        description="Answer with verbatim quotes from the indexed articles, each cited.",
    )
    ask.add_argument("question", nargs="?", help="the question")
    ask.add_argument("--questions", type=Path, help="JSON-lines file, one object with a 'question' a line")
    ask.add_argument("--index", default=settings.index, help="index folder (default: %(default)s)")
    ask.add_argument("--model", default=None, help="local model folder; must be the one the index was built with")
    ask.add_argument(
        "--embedder",
        choices=("auto", "int8", "fp32"),
        default=None,
        help="default $QA_EMBEDDER, else auto: the one the index was built with",
    )
    ask.add_argument("--top-k", type=int, default=10, help="passages to retrieve and list (default: %(default)s)")
    ask.add_argument(
        "--asked-on",
        default=None,
        help="date the question is asked on, YYYY-MM-DD (default: today, "
        "or the newest article's date when the corpus is older); a file line's question_date wins",
    )
    _backend_flags(ask, settings)
    ask.add_argument("--json", action="store_true", help="print one JSON object per question")
    ask.set_defaults(run=_ask)

    evaluate = commands.add_parser(
        "eval",
        help="measure retrieval and answers on a question set",
        description="Score a JSON-lines question set (fields: question; optional "
        "question_date, answer_text, gold_doc_ids, gold_urls, answer_in_gold_article, "
        "unanswerable): Hits@1/5/10, MRR@10, answer in quote, abstention, wrong answers, "
        "quotes verified, latency.",
    )
    evaluate.add_argument(
        "--questions",
        type=Path,
        default=Path(settings.corpus) / "questions.jsonl",
        help="JSON-lines question file (default: %(default)s, the sample corpus's questions)",
    )
    evaluate.add_argument("--index", default=settings.index, help="index folder (default: %(default)s)")
    evaluate.add_argument("--model", default=None, help="local model folder; must be the one the index was built with")
    evaluate.add_argument(
        "--embedder",
        choices=("auto", "int8", "fp32"),
        default=None,
        help="default $QA_EMBEDDER, else auto: the one the index was built with",
    )
    _backend_flags(evaluate, settings)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--details",
        action="store_true",
        help="also one row per question: gold answer, first quote, answer phrase, rank of the "
        "gold article, abstained, right",
    )
    evaluate.set_defaults(run=_eval)

    stats = commands.add_parser(
        "stats",
        help="show what the index holds",
        description="What the current index generation holds: articles, passages, "
        "sentences, model, chunking, library versions, when and from which corpus it was "
        "built.",
    )
    stats.add_argument("--index", default=settings.index, help="index folder (default: %(default)s)")
    _backend_flags(stats, settings)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(run=_stats)
    return parser


def _backend_flags(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "embedded", "qdrant"),
        default=None,
        help="where the index lives: embedded (FAISS and SQLite in the index folder) or qdrant "
        "(default $QA_BACKEND, else auto: the one the index folder records, else embedded)",
    )
    parser.add_argument(
        "--qdrant-url",
        default=None,
        help="Qdrant server, e.g. http://localhost:6333 (default "
        "$QA_QDRANT_URL, else the one the index folder records, else local mode in the index folder)",
    )
    parser.add_argument("--qdrant-api-key", default=None, help="the server's API key (default $QA_QDRANT_API_KEY)")
    parser.add_argument(
        "--qdrant-collection",
        default=None,
        help=f"the collection alias of the index (default $QA_QDRANT_COLLECTION, else {settings.qdrant_collection})",
    )


def _embedder(settings: Settings):
    from qa.embedders import make_embedder

    return make_embedder(settings.model, settings.embedder, settings.index, settings.cache_dir)


def _embedder_for(settings: Settings, backend):
    """The embedder for an index in `backend`: with --embedder auto, the kind its live generation was built with."""
    from dataclasses import replace

    from qa.backends import embedder_kind

    return _embedder(replace(settings, embedder=embedder_kind(settings, backend)))


def _build_with(settings: Settings, vectors_from: str | None, progress):
    """Build with the settings' backend; with `vectors_from`, vectors are copied from that index, not embedded."""
    from qa.backends import IndexVectors, open_backend
    from qa.build import build_index
    from qa.store import EmbeddedBackend

    backend = open_backend(settings, for_build=True)
    embedder = _embedder_for(settings, backend)
    if vectors_from:
        embedder = IndexVectors(EmbeddedBackend(vectors_from).open(), embedder)
    try:
        return build_index(settings.corpus, backend, embedder, progress=progress)
    finally:
        getattr(backend, "close", lambda: None)()


def _build(args: argparse.Namespace, settings: Settings) -> int:
    if args.progress_json:
        return _build_reporting(settings)
    _check_corpus(settings.corpus)
    report = _build_with(settings, args.vectors_from, progress=_print_stage if sys.stderr.isatty() else None)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    return 0


def _print_stage(stage: str, done: int, total: int) -> None:
    """A build's progress on a terminal: a line per step of each stage."""
    print(f"{stage} {done}/{total}" if total else stage, file=sys.stderr, flush=True)


def _check_corpus(corpus: str) -> None:
    if not Path(corpus).exists():
        from qa.errors import CorpusNotFound

        raise CorpusNotFound(corpus)


def _build_reporting(settings: Settings) -> int:
    """`build --progress-json`: every line on stdout one JSON object (qa.rebuild reads them), also a failure."""
    from qa.rebuild import failure_line, progress_line, report_line

    def progress(stage: str, done: int, total: int) -> None:
        print(progress_line(stage, done, total), flush=True)

    try:
        _check_corpus(settings.corpus)
        report = _build_with(settings, None, progress=progress)
    except QAError as error:
        print(failure_line(str(error), getattr(error, "report", None)), flush=True)
        return 1 if isinstance(error, NothingIndexed) else 2
    print(report_line(report), flush=True)
    return 0


def _print_report(report) -> None:
    print(
        f"{report.files} files in {report.corpus}: {report.articles_read} articles read, {len(report.skipped)} skipped"
    )
    for skipped in report.skipped:
        print(f"  skipped {skipped.origin}: {skipped.reason}")
    if not report.generation:
        return
    print(f"new {report.new}, changed {report.changed}, removed {report.removed}, unchanged {report.unchanged}")
    if report.up_to_date:
        print(
            f"the index in {report.index_dir} is up to date (generation {report.generation}, "
            f"{report.passages} passages)"
        )
    else:
        print(f"passages {report.passages}: {report.embedded} embedded, {report.reused_vectors} reused")
        print(f"generation {report.generation} in {report.index_dir}")
    rate = f", {report.passages_per_second:.1f} passages per second embedded" if report.embedded else ""
    print(f"{report.seconds:.1f} s{rate}")


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa.answer import ask_many
    from qa.evaluate import read_questions
    from qa.fold import fold_invisible
    from qa.timeframe import parse_date

    if (args.question is None) == (args.questions is None):
        raise QAError("give either a QUESTION or --questions FILE.jsonl")
    if args.top_k < 1:
        raise QAError(f"--top-k must be at least 1, not {args.top_k}")
    if args.question is not None:
        if not fold_invisible(args.question).strip():
            raise QAError('the question is empty: ask something, for example  python -m qa ask "Who won the prize?"')
        questions, dates = [args.question], [args.asked_on]
    else:
        records = read_questions(args.questions)
        questions = [r.question for r in records]
        if blank := [n for n, q in enumerate(questions, start=1) if not fold_invisible(q).strip()]:
            raise QAError(f"{args.questions}: question {blank[0]} is empty")
        dates = [r.question_date or args.asked_on for r in records]
    if args.asked_on and parse_date(args.asked_on) is None:
        raise QAError(f"--asked-on must be a date like 2022-07-01, not {args.asked_on!r}")
    generation, embedder = _open(settings)
    for answer in ask_many(generation, embedder, questions, args.top_k, None, dates):
        if args.json:
            print(json.dumps(answer.as_json(), ensure_ascii=False))
        else:
            _print_answer(answer, generation)
    return 0


def _open(settings: Settings):
    """The current generation and the embedder, refusing an index built under another model."""
    from qa.backends import open_backend

    backend = open_backend(settings)
    generation = backend.open()
    embedder = _embedder_for(settings, backend)
    generation.check_model(embedder.model_id, embedder.dimension)
    return generation, embedder


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa.evaluate import evaluate, read_questions

    questions = read_questions(args.questions)
    generation, embedder = _open(settings)
    metrics = evaluate(generation, embedder, questions, progress=sys.stderr.isatty(), with_details=args.details)
    if args.json:
        print(json.dumps(metrics, indent=2, ensure_ascii=False))
        return 0
    rows = metrics.pop("details", [])
    for key, value in metrics.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    for number, row in enumerate(rows, start=1):
        verdict = "right" if row["right"] else "wrong"
        print(
            f"\n{number}. [{verdict}{', abstained' if row['abstained'] else ''}; gold article rank "
            f"{row['gold_article_rank'] or '-'}] {row['question']}"
        )
        print(f"   gold: {row['gold'] if not row['unanswerable'] else '(not in the articles)'}")
        if row["first_quote"]:
            phrase = f" **{row['answer_phrase']}**" if row["answer_phrase"] else ""
            print(f"   first quote:{phrase} “{row['first_quote']}”")
    return 0


def _print_answer(answer, generation) -> None:
    print(answer.answer)
    for n in dict.fromkeys(c.n for c in answer.citations):
        quotes = [c for c in answer.citations if c.n == n]
        c = quotes[0]
        spans = ", ".join(f"{q.start}-{q.end}" for q in quotes)
        print(f"  [{n}] {c.title} — {c.source or 'unknown outlet'}, {c.publish_date or 'undated'} {c.url}")
        print(f"      doc {c.doc_id}, chars {spans}{_also_in(answer, c.doc_id, generation)}")
    if answer.abstained and answer.passages:
        print("  closest passages:")
        for hit in answer.passages[:3]:
            article = generation.article(hit.doc_id)
            outlet = f" — {article.source}" if article.source else ""
            where = f"chars {hit.start}-{hit.end}" if article.text else "headline only, no text"
            print(f"    {hit.rank}. {article.title}{outlet} ({hit.doc_id}, {where})")


def _also_in(answer, doc_id: str, generation) -> str:
    """The other outlets that ran the same story, named on the citation."""
    copies = next((hit.also_in for hit in answer.passages if hit.doc_id == doc_id), ())
    outlets = sorted({generation.article(d).source or d for d in copies})
    return f"; also published by {', '.join(outlets)}" if outlets else ""


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from qa.backends import open_backend

    generation = open_backend(settings).open()
    manifest = dict(generation.manifest)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    for key in (
        "generation",
        "built_at",
        "corpus",
        "articles",
        "passages",
        "sentences",
        "model",
        "dimension",
        "faiss_index",
    ):
        print(f"{key}: {manifest.get(key)}")
    print(f"chunking: {json.dumps(manifest.get('chunking'))}")
    print(f"versions: {json.dumps(manifest.get('versions'))}")
    return 0
