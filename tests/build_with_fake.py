"""Run a build with the fake embedder in a subprocess; `--slow` pauses in embedding so a test can kill it."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.build import build_index  # noqa: E402
from tests.conftest import FakeEmbedder  # noqa: E402


class SlowEmbedder(FakeEmbedder):
    def __init__(self, marker: Path):
        super().__init__()
        self.marker = marker

    def embed(self, texts, progress=False):
        self.marker.write_text("embedding")
        time.sleep(60)
        return super().embed(texts)


if __name__ == "__main__":
    corpus, index, marker = sys.argv[1:4]
    build_index(corpus, index, SlowEmbedder(Path(marker)))
