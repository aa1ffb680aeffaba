"""`python -m qa build` with the fake embedder: the rebuild process of a test's service (qa/rebuild.py runs it).

Tests hold or slow it through its environment, which the service passes on: FAKE_BUILD_START_GATE names a file
that the build waits for before it reads the corpus (every build stops there), FAKE_BUILD_GATE one that embedding
waits for (a build with passages to embed stops there), FAKE_BUILD_PAUSE is seconds of sleep per embedding call.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qa.cli  # noqa: E402 (after the path is set)
from tests.conftest import FakeEmbedder  # noqa: E402


def wait_for_gate(variable: str) -> None:
    gate = os.environ.get(variable)
    while gate and not Path(gate).exists():
        time.sleep(0.02)


class HeldEmbedder(FakeEmbedder):
    def embed(self, texts, progress=False):
        wait_for_gate("FAKE_BUILD_GATE")
        time.sleep(float(os.environ.get("FAKE_BUILD_PAUSE", "0")))
        return super().embed(texts)


def held_embedder(args) -> HeldEmbedder:
    wait_for_gate("FAKE_BUILD_START_GATE")
    return HeldEmbedder()


def fake_build_command(corpus: str | Path, index: str | Path) -> list[str]:
    """The command line a test's ChatService(rebuild_command=...) runs instead of `python -m qa build`."""
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "build",
        "--corpus",
        str(corpus),
        "--index",
        str(index),
        "--progress-json",
    ]


if __name__ == "__main__":
    qa.cli._embedder = held_embedder
    sys.exit(qa.cli.main(sys.argv[1:]))
