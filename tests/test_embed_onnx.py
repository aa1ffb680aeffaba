"""The int8 ONNX embedder against the fp32 model it is made from: same tokens, nearly the same vectors."""

from __future__ import annotations

import numpy as np
import pytest

SENTENCES = [
    "The central bank raised interest rates by half a percentage point on Wednesday.",
    "A magnitude 6.1 earthquake struck off the coast, and no tsunami warning was issued.",
    "The striker scored twice in the second half as the home team won the cup final.",
    "Lawmakers passed the climate bill after a marathon overnight session.",
    "short",
    "Über-long naïve café résumé, with accents and an emoji 🙂 and numbers 3.14159.",
]


@pytest.fixture(scope="module")
def int8_embedder(tmp_path_factory):
    from qa.embed_onnx import OnnxInt8Embedder

    return OnnxInt8Embedder(cache_dir=tmp_path_factory.mktemp("int8-cache"))


@pytest.mark.model
def test_vectors_are_close_to_fp32(int8_embedder, real_embedder):
    vectors = int8_embedder.embed(SENTENCES)
    reference = real_embedder.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), real_embedder.dimension) == (len(SENTENCES), int8_embedder.dimension)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() > 0.98, cosine
    # Nearest neighbours agree: each sentence is still closest to itself across the two models.
    assert (np.argmax(vectors @ reference.T, axis=1) == np.arange(len(SENTENCES))).all()


@pytest.mark.model
def test_a_vector_does_not_depend_on_its_batch(int8_embedder):
    alone = int8_embedder.embed(SENTENCES[:1])
    together = int8_embedder.embed(SENTENCES)
    np.testing.assert_allclose(alone[0], together[0], atol=1e-6)
    assert int8_embedder.embed([]).shape == (0, int8_embedder.dimension)


@pytest.mark.model
def test_token_counts_and_truncation_match_the_model(int8_embedder, real_embedder):
    long_text = " ".join(SENTENCES * 20)
    texts = [*SENTENCES, long_text, ""]
    assert int8_embedder.count_tokens(texts) == real_embedder.count_tokens(texts)
    assert int8_embedder.count_tokens([]) == []
    assert int8_embedder.max_tokens == real_embedder.model.max_seq_length == 256
    # Text past the 256-word-piece limit is cut off, as the fp32 model does.
    pieces = real_embedder.model.tokenizer(long_text, truncation=True, max_length=256)["input_ids"]
    assert int8_embedder.tokenizer.encode(long_text).ids == pieces
    longer = long_text + " " + " ".join(["Unrelated words about gardening and tomatoes."] * 50)
    first, second = int8_embedder.embed([long_text, longer])
    assert float(first @ second) > 0.9999


@pytest.mark.model
def test_model_id_differs_and_the_cached_model_is_reused(int8_embedder, real_embedder, tmp_path):
    from qa.embed_onnx import MODEL_FILE, OnnxInt8Embedder, int8_model_path

    assert int8_embedder.model_id == f"{real_embedder.model_id}-int8"
    cached = int8_model_path(int8_embedder.path, int8_embedder.cache_dir)
    assert cached.name == MODEL_FILE and (cached.parent / "manifest.json").is_file()
    assert [p.name for p in cached.parent.parent.iterdir()] == [cached.parent.name]  # no scratch left behind
    modified = cached.stat().st_mtime_ns
    OnnxInt8Embedder(cache_dir=int8_embedder.cache_dir).embed(["again"])
    assert cached.stat().st_mtime_ns == modified


def test_refuses_a_folder_without_a_model(tmp_path):
    from qa.embed_onnx import OnnxInt8Embedder
    from qa.errors import ModelNotFound

    with pytest.raises(ModelNotFound):
        OnnxInt8Embedder(tmp_path)


def test_refuses_a_pipeline_it_cannot_reproduce(tmp_path):
    import json

    from qa.embed_onnx import OnnxInt8Embedder

    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))  # fmt: skip
    with pytest.raises(ValueError, match="mean pooling"):
        OnnxInt8Embedder(tmp_path)


@pytest.mark.model
def test_a_damaged_cache_is_made_again(int8_embedder, tmp_path):
    import shutil

    from qa.embed_onnx import int8_model_path

    cached = int8_model_path(int8_embedder.path, int8_embedder.cache_dir)
    copy = tmp_path / "cache" / cached.parent.name
    shutil.copytree(cached.parent, copy)
    (copy / cached.name).unlink()  # a folder left without its model
    remade = int8_model_path(int8_embedder.path, tmp_path / "cache")
    assert remade == copy / cached.name and remade.stat().st_size == cached.stat().st_size


@pytest.mark.model
def test_the_session_runs_plain_layer_norms_not_the_slow_fused_kernel(int8_embedder, tmp_path):
    """ONNX Runtime's SkipLayerNormalization CPU kernel cost 12.5% of the time; neither the saved model
    nor the session's own optimiser may bring it back (benchmarks/embed_throughput.py has the figures)."""
    import json
    from pathlib import Path

    from qa.embed_onnx import int8_model_path, open_session

    session = open_session(int8_model_path(int8_embedder.path, int8_embedder.cache_dir), str(tmp_path / "run"))
    encoding = int8_embedder.tokenizer.encode(SENTENCES[0])
    ids = np.array([encoding.ids])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    session.run(None, {node.name: feed[node.name] for node in session.get_inputs()})
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = {event["args"].get("op_name") for event in events if event.get("cat") == "Node"}
    assert "LayerNormalization" in kernels and "DynamicQuantizeMatMul" in kernels, kernels
    assert "SkipLayerNormalization" not in kernels
