"""The LLM answerer: a LangChain chat model writes the answer, the verifier decides what is shown.

``LLMAnswerer`` takes any LangChain ``BaseChatModel`` (``rag.chat_models`` builds one from the
settings: ``ChatOpenAI`` for an OpenAI-compatible endpoint, xllamacpp for a local GGUF, or what
``init_chat_model`` knows) and answers from the retrieved passages in four steps:

1. It asks the extractive answerer first, whose trained answer judge is the gate: when it
   declines (no sentence answers), the model is not called at all and the refusal stands.
   Questions about articles themselves and broad digests are answered extractively too.
2. It renders the prompts (``rag/prompts/system.txt``, ``answer.txt``, ``passage.txt``) with the
   passages numbered [1]..[k] as a system and a human message, and asks the chat model, whole
   (``answer``: ``invoke``) or streamed (``stream``, which yields an ``AnswerDelta`` per text
   piece the model streams).
3. ``rag.verify`` checks every sentence; unsupported ones are removed and reported, markers are
   renumbered and each cited passage gets a verbatim quote. A reply that says it does not know
   is a refusal.
4. When the model fails (unreachable, timeout, HTTP error, empty or malformed reply, any
   exception of the provider) or too little of its answer survives (e.g. no sentence cites a
   passage), the extractive answer is returned with a short notice; the error is logged, never
   raised. Timeouts and retries are the chat model's own options.

Follow-ups are rewritten in ``rag.followup``. This module does not retrieve, and it never
shows text the verifier has not passed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from rag.answer import (
    NOT_FOUND,
    Answerer,
    AnswererParts,
    AnswerRequest,
    Draft,
    create_answerer,
    register_answerer,
)
from rag.chat_models import ChatModelError, generate_text, stream_text
from rag.config import AnswerSettings
from rag.prompts import PROMPTS_DIR, render_prompt
from rag.schema import AnswerDelta, Passage
from rag.verify import verify_answer

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

# What the prompt asks the model to say when the passages do not answer.
DONT_KNOW = "I don't know."
MODEL_FAILED_NOTICE = (
    "The language model could not be used for this question, so this answer quotes the"
    " articles directly."
)
UNVERIFIED_NOTICE = (
    "The generated answer could not be checked against the articles, so this answer quotes"
    " them directly."
)


class LLMAnswerer:
    """Answers with a chat model; every answer passes ``rag.verify`` before it is returned."""

    def __init__(
        self,
        settings: AnswerSettings,
        chat_model: BaseChatModel,
        extractive: Answerer,
        prompts_dir: Path = PROMPTS_DIR,
    ) -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.extractive = extractive
        self.prompts_dir = prompts_dir

    def messages(self, question: str, passages: Sequence[Passage]) -> list[BaseMessage]:
        """The system rules and the question with its passages numbered [1]..[k]."""
        numbered = "\n\n".join(
            render_prompt(
                "passage",
                self.prompts_dir,
                n=n,
                title=" ".join(p.title.split()) or "Untitled",
                date=p.date or "undated",
                text=p.text.strip(),
            )
            for n, p in enumerate(passages, start=1)
        )
        sentences = self.settings.max_answer_sentences
        system = render_prompt(
            "system", self.prompts_dir, not_found=DONT_KNOW, max_sentences=sentences
        )
        user = render_prompt(
            "answer",
            self.prompts_dir,
            passages=numbered,
            question=question,
            not_found=DONT_KNOW,
            max_sentences=sentences,
        )
        return [SystemMessage(system), HumanMessage(user)]

    def answer(self, request: AnswerRequest, *, use_model: bool = True) -> Draft:
        """The verified answer, the extractive one with a notice, or a refusal."""
        result: Draft | None = None
        for event in self._run(request, use_model, False):
            if isinstance(event, Draft):
                result = event
        assert result is not None
        return result

    def stream(
        self, request: AnswerRequest, *, use_model: bool = True
    ) -> Iterator[AnswerDelta | Draft]:
        """The model's text pieces as they arrive, then the verified ``Draft``."""
        yield from self._run(request, use_model, True)

    def _run(
        self, request: AnswerRequest, use_model: bool, streaming: bool
    ) -> Iterator[AnswerDelta | Draft]:
        extractive = self.extractive.answer(request)
        if extractive.refused or request.analysis.intent != "fact" or request.after:
            yield extractive  # no evidence: the model is not asked; records and digests quote
            return
        if not use_model:
            yield extractive.with_notices(MODEL_FAILED_NOTICE)
            return
        messages = self.messages(request.search_query, request.passages)
        try:
            if streaming:
                pieces: list[str] = []
                for piece in stream_text(self.chat_model, messages):
                    pieces.append(piece)
                    yield AnswerDelta(piece)
                reply = "".join(pieces)
            else:
                reply = generate_text(self.chat_model, messages)
        except ChatModelError as e:
            logger.warning("the chat model failed (%s); answering extractively", e)
            yield extractive.with_notices(MODEL_FAILED_NOTICE)
            return
        except Exception:  # a provider bug must not take the app down either
            logger.exception("the chat model raised an unexpected error; answering extractively")
            yield extractive.with_notices(MODEL_FAILED_NOTICE)
            return
        yield self._verified(reply, request.passages, extractive)

    def _verified(self, reply: str, passages: Sequence[Passage], extractive: Draft) -> Draft:
        verification = verify_answer(reply, passages)
        for item in verification.removed:
            logger.info("verifier removed %r: %s", item.sentence, item.reason)
        if verification.declined:
            return Draft(NOT_FOUND, True, (), (), verification.removed)
        if not verification.usable:
            logger.warning(
                "too little of the generated answer was supported (%d kept, %d removed);"
                " answering extractively",
                verification.kept,
                len(verification.removed),
            )
            return Draft(
                extractive.text,
                extractive.refused,
                extractive.citations,
                (*extractive.notices, UNVERIFIED_NOTICE),
                verification.removed,
            )
        notices = (removed_notice(len(verification.removed)),) if verification.removed else ()
        return Draft(
            verification.text, False, verification.citations, notices, verification.removed
        )


def removed_notice(count: int) -> str:
    """The note shown when the verifier removed ``count`` sentences of a generated answer."""
    if count == 1:
        return "1 sentence of the generated answer was removed: the articles do not support it."
    return (
        f"{count} sentences of the generated answer were removed: the articles do not support them."
    )


def _build(parts: AnswererParts) -> LLMAnswerer:
    return LLMAnswerer(parts.settings, parts.chat_model(), create_answerer("extractive", parts))


register_answerer("llm", _build)
