"""Follow-up resolution: what to search for when a question leans on the conversation.

``resolve_follow_up`` turns the user's question and their earlier questions (oldest first) into
a ``Resolution``: the text to search for and how it was obtained. Offline, with the question
analysis of ``rag.analyze``:

* a complete question (its own subject, not elliptical) is searched as it is, never merged
  with the one before it;
* "and in Japan?" / "what about the BBC?" re-asks the previous question with the new name in
  place of the old one of the same kind (``swapped``);
* "What did she say next?" / "What else did he say?" re-asks the previous question, and the
  answerer then quotes what comes after the quotes already given (``next``);
* a pronoun ("What did she say?") is replaced by the person or thing the previous question
  named (``substituted``);
* anything else that leans on the history ("Why?") is searched joined with the previous
  question (``joined``).

``rewrite_question`` does the same with a chat model (for the LLM answerer), falling back to
the offline resolution when the model fails or writes something unusable. This module does
not search or answer; it only decides what is searched for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.analyze import PERSON_ROLES, QuestionAnalysis, QuestionAnalyzer
from rag.chat_models import ChatModelError, generate_text
from rag.prompts import PROMPTS_DIR, render_prompt
from rag.text import STOPWORDS, content_terms

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

KINDS = ("standalone", "swapped", "next", "substituted", "joined", "rewritten")

_GREETING_WORDS = frozenset(
    "hi hello hey hiya howdy thanks thank you cheers bye goodbye good morning afternoon evening"
    " night ok okay great cool nice there all everyone again please much".split()
)
_REWRITE_PREFIX = re.compile(
    r"^\s*(?:standalone question|rewritten question|question|rewrite)\s*:\s*", re.IGNORECASE
)
_REWRITE_SLACK_CHARS = 100
_NEXT = re.compile(
    r"\b(?:next|else|more|again|another|further|then|afterwards|after that|continue)\b", re.I
)
_SAY = re.compile(r"\b(?:say|said|says|tell|told|add|added|quote|quoted|mention|mentioned)\b", re.I)
_SWAP_OPENER = re.compile(r"^\W*(?:and|but|what about|how about|and what about|same for)\b", re.I)
_PERSON_PRONOUNS = {"he": "", "she": "", "him": "", "her": "'s", "his": "'s", "hers": "'s"}
_THING_PRONOUNS = {"it": "", "its": "'s", "they": "", "them": "", "their": "'s"}
# Labels that can stand in for one another when a follow-up swaps one name for another.
_SWAP_GROUPS = (
    frozenset({"GPE", "LOC", "NORP", "FAC"}),
    frozenset({"PERSON"}),
    frozenset({"ORG"}),
    frozenset({"DATE", "TIME"}),
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to search for. ``kind`` is one of ``KINDS``; ``previous`` is the resolved earlier
    question a follow-up leans on ("" for a standalone question)."""

    question: str
    query: str
    kind: str = "standalone"
    previous: str = ""
    by_model: bool = False
    model_failed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the history changed what is searched for."""
        return self.query.strip() != self.question.strip()


def is_greeting(text: str) -> bool:
    """Whether ``text`` is small talk ("Hi!", "Thanks a lot") rather than a question."""
    tokens = re.findall(r"[a-z]+", text.lower())
    return bool(tokens) and all(t in _GREETING_WORDS or t == "a" or t == "lot" for t in tokens)


def resolve_follow_up(
    question: str, history: Sequence[str], analyzer: QuestionAnalyzer
) -> Resolution:
    """The search for ``question`` after ``history`` (earlier user questions, oldest first)."""
    question = question.strip()
    turns = [h.strip() for h in history if h and h.strip() and not is_greeting(h)]
    if not turns or is_greeting(question):
        return Resolution(question, question)
    analysis = analyzer.analyze(question)
    if not analysis.refers_back:
        return Resolution(question, question)
    previous = resolve_follow_up(turns[-1], turns[:-1], analyzer).query
    before = analyzer.analyze(previous)
    if _NEXT.search(question) and (_SAY.search(question) or len(content_terms(question)) <= 2):
        return Resolution(question, previous, "next", previous)
    if _SWAP_OPENER.search(question):
        swapped = _swap_phrase(before, question) or (
            _swap(before, analysis) if analysis.entities else ""
        )
        if swapped:
            return Resolution(question, swapped, "swapped", previous)
    substituted = _substitute(question, analysis, before)
    if substituted:
        return Resolution(question, substituted, "substituted", previous)
    return Resolution(question, f"{previous} {question}", "joined", previous)


def _swap(before: QuestionAnalysis, after: QuestionAnalysis) -> str:
    """The previous question with the follow-up's name in place of one of the same kind."""
    text = before.question
    for new in after.entities:
        group = next((g for g in _SWAP_GROUPS if new.label in g), frozenset({new.label}))
        for old in before.entities:
            if old.label in group and old.text in text and old.text != new.text:
                return text.replace(old.text, new.text, 1)
    return ""


def _swap_phrase(before: QuestionAnalysis, question: str) -> str:
    """The previous question with the follow-up's noun phrase in place of the one it stands
    for: the phrase with the same head noun ("How much did Japan's economy grow?" + "And the
    Dutch economy?"), or, for a person's role ("and the Japanese prime minister?"), the last
    person the previous question named. "" when the follow-up is not such a phrase."""
    phrase = _SWAP_OPENER.sub("", question).strip(" ?!.,")
    phrase = re.sub(r"^(?:the\s+same\s+for|for|about)\s+", "", phrase, flags=re.I)
    words = phrase.split()
    if not 2 <= len(words) <= 6 or not re.fullmatch(r"[\w’'. -]+", phrase):
        return ""
    head = words[-1].lower()
    if head in STOPWORDS or not head.isalpha():
        return ""
    text = before.question
    # The old phrase: the head noun with the names, possessives and determiner before it.
    old = re.search(
        rf"(?:\b(?i:the|a|an)\s+)?(?:\b[A-Z][\w’'-]*\s+){{0,3}}\b(?i:{re.escape(head)})\b", text
    )
    if old and old.group(0).strip().lower() != phrase.lower():
        return text[: old.start()] + phrase + text[old.end() :]
    people = [e.text for e in before.entities if e.label == "PERSON" and e.text in text]
    if head in PERSON_ROLES and people:
        last = people[-1]
        at = text.rfind(last)
        return text[:at] + phrase + text[at + len(last) :]
    return ""


def _substitute(question: str, analysis: QuestionAnalysis, before: QuestionAnalysis) -> str:
    """``question`` with its pronoun replaced by the name the previous question was about."""
    people = [e.text for e in before.entities if e.label == "PERSON"]
    things = [e.text for e in before.entities if e.label not in ("PERSON", "DATE", "TIME")]
    tokens = re.split(r"(\W+)", question)
    for i, token in enumerate(tokens):
        lowered = token.lower()
        if lowered in _PERSON_PRONOUNS and people:
            tokens[i] = people[0] + _PERSON_PRONOUNS[lowered]
            return "".join(tokens)
        if lowered in _THING_PRONOUNS and things:
            tokens[i] = things[0] + _THING_PRONOUNS[lowered]
            return "".join(tokens)
    return ""


def rewrite_question(
    chat_model: BaseChatModel,
    question: str,
    history: Sequence[str],
    analyzer: QuestionAnalyzer,
    *,
    max_chars: int,
    prompts_dir: Path = PROMPTS_DIR,
) -> Resolution:
    """``question`` as a standalone question, written by ``chat_model`` when it is needed.

    Without history, for a greeting, or for a question that does not lean on the history, the
    question is returned unchanged and the model is not called. "What did she say next?" is
    resolved offline (the answerer needs to know it asks for what comes next). A reply that
    is empty, too long, a refusal or has no content words falls back to ``resolve_follow_up``.
    """
    from rag.verify import says_it_does_not_know

    offline = resolve_follow_up(question, history, analyzer)
    if offline.kind in ("standalone", "next") or is_greeting(question):
        return offline
    prompt = render_prompt(
        "rewrite",
        prompts_dir,
        history="\n".join(f"- {h}" for h in history),
        question=question,
    )
    try:
        reply = generate_text(chat_model, [("human", prompt)])
    except ChatModelError as e:
        logger.warning("rewriting the follow-up failed (%s); searching offline", e)
        return Resolution(
            offline.question, offline.query, offline.kind, offline.previous, model_failed=True
        )
    rewritten = _clean_rewrite(reply)
    limit = min(max_chars, len(question) + max(len(h) for h in history) + _REWRITE_SLACK_CHARS)
    if (
        not rewritten
        or len(rewritten) > limit
        or says_it_does_not_know(rewritten)
        or not content_terms(rewritten)
    ):
        logger.info("discarded the rewrite %r of %r", reply[:200], question)
        return offline
    return Resolution(question, rewritten, "rewritten", offline.previous, by_model=True)


def _clean_rewrite(reply: str) -> str:
    line = next((ln for ln in reply.strip().splitlines() if ln.strip()), "")
    line = _REWRITE_PREFIX.sub("", line)
    return line.strip().strip("\"'`*“”‘’").strip()
