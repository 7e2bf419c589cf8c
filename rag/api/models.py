"""The API's request bodies, and its response models derived from ``rag.schema``.

A response model is built from the dataclass it serialises (``model_of``): its fields, types
and order come from there, so a field added to ``Answer`` or ``IngestReport`` shows up in
``/openapi.json`` without a second copy to keep in step. Only the public names differ where
the JSON shape renames a field (``Answer.search_query`` is ``searched_for``). Request bodies
are written out: they validate what clients send (patterns, lengths, no unknown fields),
which no dataclass says.

It does not build responses (the routes do, from the same dataclasses) or check access.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from rag.api.jobs import JobStatus
from rag.index import IngestReport
from rag.retrieve import SearchFilters
from rag.schema import Answer, Article, Citation, Headline, RemovedSentence

# --- derived response models ------------------------------------------------------------------


def _public(annotation: Any, models: Mapping[type, type[BaseModel]]) -> Any:
    """``annotation`` as JSON carries it: tuples become lists, dataclasses their models."""
    if isinstance(annotation, type) and annotation in models:
        return models[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[_public(args[0], models)]  # type: ignore[misc]
    if origin is list:
        return list[_public(args[0], models)]  # type: ignore[misc]
    if origin is types.UnionType:
        public = [_public(a, models) for a in args]
        union = public[0]
        for member in public[1:]:
            union = union | member
        return union
    return annotation


def model_of(
    source: type,
    name: str,
    *,
    fields: Sequence[str | tuple[str, str]] | None = None,
    descriptions: Mapping[str, str] | None = None,
    models: Mapping[type, type[BaseModel]] | None = None,
    extra: Mapping[str, tuple[Any, Any]] | None = None,
    first: Mapping[str, tuple[Any, Any]] | None = None,
) -> type[BaseModel]:
    """A pydantic model of the dataclass ``source``, every field required (responses always
    carry them all).

    ``fields`` picks and orders them (``(attribute, public_name)`` renames one); ``models``
    maps nested dataclasses to their own derived models; ``first`` and ``extra`` add fields
    the response carries beyond the dataclass, before and after its own.
    """
    hints = typing.get_type_hints(source)
    names = [f.name for f in dataclasses.fields(source)]
    chosen = list(fields) if fields is not None else names
    notes = descriptions or {}
    definitions: dict[str, Any] = dict(first or {})
    for entry in chosen:
        attribute, public = (entry, entry) if isinstance(entry, str) else entry
        annotation = _public(hints[attribute], models or {})
        definitions[public] = (annotation, Field(description=notes.get(public)))
    definitions.update(extra or {})
    doc = (source.__doc__ or "").strip().split("\n\n")[0]
    model: type[BaseModel] = create_model(name, __doc__=doc, **definitions)
    return model


CitationOut = model_of(
    Citation,
    "CitationOut",
    fields=[
        "n",
        "article_id",
        "title",
        "author",
        "date",
        "url",
        "quote",
        "chunk_id",
        "score",
        "kind",
        "publisher",
    ],
    descriptions={
        "kind": "quote: verbatim passage text; metadata: the answer states the article's"
        " record (author, date, outlet) and the quote is its headline"
    },
)
RemovedOut = model_of(RemovedSentence, "RemovedOut")
HeadlineOut = model_of(Headline, "HeadlineOut")
_NESTED: dict[type, type[BaseModel]] = {
    Citation: CitationOut,
    RemovedSentence: RemovedOut,
    Headline: HeadlineOut,
}

# ``Answer.to_dict()``, in its order: the shape ``rag ask --json`` prints.
AnswerOut = model_of(
    Answer,
    "AnswerOut",
    fields=[
        "answer",
        "refused",
        "citations",
        "timings_ms",
        "notices",
        "removed",
        ("search_query", "searched_for"),
        "nearest",
    ],
    descriptions={
        "searched_for": "what was searched when the conversation or a corrected name changed it"
        " (empty when it was the question itself)",
        "nearest": "on a refusal, the closest articles the archive holds",
    },
    models=_NESTED,
)


class SkippedOut(BaseModel):
    """A file or row of an upload that could not be read, and why."""

    source: str
    reason: str


IngestOut = model_of(
    IngestReport,
    "IngestOut",
    fields=[f.name for f in dataclasses.fields(IngestReport) if f.name != "skipped"],
    first={
        "created": (
            bool,
            Field(description="true when at least one article was new (status 201)"),
        ),
        "article_ids": (list[str], ...),
    },
    extra={"skipped": (list[SkippedOut], ...)},
)

_SUMMARY_FIELDS = ["article_id", "title", "author", "date", "publisher", "url"]
_CHUNKS = {"chunks": (int, Field(description="the article's chunks in the index"))}
ArticleSummary = model_of(Article, "ArticleSummary", fields=_SUMMARY_FIELDS, extra=_CHUNKS)
ArticleOut = model_of(Article, "ArticleOut", fields=[*_SUMMARY_FIELDS, "text"], extra=_CHUNKS)

ArticleListOut = create_model(
    "ArticleListOut",
    total=(int, ...),
    offset=(int, ...),
    limit=(int, ...),
    articles=(list[ArticleSummary], ...),  # type: ignore[valid-type]
)

JobOut = model_of(
    JobStatus,
    "JobOut",
    descriptions={
        "state": "queued, running, done or failed",
        "result": "when done: what POST /v1/articles answers for a small ingest",
        "error": "when failed: why, in one line",
    },
)


class DeletedOut(BaseModel):
    article_id: str
    deleted: bool
    chunks_deleted: int
    total_chunks: int


class ErrorOut(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422, 503)
}


# --- request bodies ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(_Body):
    """Restrict retrieval; every given filter must match (dates inclusive)."""

    article_ids: list[str] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    publishers: list[str] = Field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters(
            article_ids=tuple(self.article_ids),
            authors=tuple(self.authors),
            publishers=tuple(self.publishers),
            date_from=self.date_from.isoformat() if self.date_from else "",
            date_to=self.date_to.isoformat() if self.date_to else "",
        )


class AskIn(_Body):
    """A question, with the conversation's earlier questions (oldest first) for follow-ups."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "Which countries does Brussels want to work with?",
                    "history": [],
                    "filters": {"date_from": "2025-01-01"},
                }
            ]
        },
    )

    question: str
    history: list[str] = Field(default_factory=list, max_length=100)
    filters: FiltersIn | None = None
    answerer: Literal["extractive", "heuristic", "llm"] | None = Field(
        default=None, description="overrides the server's answerer for this request"
    )


class ArticleIn(_Body):
    """One article. Without ``id``, one is derived from ``url`` (else title and date), as
    ``rag ingest`` does for export rows; text and dates are normalised the same way."""

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    author: str = ""
    date: str = Field(default="", description="ISO 8601 (YYYY-MM-DD) or a written date")
    publisher: str = ""
    url: str = ""
