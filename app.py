"""python app.py: the web chat over the sample corpus, building its index first when there is none."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SAMPLE_CORPUS = ROOT / "corpus"
SAMPLE_QUESTIONS = [
    "Who did Ishaq Dar speak with by phone?",
    "How many parking spaces worry Riverton shop owners?",
    "Who won the sourdough category of the National Bread Guild competition?",
    "How many people a day did the water taxi carry?",
    "Who donated most of the seeds to the Northfield library?",
]


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Serve the newsqa web chat: answers quoted from news articles.")
    parser.add_argument("--host", default=env("QA_HOST", "127.0.0.1"), help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=int(env("QA_PORT", "7860")), help="port (default: %(default)s)")
    parser.add_argument("--corpus", default=env("QA_CORPUS", "corpus"), help="articles folder (default: %(default)s)")
    parser.add_argument("--index", default=env("QA_INDEX", "index"), help="index folder (default: %(default)s)")
    args = parser.parse_args(argv)
    # One thread per library pool (torch, FAISS, BLAS), set before they load: questions already run side by
    # side, and per-core pools on top of them oversubscribe a small machine (docs/reliability.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("qa").setLevel(logging.INFO)

    from qa.embed import make_embedder
    from qa.errors import QAError
    from qa.service import ChatService
    from qa.web import launch

    try:
        service = ChatService.open(args.corpus, args.index, make_embedder(index_dir=args.index),
                                   admin_password=env("QA_ADMIN_PASSWORD", ""))
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    service.warm_up()
    examples = SAMPLE_QUESTIONS if Path(args.corpus).resolve() == SAMPLE_CORPUS else []
    # SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does, so that a rebuild process is ended too
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(service, examples, host=args.host, port=args.port)
    except OSError as error:  # the port is taken, or the address is not this machine's
        why = str(error).split(". ")[0]
        print(f"error: cannot serve on {args.host}:{args.port} ({why}); choose another --port", file=sys.stderr)
        return 2
    finally:
        service.close()
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
