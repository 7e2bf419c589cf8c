"""The answering contract: one request type, one result type, answerers chosen by name.

Every answerer (``extractive``, the default, in ``rag.extract``; ``heuristic``, the earlier
rule-based one, in ``rag.heuristic``; ``llm`` in ``rag.generate``) implements ``Answerer``:
it reads an ``AnswerRequest`` (the question, what was searched, its analysis and the retrieved
passages) and returns a ``Draft`` (the answer text with ``[n]`` markers and its citations, or a
refusal, plus notices and what a verifier removed). Answerers are registered by name, like
embedders, and built from ``AnswererParts``: the shared components they may need. This module
does not retrieve, score or write anything itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.analyze import QuestionAnalysis, QuestionAnalyzer
from rag.config import AnswerSettings
from rag.embed import Embedder
from rag.errors import ProviderError
from rag.schema import AnswerDelta, Citation, Passage, RemovedSentence

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.catalog import Catalog
    from rag.judge import AnswerJudge

NOT_FOUND = "I could not find the answer to this question in the articles."


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """Everything an answerer reads for one question.

    ``question`` is what the user typed; ``search_query`` what was searched (it differs for
    follow-ups and corrected names); ``analysis`` is the analysis of ``search_query``.
    ``after`` lists ``(article_id, quote)`` pairs already given for a "what did she say next?"
    follow-up: the answer continues after them instead of repeating them.
    """

    question: str
    search_query: str
    analysis: QuestionAnalysis
    passages: tuple[Passage, ...]
    query_vector: np.ndarray = field(compare=False)
    after: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Draft:
    """What every answerer returns: the text with markers and its citations, or a refusal.

    ``notices`` are short notes for the reader; ``removed`` lists what a verifier took out of
    a generated answer.
    """

    text: str
    refused: bool
    citations: tuple[Citation, ...]
    notices: tuple[str, ...] = ()
    removed: tuple[RemovedSentence, ...] = ()

    def with_notices(self, *notices: str) -> Draft:
        return Draft(
            self.text, self.refused, self.citations, (*self.notices, *notices), self.removed
        )


def refusal(reason: str = "", notices: tuple[str, ...] = ()) -> Draft:
    """The answer that declines, with an optional one-sentence reason."""
    return Draft(f"{NOT_FOUND} {reason}".strip(), True, (), notices)


@runtime_checkable
class Answerer(Protocol):
    """Answers one request; ``stream`` yields text pieces as they are written, then the
    final ``Draft``. An answerer that writes nothing piece by piece (the extractive one picks
    whole verbatim sentences in one step) yields only the ``Draft``: no replayed pieces."""

    def answer(self, request: AnswerRequest) -> Draft: ...

    def stream(self, request: AnswerRequest) -> Iterator[AnswerDelta | Draft]: ...


class AnswererParts:
    """The shared components an answerer may use, created once and only when asked for.

    ``judge`` is the trained answer model (``rag.judge``), ``analyzer`` the spaCy question
    analyzer, ``catalog`` the archive's article list and names, ``chat_model`` the LLM (a
    LangChain ``BaseChatModel``).
    """

    def __init__(
        self,
        settings: AnswerSettings,
        embedder: Embedder,
        analyzer: QuestionAnalyzer,
        *,
        judge: Callable[[], AnswerJudge],
        catalog: Callable[[], Catalog],
        chat_model: Callable[[], BaseChatModel],
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.analyzer = analyzer
        self._judge = judge
        self._catalog = catalog
        self._chat_model = chat_model

    def judge(self) -> AnswerJudge:
        return self._judge()

    def catalog(self) -> Catalog:
        return self._catalog()

    def chat_model(self) -> BaseChatModel:
        return self._chat_model()


AnswererFactory = Callable[[AnswererParts], Answerer]
_REGISTRY: dict[str, AnswererFactory] = {}


def register_answerer(name: str, factory: AnswererFactory) -> None:
    """Make ``factory`` available as ``AnswerSettings.answerer == name``."""
    _REGISTRY[name] = factory


def available_answerers() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create_answerer(name: str, parts: AnswererParts) -> Answerer:
    """The answerer registered as ``name``, built from ``parts``."""
    _load_builtin()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ProviderError(
            f"unknown answerer {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(parts)


def _load_builtin() -> None:
    """Import the built-in answerers, which register themselves."""
    import rag.extract
    import rag.generate
    import rag.heuristic  # noqa: F401


def stream_whole(draft: Draft) -> Iterator[AnswerDelta | Draft]:
    """The stream of an answerer that produces its draft in one step: the draft alone.
    (Splitting a finished answer into pieces would only pretend to stream.)"""
    yield draft
