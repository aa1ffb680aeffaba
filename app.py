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


def read_settings(argv: list[str] | None = None):
    """The web chat's settings (qa.config.Settings): its flags, then QA_* variables, then defaults."""
    from qa.config import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description="Serve the newsqa web chat: answers quoted from news articles.")
    parser.add_argument("--host", default=settings.host, help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=settings.port, help="port (default: %(default)s)")
    parser.add_argument("--corpus", default=settings.corpus, help="articles folder (default: %(default)s)")
    parser.add_argument("--index", default=settings.index, help="index folder (default: %(default)s)")
    parser.add_argument(
        "--backend",
        choices=("auto", "embedded", "qdrant"),
        default=None,
        help="embedded or qdrant (default $QA_BACKEND, else the one the index folder records)",
    )
    parser.add_argument(
        "--qdrant-url",
        default=None,
        help="Qdrant server (default $QA_QDRANT_URL; none: local mode in the index folder)",
    )
    parser.add_argument("--qdrant-api-key", default=None, help="the server's API key (default $QA_QDRANT_API_KEY)")
    return settings.with_flags(vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    # One thread per library pool (torch, FAISS, BLAS), set before they load (importing qa loads numpy):
    # questions already run side by side, and per-core pools on top of them oversubscribe a small machine
    # (docs/reliability.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from qa.errors import QAError

    try:
        settings = read_settings(argv)
    except QAError as error:  # a QA_* variable that is no valid value
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("qa").setLevel(logging.INFO)

    from qa.backends import embedder_kind, open_backend
    from qa.embedders import make_embedder
    from qa.service import ChatService
    from qa.web import launch

    try:
        backend = open_backend(settings, for_build=True)  # it builds the index when there is none
        embedder = make_embedder(settings.model, embedder_kind(settings, backend), settings.index, settings.cache_dir)
        service = ChatService.open(
            settings.corpus, settings.index, embedder, admin_password=settings.admin_password, backend=backend
        )
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    service.warm_up()
    examples = SAMPLE_QUESTIONS if Path(settings.corpus).resolve() == SAMPLE_CORPUS else []
    # SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does, so that a rebuild process is ended too
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(service, examples, settings)
    except OSError as error:  # the port is taken, or the address is not this machine's
        why = str(error).split(". ")[0]
        print(f"error: cannot serve on {settings.host}:{settings.port} ({why}); choose another --port", file=sys.stderr)
        return 2
    finally:
        service.close()
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
