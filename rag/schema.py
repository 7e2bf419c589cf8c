"""Plain data passed between pipeline stages.

Frozen dataclasses only: no behaviour beyond ids, validation and conversion to plain dicts.
Ids are content hashes, so the same article or chunk always gets the same id and re-indexing
is idempotent.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def content_hash(*parts: str, length: int = 16) -> str:
    """A short, stable hex digest of ``parts``, joined with a separator text cannot contain."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


@dataclass(frozen=True, slots=True)
class Article:
    """One article as read from the corpus, before chunking.

    ``article_id`` is stable across edits (taken from the source's own id, its URL or its file
    name); ``content_hash`` changes whenever the text or metadata change.
    """

    article_id: str
    title: str
    text: str
    author: str = ""
    date: str = ""  # ISO 8601 date (YYYY-MM-DD) or ""
    publisher: str = ""
    url: str = ""
    source: str = ""  # where it was read from: a path, or path#row for exports

    @property
    def content_hash(self) -> str:
        return content_hash(
            self.article_id, self.title, self.author, self.date, self.publisher, self.url, self.text
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of an article's text, the unit that is embedded and retrieved.

    ``start``/``end`` are character offsets into ``Article.text``, so
    ``article.text[chunk.start:chunk.end] == chunk.text`` always holds.
    """

    chunk_id: str
    article_id: str
    text: str
    start: int
    end: int
    index: int
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its scores; what answerers read and cite."""

    chunk_id: str
    article_id: str
    text: str
    title: str
    author: str
    date: str
    publisher: str
    url: str
    start: int
    end: int
    score: float  # fused score used for ranking (higher is better)
    dense_score: float | None = None  # cosine similarity to the query, when dense search found it
    lexical_score: float | None = None  # BM25 score, when lexical search found it


@dataclass(frozen=True, slots=True)
class Citation:
    """One numbered source of an answer: a verbatim quote from a retrieved passage."""

    n: int
    article_id: str
    title: str
    author: str
    date: str
    url: str
    quote: str
    chunk_id: str
    score: float
    # "quote": ``quote`` is verbatim text of the passage. "metadata": the answer states the
    # article's record (author, date, outlet) and ``quote`` is its headline.
    kind: str = "quote"
    publisher: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RemovedSentence:
    """A sentence of a generated answer that the verifier took out, and why."""

    sentence: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"sentence": self.sentence, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Headline:
    """An article the archive holds, as shown next to a refusal."""

    article_id: str
    title: str
    date: str
    publisher: str
    url: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of answering one question.

    ``answer`` holds sentences each followed by citation markers ``[n]``; every ``n`` refers to
    an entry of ``citations``. ``refused`` is true when the articles hold no strong evidence,
    in which case ``answer`` says so and ``citations`` is empty. ``notices`` are short notes
    for the reader (the language model was unreachable, sentences were removed); ``removed``
    lists what the verifier took out of a generated answer.
    """

    question: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    timings_ms: dict[str, float]
    search_query: str = ""  # what was actually searched (differs for follow-ups)
    notices: tuple[str, ...] = ()
    removed: tuple[RemovedSentence, ...] = ()
    nearest: tuple[Headline, ...] = ()  # on a refusal: the closest articles the archive holds

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape shared by ``rag ask --json``, the API and outside tools."""
        return {
            "answer": self.answer,
            "refused": self.refused,
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "notices": list(self.notices),
            "removed": [r.to_dict() for r in self.removed],
            "searched_for": self.search_query if self.search_query != self.question else "",
            "nearest": [h.to_dict() for h in self.nearest],
        }


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of answer text as it is produced, before the final verified ``Answer``."""

    text: str


# What ``Assistant.stream`` yields: zero or more deltas, then exactly one final ``Answer``.
AnswerEvent = AnswerDelta | Answer
