"""The LLM answerer: a chat model writes the answer, the verifier decides what is shown.

``LLMAnswerer`` answers from the retrieved passages in four steps:

1. It asks the extractive answerer first. When that declines (no strong evidence), the model is
   not called at all: the refusal stands.
2. It renders the prompts (``prompts/system.txt``, ``answer.txt``, ``passage.txt``) with the
   passages numbered [1]..[k] and asks the chat model, whole (``answer``) or streamed
   (``stream``, which yields an ``AnswerDelta`` per text piece).
3. ``rag.verify`` checks every sentence; unsupported ones are removed and reported, markers are
   renumbered and each cited passage gets a verbatim quote. A reply that says it does not know
   is a refusal.
4. When the model fails (unreachable, timeout, HTTP error, empty or malformed reply) or too
   little of its answer survives (e.g. no sentence cites a passage), the extractive answer is
   returned with a short notice; the error is logged, never raised.

``rewrite_question`` turns a follow-up ("What did she say?") into a standalone question with
the model, and falls back to ``rag.answer.resolve_follow_up`` when it cannot. This module does
not retrieve, and it never shows text the verifier has not passed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer import NOT_FOUND, Draft, ExtractiveAnswerer, is_follow_up, resolve_follow_up
from rag.config import Settings
from rag.llm import ChatMessage, ChatModel, ChatModelError
from rag.prompts import PROMPTS_DIR, render_prompt
from rag.schema import AnswerDelta, Citation, Passage, RemovedSentence
from rag.text import content_terms
from rag.verify import says_it_does_not_know, verify_answer

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
_GREETING_WORDS = frozenset(
    "hi hello hey hiya howdy thanks thank you cheers bye goodbye good morning afternoon evening"
    " night ok okay great cool nice there all everyone again please much".split()
)
_REWRITE_PREFIX = re.compile(
    r"^\s*(?:standalone question|rewritten question|question|rewrite)\s*:\s*", re.IGNORECASE
)
_REWRITE_SLACK_CHARS = 100


@dataclass(frozen=True, slots=True)
class Generated:
    """What an answerer returns, with what the reader should know about how it was made."""

    text: str
    refused: bool
    citations: tuple[Citation, ...]
    notices: tuple[str, ...] = ()
    removed: tuple[RemovedSentence, ...] = ()

    @classmethod
    def from_draft(cls, draft: Draft, notices: Sequence[str] = ()) -> Generated:
        return cls(draft.text, draft.refused, draft.citations, tuple(notices))


@dataclass(frozen=True, slots=True)
class Rewrite:
    """The question to search for; ``by_model`` when the chat model wrote it (it then stands
    for the user's question), ``model_failed`` when the chat model failed trying."""

    query: str
    by_model: bool = False
    model_failed: bool = False


def is_greeting(text: str) -> bool:
    """Whether ``text`` is small talk ("Hi!", "Thanks a lot") rather than a question."""
    tokens = re.findall(r"[a-z]+", text.lower())
    return bool(tokens) and all(t in _GREETING_WORDS or t == "a" or t == "lot" for t in tokens)


def rewrite_question(
    chat_model: ChatModel,
    question: str,
    history: Sequence[str],
    *,
    max_chars: int,
    prompts_dir: Path = PROMPTS_DIR,
) -> Rewrite:
    """``question`` as a standalone question, using the model only when it is needed.

    Without history, for a greeting, or for a question that does not lean on the history
    (``rag.answer.is_follow_up``), the question is returned unchanged and the model is not
    called. A reply that is empty, too long, a refusal or has no content words falls back to
    ``resolve_follow_up``.
    """
    if not history or is_greeting(question) or not is_follow_up(question):
        return Rewrite(question)
    prompt = render_prompt(
        "rewrite",
        prompts_dir,
        history="\n".join(f"- {h}" for h in history),
        question=question,
    )
    try:
        reply = chat_model.generate([ChatMessage("user", prompt)])
    except ChatModelError as e:
        logger.warning("rewriting the follow-up failed (%s); searching the joined questions", e)
        return Rewrite(resolve_follow_up(question, history), model_failed=True)
    rewritten = _clean_rewrite(reply)
    limit = min(max_chars, len(question) + max(len(h) for h in history) + _REWRITE_SLACK_CHARS)
    if (
        not rewritten
        or len(rewritten) > limit
        or says_it_does_not_know(rewritten)
        or not content_terms(rewritten)
    ):
        logger.info("discarded the rewrite %r of %r", reply[:200], question)
        return Rewrite(resolve_follow_up(question, history))
    return Rewrite(rewritten, by_model=True)


def _clean_rewrite(reply: str) -> str:
    line = next((ln for ln in reply.strip().splitlines() if ln.strip()), "")
    line = _REWRITE_PREFIX.sub("", line)
    return line.strip().strip("\"'`*“”‘’").strip()


class LLMAnswerer:
    """Answers with a chat model; every answer passes ``rag.verify`` before it is returned."""

    def __init__(
        self,
        settings: Settings,
        chat_model: ChatModel,
        extractive: ExtractiveAnswerer,
        prompts_dir: Path = PROMPTS_DIR,
    ) -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.extractive = extractive
        self.prompts_dir = prompts_dir

    def messages(self, question: str, passages: Sequence[Passage]) -> list[ChatMessage]:
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
        return [ChatMessage("system", system), ChatMessage("user", user)]

    def answer(
        self,
        question: str,
        search_query: str,
        passages: Sequence[Passage],
        query_vector: np.ndarray,
        *,
        use_model: bool = True,
    ) -> Generated:
        """The verified answer, the extractive one with a notice, or a refusal."""
        result: Generated | None = None
        for event in self._run(question, search_query, passages, query_vector, use_model, False):
            if isinstance(event, Generated):
                result = event
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        search_query: str,
        passages: Sequence[Passage],
        query_vector: np.ndarray,
        *,
        use_model: bool = True,
    ) -> Iterator[AnswerDelta | Generated]:
        """The model's text pieces as they arrive, then the verified ``Generated``."""
        yield from self._run(question, search_query, passages, query_vector, use_model, True)

    def _run(
        self,
        question: str,
        search_query: str,
        passages: Sequence[Passage],
        query_vector: np.ndarray,
        use_model: bool,
        streaming: bool,
    ) -> Iterator[AnswerDelta | Generated]:
        extractive = self.extractive.answer(question, search_query, passages, query_vector)
        if extractive.refused:  # no strong evidence: the model is not asked
            yield Generated.from_draft(extractive)
            return
        if not use_model:
            yield Generated.from_draft(extractive, [MODEL_FAILED_NOTICE])
            return
        messages = self.messages(search_query, passages)
        try:
            if streaming:
                pieces: list[str] = []
                for piece in self.chat_model.stream(messages):
                    pieces.append(piece)
                    yield AnswerDelta(piece)
                reply = "".join(pieces)
            else:
                reply = self.chat_model.generate(messages)
        except ChatModelError as e:
            logger.warning("the chat model failed (%s); answering extractively", e)
            yield Generated.from_draft(extractive, [MODEL_FAILED_NOTICE])
            return
        except Exception:  # a provider bug must not take the app down either
            logger.exception("the chat model raised an unexpected error; answering extractively")
            yield Generated.from_draft(extractive, [MODEL_FAILED_NOTICE])
            return
        yield self._verified(reply, passages, extractive)

    def _verified(self, reply: str, passages: Sequence[Passage], extractive: Draft) -> Generated:
        verification = verify_answer(reply, passages)
        for item in verification.removed:
            logger.info("verifier removed %r: %s", item.sentence, item.reason)
        if verification.declined:
            return Generated(NOT_FOUND, True, (), (), verification.removed)
        if not verification.usable:
            logger.warning(
                "too little of the generated answer was supported (%d kept, %d removed);"
                " answering extractively",
                verification.kept,
                len(verification.removed),
            )
            return Generated(
                extractive.text,
                extractive.refused,
                extractive.citations,
                (UNVERIFIED_NOTICE,),
                verification.removed,
            )
        notices = (removed_notice(len(verification.removed)),) if verification.removed else ()
        return Generated(
            verification.text, False, verification.citations, notices, verification.removed
        )


def removed_notice(count: int) -> str:
    """The note shown when the verifier removed ``count`` sentences of a generated answer."""
    if count == 1:
        return "1 sentence of the generated answer was removed: the articles do not support it."
    return (
        f"{count} sentences of the generated answer were removed: the articles do not support them."
    )
