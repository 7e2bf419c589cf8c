"""Hybrid retrieval: dense search in Chroma plus BM25, fused (``rag.fuse``).

``HybridRetriever.search`` returns ``Passage`` objects ranked by the fusion of the two lists
(or one list, in ``dense``/``lexical`` mode), each with the query's cosine similarity
to it (the evidence strength the answerer uses to decide whether to answer at all).
``as_langchain_retriever`` wraps it as a LangChain ``BaseRetriever``. Filters are the store's
neutral ``SearchFilters`` (importable from here too); this module never writes a store's
dialect. It does not choose answer sentences or decide to refuse.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.analyze import lexical_query
from rag.config import RetrievalSettings
from rag.embed import Embedder
from rag.fuse import FusionParams, fused_scores
from rag.lexical import LexicalSearch
from rag.schema import Passage
from rag.store import DenseHit, StoredChunk, VectorStore
from rag.store import SearchFilters as SearchFilters  # callers may import it from here

if TYPE_CHECKING:
    from langchain_core.retrievers import BaseRetriever


# Filtered dense search (``HybridRetriever.dense``): exact below this many chunks passing
# (about 50 us a vector read by id), nearest-then-filtered above this share of the archive.
EXACT_LIMIT = 1_000
POST_FILTER_SHARE = 0.02


@dataclass(slots=True)
class SearchResult:
    passages: list[Passage]
    query_vector: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class HybridRetriever:
    """Dense + lexical retrieval over one store."""

    def __init__(
        self,
        settings: RetrievalSettings,
        embedder: Embedder,
        store: VectorStore,
        lexical: LexicalSearch,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.lexical = lexical
        self.fusion = fusion_params(settings)

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        mode: str | None = None,
        *,
        spread: bool = True,
    ) -> SearchResult:
        """The ``k`` best passages for ``query``. ``spread=False`` ranks them by fused score
        alone, without holding back an article's later chunks (``same_article_decay``): the
        pool a fact question's answer is chosen from, where one article's several chunks are
        often all evidence."""
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval
        filters = filters or SearchFilters()
        n = self.settings.candidates
        timings: dict[str, float] = {}

        started = time.perf_counter()
        vector = self.embedder.embed([query])[0]
        timings["embed_query"] = _ms_since(started)

        dense: list[tuple[StoredChunk, float]] = []
        if mode in ("hybrid", "dense"):
            started = time.perf_counter()
            hits = self.dense(vector, n, filters)
            dense = [(h.chunk, h.similarity) for h in hits]
            timings["dense_search"] = _ms_since(started)

        lexical: list[tuple[StoredChunk, float]] = []
        if mode in ("hybrid", "lexical"):
            started = time.perf_counter()
            found = self.lexical.search(lexical_query(query), n, None if filters.empty else filters)
            # The BM25 copy may predate a write in progress: only committed versions count,
            # as in dense search (``VectorStore.shown``), so the two never mix versions.
            shown = {c.chunk_id for c in self.store.shown([h.chunk for h in found])}
            lexical = [(h.chunk, h.score) for h in found if h.chunk.chunk_id in shown]
            timings["lexical_search"] = _ms_since(started)

        started = time.perf_counter()
        passages = self._fuse(dense, lexical, vector, k, spread)
        timings["fuse"] = _ms_since(started)
        return SearchResult(passages, vector, timings)

    def dense(
        self, vector: np.ndarray, n: int, filters: SearchFilters | None = None
    ) -> list[DenseHit]:
        """The ``n`` shown chunks nearest to ``vector`` that ``filters`` accept. Under a
        filter, the search is planned on what the lexical index counts (its fields are
        indexed; a vector store's metadata filter at 200k chunks took 1.3 s):

        - few chunks pass (at most ``EXACT_LIMIT``): their vectors, compared exactly (the
          lexical segment's float16 copies rank them, the store reads the rest and the
          winners);
        - many pass (a share ``s`` of at least ``POST_FILTER_SHARE``): the ``2n/s`` nearest,
          those the lexical index accepts, about ``2n`` expected;
        - otherwise, or when that found fewer than ``n``: the store's own filtered search.

        The plan reads the lexical index, which may trail the store by a change that it
        has not yet followed: a chunk written since is found once it has.
        """
        if filters is None or filters.empty:
            return self.store.query(vector, n)
        match = self.lexical.matching(filters, EXACT_LIMIT)
        if match.chunk_ids is not None:
            return self.store.query_among(vector, n, match.chunk_ids, match.vectors)
        share = match.count / max(match.total, 1)
        if share >= POST_FILTER_SHARE:
            depth = math.ceil(2 * n / share)
            kept = self.store.query_kept(
                vector, n, depth, lambda ids: self.lexical.accepted(ids, filters)
            )
            if kept is not None:
                return kept
        return self.store.query(vector, n, filters)

    def _fuse(
        self,
        dense: list[tuple[StoredChunk, float]],
        lexical: list[tuple[StoredChunk, float]],
        vector: np.ndarray,
        k: int,
        spread: bool = True,
    ) -> list[Passage]:
        chunks = {chunk.chunk_id: chunk for chunk, _ in (*dense, *lexical)}
        params = self.fusion if spread else replace(self.fusion, same_article_decay=1.0)
        fused = fused_scores(_ranked(dense), _ranked(lexical), params)[:k]
        similarity = {chunk.chunk_id: score for chunk, score in dense}
        bm25 = {chunk.chunk_id: score for chunk, score in lexical}
        # Lexical-only hits still need their cosine similarity: it is the evidence strength.
        # The store's vectors; for chunks it cannot read yet (a replica whose vector index
        # is reloading after another process wrote), the lexical index's float16 copies.
        missing = [cid for cid, _ in fused if cid not in similarity]
        stored = self.store.get_vectors(missing)
        unread = [cid for cid in missing if cid not in stored]
        copies = self.lexical.vector_copies(unread) if unread else {}
        for cid, stored_vector in (*stored.items(), *copies.items()):
            if stored_vector.shape == vector.shape:
                similarity[cid] = float(np.dot(np.asarray(stored_vector, np.float32), vector))
        return [
            passage_from_chunk(chunks[cid], score, similarity.get(cid), bm25.get(cid))
            for cid, score in fused
        ]


def fusion_params(settings: RetrievalSettings) -> FusionParams:
    """The fusion ``settings`` ask for (``fusion``, ``dense_weight``, ``rrf_k``, ``candidates``)."""
    scores = settings.fusion == "scores"
    return FusionParams(
        method=settings.fusion,
        rrf_k=settings.rrf_k,
        dense_weight=settings.dense_weight if scores else 1.0,
        lexical_weight=1.0 - settings.dense_weight if scores else 1.0,
        depth=settings.candidates,
        same_article_decay=settings.same_article_decay,
    )


def _ranked(hits: list[tuple[StoredChunk, float]]) -> list[tuple[str, str, float]]:
    return [(c.chunk_id, str(c.metadata.get("article_id", "")), s) for c, s in hits]


def passage_from_chunk(
    chunk: StoredChunk,
    score: float = 0.0,
    dense_score: float | None = None,
    lexical_score: float | None = None,
) -> Passage:
    """A stored chunk as a ``Passage`` carrying its article's metadata and the given scores."""
    meta = chunk.metadata
    return Passage(
        chunk_id=chunk.chunk_id,
        article_id=str(meta.get("article_id", "")),
        text=chunk.text,
        title=str(meta.get("title", "")),
        author=str(meta.get("author", "")),
        date=str(meta.get("date", "")),
        publisher=str(meta.get("publisher", "")),
        url=str(meta.get("url", "")),
        start=int(meta.get("start", 0) or 0),
        end=int(meta.get("end", 0) or 0),
        score=score,
        dense_score=dense_score,
        lexical_score=lexical_score,
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def passage_to_document(passage: Passage) -> Any:
    """A LangChain ``Document`` carrying the passage text and all of its metadata."""
    from langchain_core.documents import Document

    metadata = {name: getattr(passage, name) for name in Passage.__slots__ if name != "text"}
    return Document(page_content=passage.text, metadata=metadata, id=passage.chunk_id)


def as_langchain_retriever(
    retriever: HybridRetriever, k: int | None = None, filters: SearchFilters | None = None
) -> BaseRetriever:
    """``retriever`` as a LangChain ``BaseRetriever``, to plug into any LangChain chain."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class NewsroomRetriever(BaseRetriever):
        """Hybrid (dense + BM25) retrieval over the newsroom index."""

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            result = retriever.search(query, k=k, filters=filters)
            return [passage_to_document(p) for p in result.passages]

    return NewsroomRetriever()
