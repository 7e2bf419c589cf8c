"""The vector store: chunks, their vectors and metadata, in a Chroma collection.

``ChromaStore`` is the only code that talks to Chroma. It stores what the index stage gives
it and answers nearest-neighbour queries; it does not embed, chunk or decide what changed.
The collection's own metadata records the embedding model (so vectors from another model are
refused) and an ``index_version`` that changes on every write (so derived indexes, such as
the lexical one, know when to rebuild).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rag.config import Settings
from rag.errors import IndexNotBuiltError, ProviderError
from rag.schema import Chunk

Metadata = dict[str, str | int | float | bool]
Where = dict[str, Any]
_PAGE = 5000


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as read back from the store."""

    chunk_id: str
    text: str
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class DenseHit:
    chunk: StoredChunk
    similarity: float  # cosine similarity, -1..1


@contextmanager
def _server_errors(url: str) -> Iterator[None]:
    """A Chroma server that cannot be reached (refused, timed out, dropped connection) as a
    ``ProviderError`` (the API answers 503), not as a missing collection or an internal error."""
    import httpx  # what chromadb's HttpClient is built on

    try:
        yield
    except httpx.TransportError as e:
        raise ProviderError(f"cannot reach the Chroma server at {url}: {e}") from e


class _ServerCollection:
    """A collection of a Chroma server whose calls go through ``_server_errors``."""

    def __init__(self, collection: Any, url: str) -> None:
        self._collection = collection
        self._url = url

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._collection, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _server_errors(self._url):
                return value(*args, **kwargs)

        return call


class ChromaStore:
    """One Chroma collection holding every chunk of the corpus."""

    def __init__(
        self,
        connect: Callable[[], Any],
        collection_name: str,
        model_id: str,
        *,
        local: bool,
        server_url: str = "",
    ) -> None:
        """``connect`` makes a Chroma client; ``local`` says it is an embedded one, which
        must reconnect to see what another process wrote; ``server_url`` names the server
        of an HTTP client, for messages."""
        self._connect = connect
        self._server_url = server_url
        self._client = connect()
        self._name = collection_name
        self._model_id = model_id
        self._local = local
        self._collection: Any = None
        self._seen_version: str | None = None

    @classmethod
    def open(cls, settings: Settings, model_id: str) -> ChromaStore:
        """The store for ``settings``: the Chroma server at ``chroma_url`` when set, else a
        local persistent Chroma under ``data_dir``."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if settings.chroma_url:
            url = urlsplit(settings.chroma_url)
            https = url.scheme == "https"

            def connect_http() -> Any:
                return chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or (443 if https else 8000),
                    ssl=https,
                    settings=client_settings,
                )

            try:
                return cls(
                    connect_http,
                    settings.collection,
                    model_id,
                    local=False,
                    server_url=settings.chroma_url,
                )
            except Exception as e:
                raise ProviderError(
                    f"cannot reach the Chroma server at {settings.chroma_url}: {e}"
                ) from e

        def connect_local() -> Any:
            return chromadb.PersistentClient(
                path=str(settings.chroma_dir), settings=client_settings
            )

        try:
            settings.chroma_dir.mkdir(parents=True, exist_ok=True)
            return cls(connect_local, settings.collection, model_id, local=True)
        except Exception as e:
            raise ProviderError(
                f"cannot open the Chroma index at {settings.chroma_dir}: {e}"
            ) from e

    # -- collection ---------------------------------------------------------------------------

    def _existing(self) -> Any | None:
        if self._collection is None:
            try:
                with _server_errors(self._server_url):
                    collection = self._client.get_collection(self._name, embedding_function=None)
            except ProviderError:
                raise  # the server is down: not the same as no collection
            except Exception:  # chromadb raises NotFoundError/ValueError across versions
                return None
            self._collection = self._guarded(collection)
            self._check_model(self._collection)
        return self._collection

    def _writable(self) -> Any:
        collection = self._existing()
        if collection is None:
            with _server_errors(self._server_url):
                collection = self._client.get_or_create_collection(
                    self._name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedding_model": self._model_id, "index_version": "empty"},
                    embedding_function=None,
                )
            collection = self._collection = self._guarded(collection)
        return collection

    def _guarded(self, collection: Any) -> Any:
        return collection if self._local else _ServerCollection(collection, self._server_url)

    def _check_model(self, collection: Any) -> None:
        built_with = (collection.metadata or {}).get("embedding_model")
        if built_with and built_with != self._model_id:
            raise ProviderError(
                f"the index was built with embedding model {built_with!r} but {self._model_id!r}"
                " is configured; use the same model or a new --data-dir"
            )

    def require_built(self) -> None:
        if self.count() == 0:
            raise IndexNotBuiltError("the index is empty: run `rag ingest` first")

    @property
    def index_version(self) -> str:
        """The version this handle last saw (see ``current_version``)."""
        collection = self._existing()
        return str((collection.metadata or {}).get("index_version", "")) if collection else ""

    def current_version(self) -> str:
        """The version as stored now, which another process may have changed.

        An embedded Chroma keeps its vector segments in memory: after another process wrote,
        this process reconnects, or it would find the new records but not their vectors.
        """
        self._collection = None
        version = self.index_version
        if self._local and self._seen_version is not None and version != self._seen_version:
            self._reconnect()
            version = self.index_version
        self._seen_version = version
        return version

    def _reconnect(self) -> None:
        # Chroma shares one system per path within a process; drop ours so that connecting
        # again reloads the segments from disk. Other paths' clients are left alone.
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = SharedSystemClient._get_identifier_from_settings(self._client.get_settings())
        SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        self._client = self._connect()
        self._collection = None

    def bump_version(self) -> str:
        collection = self._writable()
        version = uuid.uuid4().hex
        metadata = {**(collection.metadata or {}), "index_version": version}
        collection.modify(metadata=metadata)
        self._seen_version = version  # our own write: no need to reconnect for it
        return version

    def count(self) -> int:
        collection = self._existing()
        return int(collection.count()) if collection else 0

    # -- reads ----------------------------------------------------------------------------------

    def iter_chunks(
        self, where: Where | None = None, with_text: bool = True
    ) -> Iterator[StoredChunk]:
        """Every stored chunk (matching ``where``), page by page."""
        collection = self._existing()
        if collection is None:
            return
        include = ["metadatas", "documents"] if with_text else ["metadatas"]
        offset = 0
        while True:
            page = collection.get(where=where, include=include, limit=_PAGE, offset=offset)
            ids = page["ids"]
            documents = page.get("documents") or [""] * len(ids)
            for chunk_id, text, metadata in zip(ids, documents, page["metadatas"], strict=True):
                yield StoredChunk(chunk_id, text or "", dict(metadata or {}))
            if len(ids) < _PAGE:
                return
            offset += _PAGE

    def chunks_by_article(self) -> dict[str, dict[str, Metadata]]:
        """Every stored chunk's metadata, grouped by article id, then by chunk id."""
        grouped: dict[str, dict[str, Metadata]] = {}
        for chunk in self.iter_chunks(with_text=False):
            article_id = str(chunk.metadata.get("article_id", ""))
            grouped.setdefault(article_id, {})[chunk.chunk_id] = chunk.metadata
        return grouped

    def get_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        collection = self._existing()
        if collection is None or not chunk_ids:
            return {}
        page = collection.get(ids=list(chunk_ids), include=["embeddings"])
        return {
            cid: np.asarray(vec, dtype=np.float32)
            for cid, vec in zip(page["ids"], page["embeddings"], strict=True)
        }

    def query(self, vector: np.ndarray, k: int, where: Where | None = None) -> list[DenseHit]:
        collection = self._existing()
        if collection is None:
            return []
        result = collection.query(
            query_embeddings=[vector.tolist()],
            n_results=k,
            where=where,
            include=["metadatas", "documents", "distances"],
        )
        return [
            DenseHit(StoredChunk(cid, text or "", dict(meta or {})), 1.0 - float(distance))
            for cid, text, meta, distance in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    # -- writes ---------------------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        self._writable().upsert(
            ids=[c.chunk_id for c in chunks],
            embeddings=vectors,
            documents=[c.text for c in chunks],
            metadatas=[c.metadata for c in chunks],
        )

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        if chunks:
            self._writable().update(
                ids=[c.chunk_id for c in chunks], metadatas=[c.metadata for c in chunks]
            )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        collection = self._existing()
        if collection is not None and chunk_ids:
            for start in range(0, len(chunk_ids), _PAGE):
                collection.delete(ids=list(chunk_ids[start : start + _PAGE]))
