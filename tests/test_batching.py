"""Questions that arrive together are embedded in one batch: same vectors, errors reach every caller."""

import threading

import numpy as np

from qa.service import QUESTION_BATCH, _SharedEmbedder
from tests.conftest import FakeEmbedder


class SlowRecordingEmbedder(FakeEmbedder):
    """Records each batch; the first call waits until released, so that the other callers queue up behind it."""

    def __init__(self, fail_on: str = ""):
        super().__init__()
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.fail_on = fail_on

    def embed(self, texts, progress=False):
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            assert self.release.wait(30)
        if self.fail_on in texts:
            raise RuntimeError("model failed")
        return super().embed(texts)


def embed_concurrently(shared: _SharedEmbedder, texts: list[str], inner: SlowRecordingEmbedder) -> dict:
    results: dict[str, object] = {}

    def call(text: str) -> None:
        try:
            results[text] = shared.embed([text])
        except RuntimeError as error:
            results[text] = error

    first = threading.Thread(target=call, args=(texts[0],))
    first.start()
    while not inner.batches:  # the first call holds the model
        threading.Event().wait(0.001)
    others = [threading.Thread(target=call, args=(text,)) for text in texts[1:]]
    for thread in others:
        thread.start()
    while len(shared._pending) < len(texts) - 1:  # everyone else is waiting for the model
        threading.Event().wait(0.001)
    inner.release.set()
    for thread in [first, *others]:
        thread.join(30)
    return results


def test_questions_waiting_for_the_model_are_embedded_together_with_the_same_vectors():
    inner = SlowRecordingEmbedder()
    texts = [f"question number {i} about the harbour" for i in range(QUESTION_BATCH + 5)]
    results = embed_concurrently(_SharedEmbedder(inner), texts, inner)
    assert [len(batch) for batch in inner.batches] == [1, QUESTION_BATCH, 4]
    reference = FakeEmbedder()
    for text in texts:
        assert np.array_equal(results[text], reference.embed([text]))


def test_a_failing_batch_raises_in_every_caller_and_the_next_call_works():
    inner = SlowRecordingEmbedder(fail_on="poison")
    shared = _SharedEmbedder(inner)
    results = embed_concurrently(shared, ["first", "poison", "bystander"], inner)
    assert isinstance(results["poison"], RuntimeError) and isinstance(results["bystander"], RuntimeError)
    assert isinstance(results["first"], np.ndarray)
    assert shared.embed(["afterwards"]).shape == (1, inner.dimension)


def test_large_batches_go_alone():
    inner = FakeEmbedder()
    shared = _SharedEmbedder(inner)
    texts = [f"passage {i}" for i in range(QUESTION_BATCH + 1)]
    assert np.array_equal(shared.embed(texts), FakeEmbedder().embed(texts))
    assert inner.embedded == texts and not shared._pending
