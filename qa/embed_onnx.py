"""A faster embedder for index builds: the same model, exported to ONNX and quantised to int8 for ONNX Runtime.

The int8 model is made on this machine from the installed model files (never downloaded, never committed)
and kept in a cache folder keyed by the model's files, the recipe and the library versions; a missing one
is made again. Its vectors are close to, but not the same as, the fp32 model's (cosine about 0.99), so its
`model_id` differs and an index built with one is never queried with the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.embed import INT8_SUFFIX, default_model_path, model_id_for
from qa.errors import ModelNotFound

if TYPE_CHECKING:
    import onnxruntime

# Change the recipe whenever export, fusion or quantisation changes: it names the cached int8 model.
RECIPE = "bert-fused-no-skip-ln-dynamic-int8-per-channel-l0out-fp32-v2"
MODEL_FILE = "model_int8.onnx"
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
_LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime")
_KEEP_FP32 = ("layer.0/attention/output/dense/MatMul",)
# ONNX Runtime's fused SkipLayerNormalization CPU kernel took 12.5% of the int8 model's time; the plain Add
# and LayerNormalization it replaces take 3%: 18.6 against 17.0 passages/s per thread, as close to fp32.
_UNFUSED = ("SkipLayerNormFusion",)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/newsqa, else ~/.cache/newsqa: where the int8 model is cached when no cache_dir is given
    (Settings.cache_dir, $QA_CACHE_DIR)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsqa"


def cache_key(model_path: str | Path) -> str:
    """Digest of what decides the int8 file: the model's weights and config, the recipe, the library versions."""
    digest = hashlib.sha256(RECIPE.encode())
    for name in _SOURCE_FILES:
        file = Path(model_path) / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    for library in _LIBRARIES:
        digest.update(f"{library}=={_version(library)}".encode())
    return digest.hexdigest()[:16]


def int8_model_path(model_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cached int8 ONNX file for a model folder, made first if it is missing (about 20 s on two cores)."""
    folder = Path(cache_dir or default_cache_dir()) / f"{model_id_for(model_path)}-{cache_key(model_path)}"
    target = folder / MODEL_FILE
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        started = time.perf_counter()
        quantize_model(model_path, scratch / MODEL_FILE)
        manifest = {
            "source": str(Path(model_path).resolve()),
            "recipe": RECIPE,
            "libraries": {name: _version(name) for name in _LIBRARIES},
            "seconds": round(time.perf_counter() - started, 1),
        }
        (scratch / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for leftover in scratch.iterdir():  # only the int8 model and its manifest are kept
            if leftover.name not in {MODEL_FILE, "manifest.json"}:
                leftover.unlink()
        if folder.is_dir() and not target.is_file():
            shutil.rmtree(folder)  # a damaged earlier copy
        try:
            os.rename(scratch, folder)  # atomic: a reader sees no folder or a complete one
        except OSError:
            if not target.is_file():  # not a concurrent maker that got there first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def quantize_model(model_path: str | Path, out_file: Path) -> None:
    """Export the BERT encoder to ONNX, fuse it for ONNX Runtime's CPU kernels, and quantise its weights to int8."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    config = json.loads((Path(model_path) / "config.json").read_text())
    exported = out_file.with_name("fp32.onnx")
    fused = out_file.with_name("fused.onnx")
    with warnings.catch_warnings():  # tracer notes about shapes, fixed by the dynamic axes given
        warnings.simplefilter("ignore")
        _export_encoder(model_path, exported)
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False  # slower than what it fuses (see _UNFUSED)
    graph = optimizer.optimize_model(
        str(exported), model_type="bert", num_heads=config["num_attention_heads"], hidden_size=config["hidden_size"],
        opt_level=0, optimization_options=fusions,
    )  # fmt: skip
    graph.save_model_to_file(str(fused))
    # Per-channel weights: cosine to fp32 ~0.991 (per-tensor: 0.95). Layer 0's attention output projection
    # stays fp32: it is the one most hurt by int8 (cosine 0.994 without it) and costs ~1% of the time.
    keep_fp32 = [node.name for node in graph.model.graph.node if node.name.endswith(_KEEP_FP32)]
    advice = _DropAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            str(fused), str(out_file), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep_fp32,
            op_types_to_quantize=["MatMul", "Attention"], extra_options={"DefaultTensorType": 1},
        )  # fmt: skip
    finally:
        logging.getLogger().removeFilter(advice)
    exported.unlink()
    fused.unlink()


def open_session(model_file: Path, profile_prefix: str | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session over an int8 model file, one thread, all graph optimisations but `_UNFUSED`.

    One thread per call and one call per core: batches run side by side, no intra-op hand-offs.
    `profile_prefix` turns on ONNX Runtime's profiler, which writes its JSON under that prefix.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(
        str(model_file), options, ["CPUExecutionProvider"], disabled_optimizers=list(_UNFUSED)
    )


class OnnxInt8Embedder:
    """all-MiniLM-L6-v2 in int8 on ONNX Runtime: about twice the fp32 throughput on CPUs, cosine ~0.99 to fp32.

    Name, dimension and token counts come from the model folder; the int8 model is made (first time only)
    and loaded on the first `embed`, so that a build with nothing new to embed pays for neither.

    One text per model call by default: int8 activations are scaled per call, so a vector then depends on
    its text alone (not on its batch neighbours), nothing is padded, and on two AVX2 cores it is also the
    fastest (a 256-token passage's activations stay in cache).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 1,
        threads: int | None = None,
    ):
        self.path = Path(path or default_model_path())
        if not (self.path / "tokenizer.json").is_file() or not (self.path / "config.json").is_file():
            raise ModelNotFound(str(self.path))
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        _check_mean_pooling(self.path)
        from tokenizers import Tokenizer

        self.cache_dir = cache_dir
        self.model_id = f"{model_id_for(self.path)}{INT8_SUFFIX}"
        self.dimension = int(json.loads((self.path / "config.json").read_text())["hidden_size"])
        self.max_tokens = _max_seq_length(self.path)
        self.batch_size = batch_size
        self.threads = threads or len(os.sched_getaffinity(0))
        self.counter = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.counter.no_truncation()
        self.counter.no_padding()
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()  # each batch is padded to its own longest text below
        self.tokenizer.enable_truncation(self.max_tokens)  # the model's limit, [CLS] and [SEP] included
        self._session: onnxruntime.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None  # worker threads, one session each (`_workers`)
        self._local = threading.local()
        self._input_names: set[str] = set()

    @property
    def session(self) -> onnxruntime.InferenceSession:
        """The ONNX Runtime session over the cached int8 model, made on first use."""
        if self._session is None:
            self._session = self._new_session()
            self._input_names = {node.name for node in self._session.get_inputs()}
        return self._session

    def _new_session(self) -> onnxruntime.InferenceSession:
        return open_session(int8_model_path(self.path, self.cache_dir))

    def _workers(self) -> ThreadPoolExecutor:
        """The worker threads, made once, each with its own session (and memory arena), the first one being
        `session`: measured 32.0 against 31.0 passages/s with one session shared by both threads."""
        if self._pool is None:
            sessions = [self.session, *(self._new_session() for _ in range(self.threads - 1))]
            taking = threading.Lock()

            def bind() -> None:  # once per worker thread
                with taking:
                    self._local.session = sessions.pop()

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="int8-embed", initializer=bind)
        return self._pool

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return vectors
        session = self.session  # made (or loaded) here, once, rather than raced for by the worker threads
        encodings = self.tokenizer.encode_batch(list(texts))
        # Longest first: with batches of several texts, each holds similar lengths and little padding.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

        if len(batches) == 1:  # a question or a small article: no thread hand-off
            vectors[batches[0]] = self._embed_encoded(session, [encodings[i] for i in batches[0]])
            return vectors

        def run(rows: list[int]) -> None:
            vectors[rows] = self._embed_encoded(self._local.session, [encodings[i] for i in rows])

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), unit="passage", desc="embedding (int8)")
        for rows, _ in zip(batches, self._workers().map(run, batches), strict=True):
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
        return vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.counter.encode_batch(list(texts), add_special_tokens=False)]

    def _embed_encoded(self, session, encodings: list) -> np.ndarray:
        """Mean of the token vectors over the real tokens, scaled to unit length, as the model's pooling does."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens = session.run(None, {name: feed[name] for name in self._input_names})[0]
        weights = mask[:, :, None].astype(np.float32)
        means = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def _export_encoder(model_path: str | Path, file: Path) -> None:
    """The BERT encoder as ONNX: token ids, mask and segment ids in, one vector per token out."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    class Encoder(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return outputs.last_hidden_state

    # Eager attention traces to plain ops that ONNX Runtime fuses into its own Attention kernel.
    bar_was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # the weights load in a blink; no bar in a build's output
    try:
        bert = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager")
    finally:
        if bar_was_on:
            transformers_logging.enable_progress_bar()
    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0  # a padded row, so that tracing keeps the mask path
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            Encoder(bert.eval()), (ids, mask, torch.zeros_like(ids)), str(file), dynamo=False, opset_version=17,
            input_names=names, output_names=["token_embeddings"],
            dynamic_axes={name: axes for name in [*names, "token_embeddings"]},
        )  # fmt: skip


class _DropAdvice(logging.Filter):
    """Drops the quantiser's advice to pre-process the model: it is for static quantisation, not this."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


def _check_mean_pooling(path: Path) -> None:
    """Refuse a model folder whose pipeline is not encoder, mean pooling, normalise: only that is reproduced."""
    if not (path / "modules.json").is_file():
        return  # a bare transformers folder: sentence-transformers gives it mean pooling too
    modules = json.loads((path / "modules.json").read_text())
    kinds = [module.get("type", "").rsplit(".", 1)[-1] for module in modules]
    supported = kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"}
    if supported:
        pooling = path / modules[1].get("path", "") / "config.json"
        supported = not pooling.is_file() or json.loads(pooling.read_text()).get("pooling_mode_mean_tokens", False)
    if not supported:
        raise ValueError(f"{path}: the int8 embedder reproduces encoder + mean pooling only, not {kinds}")


def _max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.is_file() else 256


def _version(library: str) -> str:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "absent"
