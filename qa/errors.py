"""The few errors a user can see, each with a message that says what to do."""


class QAError(Exception):
    """An error caused by the user's input or setup; the CLI prints its message without a traceback."""


class CorpusNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(f"corpus not found: {path} (pass --corpus with a folder or file of articles)")


class IndexNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(
            f"no index in {path}: build one first with `python -m qa build --corpus PATH --index {path}`"
        )


class IndexCorrupt(QAError):
    def __init__(self, path: str, why: str):
        super().__init__(
            f"index generation {path} cannot be loaded ({why}); rebuild it with `python -m qa build`"
        )


class ModelMismatch(QAError):
    def __init__(self, index_model: str, index_dim: int, model: str, dim: int):
        super().__init__(
            f"index was built with model {index_model} (dimension {index_dim}) but the configured model is "
            f"{model} (dimension {dim}); use --model with the index's model or rebuild the index"
        )


class NothingIndexed(QAError):
    def __init__(self, path: str, report: object = None):
        super().__init__(f"nothing could be indexed from {path}: every item was skipped (see the report)")
        self.report = report


class BuildInProgress(QAError):
    def __init__(self, path: str):
        super().__init__(f"another build is running on {path}; wait for it to finish")


class ModelNotFound(QAError):
    def __init__(self, path: str):
        super().__init__(f"embedding model not found: {path} (pass --model with a local model folder)")
