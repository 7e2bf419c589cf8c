"""The one core that the CLI, the chat UI and the HTTP API (``rag.api``) sit on.

``Assistant`` wires the stages together: it ingests paths (read -> chunk -> embed -> store ->
lexical index) and answers questions (validate -> resolve follow-ups -> retrieve -> answer ->
cite), returning one ``Answer`` with per-stage timings. With ``answerer="llm"`` a chat model
rewrites follow-ups and writes the answer, which ``rag.generate`` verifies (falling back to the
extractive answer with a notice). Parts are handed in, so tests can build it from fakes;
``Assistant.open(settings)`` builds the real ones. It holds no UI or CLI logic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from rag.answer import ExtractiveAnswerer, resolve_follow_up
from rag.config import Settings
from rag.embed import Embedder, create_embedder
from rag.errors import QuestionError
from rag.generate import Generated, LLMAnswerer, Rewrite, rewrite_question
from rag.index import Indexer, IngestReport
from rag.lexical import LexicalIndex
from rag.llm import ChatModel, create_chat_model
from rag.retrieve import HybridRetriever, SearchFilters
from rag.schema import Answer, AnswerDelta, AnswerEvent, Article
from rag.store import ChromaStore


class Assistant:
    """Answers questions about the indexed articles, and keeps the index up to date."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        chat_model: ChatModel | None = None,
    ) -> None:
        """``chat_model`` is used when ``settings.answerer == "llm"``; without one, the model
        named by ``settings.llm_provider`` is created on first use (not for ``ingest``)."""
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.answerer = ExtractiveAnswerer(settings, embedder)
        self._chat_model = chat_model
        self._generator: LLMAnswerer | None = None
        self._chat_lock = threading.Lock()
        self._lexical: LexicalIndex | None = None
        self._lexical_lock = threading.Lock()
        self._version_checked_at = float("-inf")

    @classmethod
    def open(cls, settings: Settings) -> Assistant:
        """The assistant with the configured embedder and the store under ``data_dir``."""
        embedder = create_embedder(settings)
        return cls(settings, embedder, ChromaStore.open(settings, embedder.model_id))

    def warm_up(self) -> None:
        """Load everything a first question would (model weights, lexical index), so that
        the first chat answer is as fast as the rest."""
        self.embedder.embed(["warm up"])
        self.retriever()
        self.generator()  # a bad chat model setting fails now, not on the first question

    @property
    def max_question_chars(self) -> int:
        return self.settings.max_question_chars

    # -- indexing -------------------------------------------------------------------------------

    def ingest(
        self, paths: Sequence[Path], *, prune: bool = False, progress: bool = True
    ) -> IngestReport:
        """Read articles from ``paths`` and bring the index in line with them.

        Unreadable files are reported in ``IngestReport.skipped`` and change nothing stored.
        """
        from rag.ingest import read_articles

        result = read_articles(paths)
        indexer = Indexer(self.settings, self.embedder, self.store)
        report = indexer.sync(
            result.articles,
            prune=prune,
            keep_sources=[s.source.split("#", 1)[0] for s in result.skipped],
            progress=progress,
        )
        self.index_changed()
        return replace(report, skipped=tuple((s.source, s.reason) for s in result.skipped))

    def add_articles(self, articles: Sequence[Article]) -> IngestReport:
        """Add or update ``articles`` (already read, e.g. from an HTTP request); others stay."""
        report = Indexer(self.settings, self.embedder, self.store).sync(articles, progress=False)
        self.index_changed()
        return report

    def remove_articles(self, article_ids: Sequence[str]) -> IngestReport:
        """Remove the articles with ``article_ids`` from the index; unknown ids are ignored."""
        report = Indexer(self.settings, self.embedder, self.store).remove(article_ids)
        self.index_changed()
        return report

    def index_changed(self) -> None:
        """Forget the cached lexical index, so that the next question loads the one that the
        last write derived (another assistant sharing the store calls this after writing)."""
        with self._lexical_lock:
            self._lexical = None
            self._version_checked_at = float("-inf")

    def generator(self) -> LLMAnswerer | None:
        """The LLM answerer when ``answerer == "llm"``, its chat model created on first use."""
        if self.settings.answerer != "llm":
            return None
        with self._chat_lock:
            if self._generator is None:
                model = self._chat_model or create_chat_model(self.settings)
                self._generator = LLMAnswerer(self.settings, model, self.answerer)
            return self._generator

    def retriever(self) -> HybridRetriever:
        """Retrieval over the index as it is now: when another process (``rag ingest``, another
        server) changed it, the lexical index is reloaded or rebuilt, checked at most every
        ``refresh_interval_s`` so that questions do not pay a round trip each."""
        with self._lexical_lock:
            now = time.monotonic()
            if now - self._version_checked_at >= self.settings.refresh_interval_s:
                self._version_checked_at = now
                version = self.store.current_version()
            else:
                version = self.store.index_version
            if self._lexical is None or self._lexical.version != version:
                self._lexical = LexicalIndex.load_or_build(self.settings.lexical_dir, self.store)
            lexical = self._lexical
        return HybridRetriever(self.settings, self.embedder, self.store, lexical)

    # -- answering ------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        history: Sequence[str] = (),
        filters: SearchFilters | None = None,
        retrieval: str | None = None,
    ) -> Answer:
        """Answer ``question``; ``history`` holds the earlier user questions, oldest first."""
        for event in self._answer(question, history, filters, retrieval, streaming=False):
            if isinstance(event, Answer):
                return event
        raise AssertionError("answering ended without an answer")  # pragma: no cover

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        filters: SearchFilters | None = None,
    ) -> Iterator[AnswerEvent]:
        """The answer as it is produced: text pieces, then the final ``Answer``.

        With the LLM answerer the pieces are the model's tokens as they arrive (unverified: a
        UI must replace them with the final answer). The extractive answer is ready at once;
        it is streamed sentence by sentence so every answerer looks the same to a UI.
        """
        if self.settings.answerer == "llm":
            yield from self._answer(question, history, filters, None, streaming=True)
            return
        answer = self.ask(question, history, filters)
        pieces = answer.answer.split("] ")
        for i, piece in enumerate(pieces):
            yield AnswerDelta(piece + ("] " if i < len(pieces) - 1 else ""))
        yield answer

    def _answer(
        self,
        question: str,
        history: Sequence[str],
        filters: SearchFilters | None,
        retrieval: str | None,
        *,
        streaming: bool,
    ) -> Iterator[AnswerEvent]:
        started = time.perf_counter()
        question = self.validate_question(question)
        history = [h.strip()[: self.max_question_chars] for h in history if h and h.strip()]
        history = (
            history[-self.settings.max_history_turns :] if self.settings.max_history_turns else []
        )
        generator = self.generator()
        timings: dict[str, float] = {}
        if generator is None:
            rewrite = Rewrite(resolve_follow_up(question, history))
        else:
            rewrite_started = time.perf_counter()
            rewrite = rewrite_question(
                generator.chat_model, question, history, max_chars=self.max_question_chars
            )
            timings["rewrite"] = (time.perf_counter() - rewrite_started) * 1000.0
        search_query = rewrite.query

        result = self.retriever().search(search_query, filters=filters, mode=retrieval)
        timings = {**result.timings_ms, **timings}

        answer_started = time.perf_counter()
        if generator is None:
            draft = self.answerer.answer(
                question, search_query, result.passages, result.query_vector
            )
            generated = Generated.from_draft(draft)
        else:
            # A model rewrite stands for the question; a joined fallback does not.
            asked = search_query if rewrite.by_model else question
            args = (asked, search_query, result.passages, result.query_vector)
            use_model = not rewrite.model_failed
            if streaming:
                final: Generated | None = None
                for event in generator.stream(*args, use_model=use_model):
                    if isinstance(event, AnswerDelta):
                        yield event
                    else:
                        final = event
                assert final is not None
                generated = final
            else:
                generated = generator.answer(*args, use_model=use_model)
        timings["answer"] = (time.perf_counter() - answer_started) * 1000.0
        timings["total"] = (time.perf_counter() - started) * 1000.0
        yield Answer(
            question=question,
            answer=generated.text,
            refused=generated.refused,
            citations=generated.citations,
            passages=tuple(result.passages),
            timings_ms=timings,
            search_query=search_query,
            notices=generated.notices,
            removed=generated.removed,
        )

    def validate_question(self, question: str) -> str:
        question = (question or "").strip()
        if not question:
            raise QuestionError("Please type a question.")
        if len(question) > self.max_question_chars:
            raise QuestionError(
                f"The question is {len(question)} characters long; the limit is"
                f" {self.max_question_chars}. Please shorten it."
            )
        return question
