"""The few errors a user can see, each with a message that says what to do."""


class QAError(Exception):
    """An error caused by the user's input or setup; the CLI prints its message without a traceback."""


class CorpusNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(f"corpus not found: {path} (pass --corpus with a folder or file of articles)")


class IndexNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(f"no index in {path}: build one first with `python -m qa build --corpus PATH --index {path}`")


class IndexCorrupt(QAError):
    def __init__(self, path: str, why: str):
        super().__init__(f"index generation {path} cannot be loaded ({why}); rebuild it with `python -m qa build`")


class ModelMismatch(QAError):
    def __init__(self, index_model: str, index_dim: int, model: str, dim: int):
        if index_model.removesuffix("-int8") == model.removesuffix("-int8"):  # same model, other embedder
            kind = "int8" if index_model.endswith("-int8") else "fp32"
            super().__init__(
                f"the index was built with the {kind} embedder of {index_model.removesuffix('-int8')}; drop "
                f"--embedder (and $QA_EMBEDDER) to use the index's own, or pass --embedder {kind}"
            )
            return
        super().__init__(
            f"index was built with model {index_model} (dimension {index_dim}) but the configured model is "
            f"{model} (dimension {dim}); use --model with the index's model or rebuild the index"
        )


ARTICLE_SUFFIXES = ".txt .md .html .htm .json .jsonl .jsonl.gz"


class NothingIndexed(QAError):
    def __init__(self, path: str, report: object = None):
        if report is not None and not getattr(report, "files", 0):
            why = f"no article files found in {path} (accepted: {ARTICLE_SUFFIXES})"
        else:
            why = f"nothing could be indexed from {path}: every item was skipped (see the report)"
        super().__init__(why)
        self.report = report


class BuildInProgress(QAError):
    def __init__(self, path: str):
        super().__init__(f"another build is running on {path}; wait for it to finish")


class ModelNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(f"embedding model not found: {path} (pass --model with a local model folder)")
