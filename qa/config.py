"""Settings, read in one place: command-line flags, then QA_* environment variables, then defaults, into one frozen
Settings that is passed down (app.py, python -m qa, the web page, the embedder factory)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from qa.errors import QAError

EMBEDDERS = ("auto", "int8", "fp32")
BACKENDS = ("auto", "embedded", "qdrant")


@dataclass(frozen=True)
class Settings:
    """Every setting a user can give. Each field is also read from the environment as QA_ and its name in capitals
    (`answer_concurrency`: QA_ANSWER_CONCURRENCY); None means "not given" where a later stage has its own default."""

    corpus: str = "corpus"  # the articles: a folder (or one file)
    index: str = "index"  # the index folder
    model: str | None = None  # a local sentence-transformers model folder; None: the bundled all-MiniLM-L6-v2
    embedder: str = "auto"  # auto, int8 or fp32: qa.embedders.make_embedder
    cache_dir: str | None = None  # where the int8 model is cached; None: $XDG_CACHE_HOME/newsqa or ~/.cache/newsqa
    admin_password: str = ""  # when set, the web chat's uploads and rebuilds need it
    # Questions the web chat answers at once. With the int8 embedder a question's model call is cheap, so batching
    # many gains little, and more questions at once only share the interpreter lock: on two cores, 2 at once kept
    # p95 within 2.2x of one client's under 16 sessions with pauses (16 at once: up to 4.2x) for 10 % fewer
    # answers per second back to back (docs/reliability.md).
    answer_concurrency: int = 2
    host: str = "127.0.0.1"  # the web chat's address
    port: int = 7860  # ... and port
    backend: str = "auto"  # auto (the one the index records, else embedded), embedded or qdrant: qa.backends
    qdrant_url: str | None = None  # a Qdrant server; None: qdrant-client's local mode in the index folder
    qdrant_api_key: str = ""  # the server's API key (never written to the index)
    qdrant_collection: str = "newsqa"  # the alias the live generation's collection is found by
    qdrant_shards: int = 0  # shards of a build's collections (0: the server's default); docs/scaling.md
    qdrant_replicas: int = 0  # copies of each shard (0: the server's default)
    qdrant_quantization: str = ""  # "int8": int8 vectors in RAM, the float ones on disk; "": floats in RAM

    def __post_init__(self) -> None:
        if self.embedder not in EMBEDDERS:
            raise QAError(
                f"embedder {self.embedder!r} (from --embedder or $QA_EMBEDDER): choose one of {', '.join(EMBEDDERS)}"
            )
        if self.backend not in BACKENDS:
            raise QAError(
                f"backend {self.backend!r} (from --backend or $QA_BACKEND): choose one of {', '.join(BACKENDS)}"
            )
        if self.qdrant_quantization not in ("", "int8"):
            raise QAError(
                f"Qdrant quantization {self.qdrant_quantization!r} ($QA_QDRANT_QUANTIZATION): leave it "
                "empty or use int8"
            )
        if self.answer_concurrency < 1:
            raise QAError(f"answer concurrency {self.answer_concurrency} ($QA_ANSWER_CONCURRENCY) must be at least 1")
        if not 0 <= self.port <= 65535:
            raise QAError(f"port {self.port} (from --port or $QA_PORT) must be between 0 and 65535")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The defaults with the QA_* variables of `environ` over them; an empty variable counts as unset."""
        values: dict[str, Any] = {}  # each checked by __post_init__
        for field in fields(cls):
            name = env_name(field.name)
            raw = environ.get(name, "")
            if not raw:
                continue
            if isinstance(field.default, int):
                try:
                    values[field.name] = int(raw)
                except ValueError:
                    raise QAError(f"${name} must be a whole number, not {raw!r}") from None
            else:
                values[field.name] = raw
        return cls(**values)

    def with_flags(self, flags: Mapping[str, Any]) -> Settings:
        """These settings with the command-line flags given over them (`vars(args)` of argparse): a flag that is
        None was not given, and flags that are no setting (--json) are left out."""
        names = {field.name for field in fields(self)}
        return replace(self, **{name: value for name, value in flags.items() if name in names and value is not None})


def env_name(setting: str) -> str:
    """The environment variable of a setting: `cache_dir` is QA_CACHE_DIR."""
    return f"QA_{setting.upper()}"
