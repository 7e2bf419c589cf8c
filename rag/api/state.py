"""What the routes share: the assistant(s), the keys and chat sessions, warm-up state, the
writer and the background jobs (``ApiState``), found by routes through ``api_state``.

Writes in this process take turns (``WriterQueue``, first come first served), so they queue
rather than fail on the index's file lock; another process writing the same index still gets
409. A background ingest (``ApiState.ingest`` with a progress) holds the writer as little as
it can: it goes in steps of at most ``STEP_CHUNKS`` chunks, embeds each step's new chunks
before it queues for the writer, and queues again for the next step, so a small write that
arrives meanwhile waits for one step's store writes, not for the whole upload. A step still
holds the writer while the store takes its chunks and the answer judge prepares their
sentences (``rag.index.ArticlePrep``), which grows with the step.

It holds no route and does not decide who may call what (``rag.api.security``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException

from rag.api.errors import one_line
from rag.api.jobs import Jobs, Progress
from rag.api.limits import AskGate
from rag.api.security import ApiKeys, Sessions
from rag.assistant import Assistant
from rag.chat_models import chat_model_configured
from rag.chunk import chunk_article
from rag.config import ServeSettings
from rag.embed import Embedder, Vectors
from rag.errors import IndexNotBuiltError, ProviderError
from rag.index import IngestReport, embedding_text
from rag.schema import Article
from rag.store import VectorStore

logger = logging.getLogger(__name__)

STEP_CHUNKS = 256  # chunks a background ingest writes per turn at the writer
EMBED_BATCH = 64  # texts embedded at a time before the writer is taken, between progress reports


class WriterQueue:
    """One writer at a time, served in the order they came. A plain lock promises no order:
    a job that releases it between steps could take it straight back, ahead of a small write
    that has been waiting."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    @property
    def waiting(self) -> int:
        """Writers waiting or writing."""
        with self._turns:
            return self._next_ticket - self._serving

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._turns.wait()
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()


class PrimedEmbedder:
    """An embedder answering first from vectors computed beforehand (by text), and from the
    model it wraps for anything else. Same model, same vectors: only the time they are made
    moves, out of the writer's turn."""

    def __init__(self, inner: Embedder, vectors: dict[str, np.ndarray]) -> None:
        self.inner = inner
        self.vectors = vectors

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def embed(self, texts: Sequence[str]) -> Vectors:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            computed = np.asarray(self.inner.embed(missing), dtype=np.float32)
            self.vectors.update(zip(missing, computed, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def _add(articles: Sequence[Article], embedder: Embedder, assistant: Assistant) -> IngestReport:
    return assistant.add_articles(articles, embedder=embedder)


def _sum_reports(reports: Sequence[IngestReport]) -> IngestReport:
    """One report for an ingest done in steps: counts add up; the total is the last step's."""
    if not reports:
        return IngestReport()
    counted = [f.name for f in dataclasses.fields(IngestReport)]
    summed = {
        name: sum(getattr(r, name) for r in reports)
        for name in counted
        if name not in ("total_chunks", "skipped")
    }
    skipped = tuple(s for r in reports for s in r.skipped)
    return IngestReport(**summed, total_chunks=reports[-1].total_chunks, skipped=skipped)


class ApiState:
    """The assistant(s), the keys and chat sessions, warm-up state, the writer and the jobs."""

    def __init__(self, assistant: Assistant, settings: ServeSettings, keys: ApiKeys) -> None:
        self.assistant = assistant
        self.settings = settings
        self.keys = keys
        self.sessions = Sessions()
        self.chat_title = "Sign in"
        self.jobs = Jobs()
        self.asks = AskGate(settings.max_concurrent_asks, settings.max_queued_asks)
        self.warmed = threading.Event()
        self.warm_up_error = ""
        self.writer = WriterQueue()  # one writer in this process; others queue
        self._others: dict[str, Assistant] = {}
        self._others_lock = threading.Lock()

    @property
    def store(self) -> VectorStore:
        return self.assistant.store

    def warm_up(self) -> None:
        try:
            self.assistant.warm_up()
        except IndexNotBuiltError:
            pass  # the model is loaded; /readyz reports the empty index
        except Exception as e:
            self.warm_up_error = one_line(str(e)) or type(e).__name__
            logger.exception("Warming up failed")
            return
        self.warmed.set()

    def assistant_for(self, answerer: str | None) -> Assistant:
        """The assistant for ``answerer``: the server's own, or a second one built on first use
        that shares its embedder and store."""
        if answerer is None or answerer == self.assistant.settings.answer.answerer:
            return self.assistant
        settings = self.assistant.settings
        if answerer == "llm" and not chat_model_configured(settings.llm):
            raise HTTPException(
                422,
                "answerer 'llm' is not available: no language model is configured"
                " (set RAG_LLM, RAG_LLM_BASE_URL or RAG_LLM_MODEL_PATH)",
            )
        with self._others_lock:
            if answerer not in self._others:
                self._others[answerer] = Assistant(
                    settings.replace(answerer=answerer), self.assistant.embedder, self.store
                )
            return self._others[answerer]

    def data_dir_gone(self) -> str:
        """Why the local index cannot be used any more ("" when it can): its data dir was
        removed under the running server. Writing then would recreate an empty folder beside
        a store that lost its files."""
        index = self.assistant.settings.index
        if index.chroma_url or index.data_dir.is_dir():
            return ""
        return (
            f"the data dir {index.data_dir} was removed while the server was running:"
            " restore it, or restart the server to start a new index"
        )

    def write(self, change: Callable[[Assistant], IngestReport]) -> IngestReport:
        """Run ``change(assistant)`` as the only writer, then let every assistant see it."""
        gone = self.data_dir_gone()
        if gone:
            raise ProviderError(gone)
        with self.writer.turn():
            report = change(self.assistant)
        with self._others_lock:
            others = list(self._others.values())
        for other in others:
            other.index_changed()
        return report

    def ingest(self, articles: Sequence[Article], progress: Progress | None = None) -> IngestReport:
        """Add or update ``articles`` as the only writer: in one turn when a request waits for
        the answer; in steps, embedding before each turn and reporting chunks embedded, when
        a job runs it (``progress`` given)."""
        if progress is None:
            return self.write(lambda assistant: assistant.add_articles(articles))
        steps = self._steps(articles)
        progress.total(sum(len(texts) for _, texts in steps))
        reports = []
        for step, texts in steps:
            embedder = self._embed_ahead(texts, progress)
            write = functools.partial(_add, step, embedder)
            reports.append(self.write(write))
        return _sum_reports(reports)

    def _steps(self, articles: Sequence[Article]) -> list[tuple[list[Article], list[str]]]:
        """``articles`` in steps of about ``STEP_CHUNKS`` chunks (an article is never split),
        each with the texts of its chunks that the store does not hold yet."""
        steps: list[tuple[list[Article], list[str]]] = []
        step: list[Article] = []
        texts: list[str] = []
        chunks_in_step = 0
        index = self.assistant.settings.index
        for article in articles:
            chunks = chunk_article(article, index.chunk_chars, index.chunk_overlap_sentences)
            stored = self.store.get_vectors([c.chunk_id for c in chunks])
            if step and chunks_in_step + len(chunks) > STEP_CHUNKS:
                steps.append((step, texts))
                step, texts, chunks_in_step = [], [], 0
            step.append(article)
            chunks_in_step += len(chunks)
            texts.extend(
                embedding_text(c, article.title) for c in chunks if c.chunk_id not in stored
            )
        if step:
            steps.append((step, texts))
        return steps

    def _embed_ahead(self, texts: Sequence[str], progress: Progress) -> PrimedEmbedder:
        """The vectors of ``texts``, made before the writer's turn, batch by batch."""
        embedder = PrimedEmbedder(self.assistant.embedder, {})
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            embedder.embed(batch)
            progress.advance(len(batch))
        return embedder


def api_state(request: Request) -> ApiState:
    """A route dependency: the app's shared state."""
    state: ApiState = request.app.state.api
    return state
