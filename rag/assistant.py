"""The one core that the CLI, the chat UI and the HTTP API (``rag.api``) sit on.

``Assistant`` wires the stages together: it ingests paths (read -> chunk -> embed -> store ->
lexical index) and answers questions (validate -> resolve follow-ups -> retrieve -> answer ->
cite), returning one ``Answer`` with per-stage timings. A follow-up that leans on the previous
answer ("Why does the author think so?") is first asked of the articles that answer quoted,
then of the whole archive when they do not answer it. With ``answerer="llm"`` a chat model
rewrites follow-ups and writes the answer, which ``rag.generate`` verifies (falling back to the
extractive answer with a notice). Parts are handed in, so tests can build it from fakes;
``Assistant.open(settings)`` builds the real ones. It holds no UI or CLI logic.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag.analyze import DEMONYMS, QuestionAnalysis, QuestionAnalyzer, question_names
from rag.answer import (
    Answerer,
    AnswererParts,
    AnswerRequest,
    Draft,
    create_answerer,
)
from rag.catalog import Catalog
from rag.chat_models import create_chat_model
from rag.config import Settings
from rag.embed import Embedder, create_embedder, packaged_provider
from rag.errors import QuestionError
from rag.extract import JudgePrep
from rag.followup import Resolution, resolve_follow_up, rewrite_question
from rag.index import Indexer, IngestReport
from rag.judge import AnswerJudge, PreparingJudge, create_judge
from rag.lexical import LexicalSearch, open_lexical
from rag.rerank import rerank
from rag.retrieve import HybridRetriever, SearchFilters, SearchResult
from rag.schema import Answer, AnswerDelta, AnswerEvent, Article, Headline
from rag.store import VectorStore, open_store
from rag.vectors import VectorFile

if TYPE_CHECKING:  # LangChain is imported only when asked for (as_runnable, answerer llm)
    from langchain_core.language_models import BaseChatModel

    from rag.chain import AnswerRunnable

log = logging.getLogger(__name__)

NOT_ENGLISH = (
    "This question does not seem to be in English. The archive and the models that read it"
    " are English-only: please ask in English."
)
_NEAREST = 3
_META_INTENTS = ("author", "published", "publisher")


class Assistant:
    """Answers questions about the indexed articles, and keeps the index up to date."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore,
        chat_model: BaseChatModel | None = None,
        judge: AnswerJudge | None = None,
        analyzer: QuestionAnalyzer | None = None,
    ) -> None:
        """Parts not handed in are created on first use: the chat model (any LangChain
        ``BaseChatModel``; by default the one ``settings.llm`` names, only for
        ``answerer == "llm"``), the packaged trained answer judge, the spaCy question
        analyzer."""
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self._vectors: VectorFile | None = None
        self._vectors_failed = False
        self.analyzer = analyzer or QuestionAnalyzer(labels=self.vectors)
        self._chat_model = chat_model
        self._judge = judge
        self._answerer: Answerer | None = None
        self._parts_lock = threading.Lock()
        self._lexical: LexicalSearch | None = None
        self._catalog: Catalog | None = None
        self._lexical_lock = threading.Lock()
        self._version_checked_at = float("-inf")
        self.parts = AnswererParts(
            settings.answer,
            embedder,
            self.analyzer,
            judge=self.judge,
            catalog=self.catalog,
            chat_model=self.chat_model,
        )

    @classmethod
    def open(cls, settings: Settings, *, chat_model: BaseChatModel | None = None) -> Assistant:
        """The assistant with the configured embedder and the store under ``data_dir``;
        ``chat_model``, any LangChain chat model, stands in for the one the settings name."""
        embedder = create_embedder(settings.index)
        store = open_store(settings.index, embedder.model_id)
        built_with = store.built_with()
        provider = packaged_provider(built_with)
        if built_with != embedder.model_id and provider and not settings.index.embedding_model:
            # The index's vectors are one packaged model's: questions must be embedded, and
            # new articles added, with that model, whichever one a new index would get.
            log.info("the index was built with %s: embedding with it (%s)", built_with, provider)
            index = replace(settings.index, embedding_provider=provider)
            settings = replace(settings, index=index)
            embedder = create_embedder(index)
            store = open_store(index, embedder.model_id)
        return cls(settings, embedder, store, chat_model=chat_model)

    def warm_up(self) -> None:
        """Load everything a first question would (model weights, lexical index, catalogue,
        spaCy, the answer judge), so that the first chat answer is as fast as the rest."""
        self.embedder.embed(["warm up"])
        self.retriever()
        self.catalog().knows("warm")
        self.analyzer.analyze("Who warmed up?")
        self.analyzer.entity_labels(["Warming up on Monday."])
        if self.settings.answer.answerer in ("extractive", "llm"):
            self.judge().score("warm up?", ["warming up"])
        self.answerer()  # a bad chat model setting fails now, not on the first question

    @property
    def max_question_chars(self) -> int:
        return self.settings.answer.max_question_chars

    # -- indexing -------------------------------------------------------------------------------

    def ingest(
        self, paths: Sequence[Path], *, prune: bool = False, progress: bool = True
    ) -> IngestReport:
        """Read articles from ``paths`` and bring the index in line with them.

        Unreadable files are reported in ``IngestReport.skipped`` and change nothing stored.
        """
        from rag.ingest import read_articles

        result = read_articles(paths)
        indexer = self._indexer()
        report = indexer.sync(
            result.articles,
            prune=prune,
            keep_sources=[s.source.split("#", 1)[0] for s in result.skipped],
            progress=progress,
        )
        self.index_changed()
        return replace(report, skipped=tuple((s.source, s.reason) for s in result.skipped))

    def add_articles(
        self, articles: Sequence[Article], *, embedder: Embedder | None = None
    ) -> IngestReport:
        """Add or update ``articles`` (already read, e.g. from an HTTP request); others stay.

        ``embedder``, one of the same model, stands in for the assistant's own: the API's
        background ingests hand one that holds the vectors they computed before they took
        the writer, so that the writer is held for the store's writes, not the embedding."""
        report = self._indexer(embedder).sync(articles, progress=False)
        self.index_changed()
        return report

    def remove_articles(self, article_ids: Sequence[str]) -> IngestReport:
        """Remove the articles with ``article_ids`` from the index; unknown ids are ignored."""
        report = self._indexer().remove(article_ids)
        self.index_changed()
        return report

    def _indexer(self, embedder: Embedder | None = None) -> Indexer:
        """An indexer that also prepares what the answer judge reads (its sentence vectors),
        when the answerer uses a judge that can."""
        prep = None
        if self.settings.answer.answerer in ("extractive", "llm"):
            judge = self.judge()
            if isinstance(judge, PreparingJudge):
                prep = JudgePrep(judge, self.analyzer, self.vectors())
        return Indexer(self.settings.index, embedder or self.embedder, self.store, prep)

    def vectors(self) -> VectorFile | None:
        """The sentence vectors stored next to the index (``rag.vectors``), or None when the
        file cannot be opened (a read-only data dir): then they are embedded per question."""
        if self._vectors is None and not self._vectors_failed:
            try:
                self._vectors = VectorFile(self.settings.index.vectors_path)
            except (OSError, sqlite3.Error) as e:
                self._vectors_failed = True
                log.warning("sentence vectors not stored (%s): they are embedded per question", e)
        return self._vectors

    def index_changed(self) -> None:
        """Forget the cached lexical index, so that the next question loads the one that the
        last write derived (another assistant sharing the store calls this after writing)."""
        with self._lexical_lock:
            self._lexical = None
            self._version_checked_at = float("-inf")

    def chat_model(self) -> BaseChatModel:
        with self._parts_lock:
            if self._chat_model is None:
                self._chat_model = create_chat_model(self.settings.llm)
            return self._chat_model

    def judge(self) -> AnswerJudge:
        with self._parts_lock:
            if self._judge is None:
                self._judge = create_judge(self.settings.answer.judge, vectors=self.vectors())
            return self._judge

    def answerer(self) -> Answerer:
        """The answerer named by ``settings.answerer``, created on first use."""
        if self._answerer is None:
            built = create_answerer(self.settings.answer.answerer, self.parts)
            with self._parts_lock:
                self._answerer = self._answerer or built
        return self._answerer

    def catalog(self) -> Catalog:
        """The archive's articles and names, as of the current lexical index."""
        lexical = self._current_lexical()
        with self._lexical_lock:
            if self._catalog is None:
                self._catalog = Catalog.of_index(lexical)
            elif self._catalog.version != lexical.version:
                self._catalog = self._catalog.updated(lexical)
            return self._catalog

    def retriever(self) -> HybridRetriever:
        """Retrieval over the index as it is now: when another process (``rag ingest``, another
        server) changed it, the lexical index is reloaded or rebuilt, checked at most every
        ``refresh_interval_s`` so that questions do not pay a round trip each."""
        lexical = self._current_lexical()
        return HybridRetriever(self.settings.retrieval, self.embedder, self.store, lexical)

    def _current_lexical(self) -> LexicalSearch:
        """The lexical index, brought up to date when the store's version moved on: an
        ``fts5`` index applies only the articles that changed (shared by the processes of one
        data dir, followed from the store's change log by replicas with their own)."""
        with self._lexical_lock:
            now = time.monotonic()
            if now - self._version_checked_at >= self.settings.index.refresh_interval_s:
                self._version_checked_at = now
                version = self.store.current_version()
            else:
                version = self.store.index_version
            if self._lexical is None:
                self._lexical = open_lexical(self.settings.index, self.store)
            elif self._lexical.version != version:
                self._lexical = self._lexical.refreshed(self.store)
            return self._lexical

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
        UI must replace them with the final answer). The extractive answer is ready at once,
        so its stream is the final ``Answer`` alone.
        """
        yield from self._answer(question, history, filters, None, streaming=True)

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
            history[-self.settings.answer.max_history_turns :]
            if self.settings.answer.max_history_turns
            else []
        )
        filters = filters or SearchFilters()
        timings: dict[str, float] = {}
        notices: list[str] = []

        step = time.perf_counter()
        catalog = self.catalog()
        typed, question = question, catalog.truecased(question)
        history = [catalog.truecased(h) for h in history]
        first = self.analyzer.analyze(question)
        if not first.english:
            timings["total"] = _ms_since(started)
            yield self._final(typed, question, Draft(NOT_ENGLISH, True, ()), None, timings)
            return
        rewrite_started = time.perf_counter()
        resolution, model_failed = self._resolve(question, history)
        if self.settings.answer.answerer == "llm":
            timings["rewrite"] = _ms_since(rewrite_started)
        query = resolution.query
        analysis = first if not resolution.changed else self.analyzer.analyze(query)
        query, analysis, corrected = self._corrected(query, analysis)
        notices.extend(corrected)
        timings["analyze"] = _ms_since(step)

        if analysis.intent in (*_META_INTENTS, "fact") and not filters.publishers:
            catalog = self.catalog()
            outlets = (
                catalog.named_sources(query)
                if analysis.intent == "fact"
                else catalog.publishers_in(query)
            )
            if outlets:
                filters = replace(filters, publishers=tuple(outlets))
                notices.append(f"Searched only articles from {' and '.join(outlets)}.")
        after: tuple[tuple[str, str], ...] = ()
        if resolution.kind == "next" and resolution.previous:
            previous = self.ask(resolution.previous, (), filters, retrieval)
            after = tuple((c.article_id, c.quote) for c in previous.citations if c.kind == "quote")
        answerer = self.answerer()
        if model_failed:
            from rag.generate import MODEL_FAILED_NOTICE

            notices.append(MODEL_FAILED_NOTICE)
            answerer = create_answerer("extractive", self.parts)

        # A follow-up that leans on the previous answer ("Why does the author think so?",
        # "What did she say?") is first asked of the articles that answer quoted; the whole
        # archive only when they do not answer it.
        draft: Draft | None = None
        result: SearchResult | None = None
        step = time.perf_counter()
        focus = self._focus(resolution, analysis, filters, retrieval)
        if focus:
            # Within those articles the question needs no help from the one before: an
            # ellipsis is asked as typed, so a sentence is judged by what this question asks,
            # not by the previous question's words ("joined" searches carry both).
            asked = question if resolution.kind == "joined" else query
            own = first if resolution.kind == "joined" else analysis
            within = replace(filters, article_ids=tuple(focus))
            focused = self._retrieve(own, asked, within, retrieval)
            answering = time.perf_counter()
            attempt = answerer.answer(
                AnswerRequest(
                    question, asked, own, tuple(focused.passages), focused.query_vector, after
                )
            )
            if not attempt.refused:
                result, draft, query = focused, attempt, asked
                timings["answer"] = _ms_since(answering)
                titles = " and ".join(f"“{t}”" for t in dict.fromkeys(focus.values()) if t)
                notices.append(f"Searched the article the previous answer quoted: {titles}.")
            # The previous question asked again, the search within its articles, the attempt.
            timings["focus"] = _ms_since(step)
        if result is None:
            result = self._retrieve(analysis, query, filters, retrieval)
        timings.update(result.timings_ms)
        if draft is None:
            step = time.perf_counter()
            request = AnswerRequest(
                question, query, analysis, tuple(result.passages), result.query_vector, after
            )
            events = answerer.stream(request) if streaming else iter([answerer.answer(request)])
            for event in events:
                if isinstance(event, AnswerDelta):
                    yield event
                else:
                    draft = event
            timings["answer"] = _ms_since(step)
        assert draft is not None
        if resolution.changed and query.strip() != question.strip():
            notices.insert(0, f"Searched for: “{query}”.")
        draft = Draft(
            draft.text, draft.refused, draft.citations, (*notices, *draft.notices), draft.removed
        )
        timings["total"] = _ms_since(started)
        yield self._final(typed, query, draft, result, timings)

    def _focus(
        self,
        resolution: Resolution,
        analysis: QuestionAnalysis,
        filters: SearchFilters,
        retrieval: str | None,
    ) -> dict[str, str]:
        """The articles (id -> headline) the previous answer quoted, when this fact question
        leans on it through a pronoun or an ellipsis; none when it moves on to another name
        ("and in Japan?"), asks for what came next (handled by ``after``), or is already
        limited to some articles. Only for the extractive answerer: finding those articles
        asks the previous question again, which would cost a chat model a second generation
        (its rewrite of the follow-up already makes it a question of its own)."""
        if (
            self.settings.answer.answerer != "extractive"
            or resolution.kind not in ("substituted", "joined")
            or not resolution.previous
            or analysis.intent != "fact"
            or filters.article_ids
        ):
            return {}
        previous = self.ask(resolution.previous, (), filters, retrieval)
        if previous.refused:
            return {}
        return {c.article_id: c.title for c in previous.citations if c.kind == "quote"}

    def _resolve(self, question: str, history: Sequence[str]) -> tuple[Resolution, bool]:
        """What to search for, and whether the chat model failed trying to rewrite it."""
        if self.settings.answer.answerer != "llm" or not history:
            return resolve_follow_up(question, history, self.analyzer), False
        resolution = rewrite_question(
            self.chat_model(),
            question,
            history,
            self.analyzer,
            max_chars=self.max_question_chars,
        )
        return resolution, resolution.model_failed

    def _corrected(
        self, query: str, analysis: QuestionAnalysis
    ) -> tuple[str, QuestionAnalysis, list[str]]:
        """``query`` with names the archive spells differently corrected ("Devoss" ->
        "DeVos"), its analysis, and the notice that says so."""
        # Nationality adjectives are not misspelt places ("Asian" is not "Asia").
        adjectives = {
            w.lower() for e in analysis.entities if e.label == "NORP" for w in e.text.split()
        }
        names = [e.text for e in analysis.entities if e.label not in ("DATE", "TIME", "NORP")]
        corrections = [
            c
            for c in self.catalog().correct([*names, *question_names(query)])
            if c.typed.lower() not in adjectives and c.typed.lower() not in DEMONYMS
        ]
        if not corrections:
            return query, analysis, []
        fixed = query
        for c in {c.typed: c for c in corrections}.values():
            fixed = re.sub(rf"(?<!\w){re.escape(c.typed)}(?!\w)", c.meant, fixed)
        shown = ", ".join(dict.fromkeys(c.meant for c in corrections))
        typed = ", ".join(dict.fromkeys(c.typed for c in corrections))
        notice = f"Showing results for {shown} (the question says “{typed}”)."
        return fixed, self.analyzer.analyze(fixed), [notice]

    def _retrieve(
        self,
        analysis: QuestionAnalysis,
        query: str,
        filters: SearchFilters,
        retrieval: str | None,
    ) -> SearchResult:
        retriever = self.retriever()
        if analysis.intent in _META_INTENTS:
            return retriever.search(analysis.topic or query, filters=filters, mode=retrieval)
        if analysis.intent != "fact":
            from rag.digest import gather

            return gather(retriever, self.catalog(), analysis, query, filters, retrieval)
        k, depth = self.settings.retrieval.top_k, self.settings.retrieval.rerank_depth
        if depth <= k or self.settings.answer.answerer == "heuristic":
            return retriever.search(query, filters=filters, mode=retrieval, spread=False)
        result = retriever.search(query, k=depth, filters=filters, mode=retrieval, spread=False)
        started = time.perf_counter()
        passages = rerank(self.judge(), query, result.passages, k)
        return replace(
            result,
            passages=passages,
            timings_ms={**result.timings_ms, "rerank": _ms_since(started)},
        )

    def _final(
        self,
        question: str,
        query: str,
        draft: Draft,
        result: SearchResult | None,
        timings: dict[str, float],
    ) -> Answer:
        passages = tuple(result.passages) if result else ()
        nearest: tuple[Headline, ...] = ()
        if draft.refused and passages:
            seen: dict[str, Headline] = {}
            for p in passages:
                if p.article_id not in seen and len(seen) < _NEAREST:
                    seen[p.article_id] = Headline(p.article_id, p.title, p.date, p.publisher, p.url)
            nearest = tuple(seen.values())
        return Answer(
            question=question,
            answer=draft.text,
            refused=draft.refused,
            citations=draft.citations,
            passages=passages,
            timings_ms=timings,
            search_query=query,
            notices=draft.notices,
            removed=draft.removed,
            nearest=nearest,
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

    def as_runnable(self) -> AnswerRunnable:
        """This assistant as a LangChain runnable (``rag.chain``): ``invoke`` returns the
        ``rag ask --json`` object, ``stream`` its text pieces and then that object, and
        ``as_tool()`` makes it a tool for an agent."""
        from rag.chain import as_runnable  # here: LangChain stays off the core's import path

        return as_runnable(self)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
