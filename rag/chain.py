"""The answer pipeline as a LangChain runnable, so it drops into a user's chain or agent.

``as_runnable(assistant)`` (or ``Assistant.as_runnable()``) wraps the one core, ``Assistant``:

- ``invoke`` takes a question (``str``) or ``{"question": str, "history": [str, ...],
  "filters": {...}}`` (history and filters optional; filters as the HTTP API's plus
  ``publishers``) and returns ``Answer.to_dict()``, the object ``rag ask --json`` prints;
- ``stream`` yields the answer's text pieces (``str``) as they are produced, then that final,
  verified dict as the last chunk. LangChain adds streamed chunks up with ``+`` and lets a chunk
  that cannot be added replace the sum, so a chain that streams still hands the next step the
  final dict, as ``invoke`` would. With the LLM answerer the pieces are unverified tokens: show
  the final dict's ``answer`` in their place;
- ``batch``, ``ainvoke`` and ``abatch`` are LangChain's (``invoke`` on a thread pool);
  ``astream`` runs ``stream`` on a worker thread and yields the same chunks;
- ``as_tool()`` is a tool for agents: arguments ``question`` and optional ``filters``; its
  content is ``answer_text(...)`` (the cited answer, then numbered sources, for a model to read
  and cite) and its artifact the answer dict. A bad question or filter comes back as the tool's
  error message, so the model can ask again.

Bad input (no question, wrong types, unknown keys, bad filter dates, an empty question) raises
``QuestionError`` with a one-line message; errors of the index (``IndexNotBuiltError``) pass
through unchanged. What this module deliberately does not do: retrieve, answer or verify (the
``Assistant`` does, the same code as the CLI and the API), hold conversation state (callers pass
``history``), or offer the per-request answerer or retrieval mode switches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NotRequired

from langchain_core.callbacks import Callbacks
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here on 3.11

from rag.errors import QuestionError, RagError
from rag.retrieve import SearchFilters
from rag.schema import Answer

if TYPE_CHECKING:
    from rag.assistant import Assistant

TOOL_NAME = "ask_news_archive"
TOOL_DESCRIPTION = (
    "Answer a question from the newsroom's article archive. Returns sentences quoted verbatim"
    " from the articles, each followed by citation markers like [1], then 'Sources:' with one"
    " numbered entry per citation (headline, outlet, author, date, link, quote). Keep the"
    " markers when you use a sentence. If the archive does not hold the answer it says so: do"
    " not answer from memory then. Ask standalone questions (no 'he' or 'it')."
)
_FILTER_KEYS = tuple(f.name for f in fields(SearchFilters))
_LIST_FILTERS = ("article_ids", "authors", "publishers")
_INPUT_KEYS = ("question", "history", "filters")


class FiltersInput(TypedDict, total=False):
    """Restrict retrieval; every given filter must match (ISO dates, inclusive)."""

    article_ids: list[str]
    authors: list[str]
    publishers: list[str]
    date_from: str
    date_to: str


class AskInput(TypedDict):
    """What ``invoke`` takes besides a plain question: ``history`` holds the conversation's
    earlier questions, oldest first."""

    question: str
    history: NotRequired[list[str]]
    filters: NotRequired[FiltersInput]


# What ``stream`` yields: text pieces, then one final ``Answer.to_dict()``.
AnswerChunk = str | dict[str, Any]


@dataclass(frozen=True, slots=True)
class AskRequest:
    """One checked input: what ``Assistant.ask`` and ``Assistant.stream`` take."""

    question: str
    history: tuple[str, ...] = ()
    filters: SearchFilters | None = None


class AnswerRunnable(Runnable[str | AskInput, AnswerChunk]):
    """``Assistant`` as a runnable: ``invoke`` returns the answer dict, ``stream`` its pieces
    (``str``) and then the dict. See the module docstring for the input shape and the tool."""

    name = "newsroom_rag"

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def invoke(
        self, input: str | AskInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        answer = self._call_with_config(self._ask, input, config, run_type="chain")
        assert isinstance(answer, dict)  # _ask returns the dict; the type says any chunk
        return answer

    def stream(
        self, input: str | AskInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Generator[AnswerChunk, None, None]:
        yield from self.transform(iter([input]), config, **kwargs)

    def transform(
        self,
        input: Iterator[str | AskInput],
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> Iterator[AnswerChunk]:
        yield from self._transform_stream_with_config(input, self._stream, config, run_type="chain")

    async def astream(
        self, input: str | AskInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[AnswerChunk]:
        # Answering is blocking work (models, Chroma): each next piece is awaited on a thread.
        chunks = self.stream(input, config, **kwargs)
        done = object()
        try:
            while True:
                chunk = await run_in_executor(config, next, chunks, done)
                if chunk is done:
                    return
                yield chunk  # type: ignore[misc]  # not ``done``, so an AnswerChunk
        finally:
            chunks.close()

    def as_tool(
        self,
        args_schema: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
    ) -> BaseTool:
        """A tool for agents (``question``, optional ``filters``) whose content is
        ``answer_text`` of the answer and whose artifact is the answer dict; with
        ``args_schema`` or ``arg_types``, LangChain's generic conversion instead."""
        if args_schema is not None or arg_types is not None:
            return super().as_tool(
                args_schema, name=name, description=description, arg_types=arg_types
            )

        def ask(
            question: str,
            filters: ToolFilters | Mapping[str, Any] | None = None,
            callbacks: Callbacks = None,  # the tool's run, so the answer is traced under it
        ) -> tuple[str, dict[str, Any]]:
            request: dict[str, Any] = {"question": question}
            if isinstance(filters, ToolFilters):
                request["filters"] = filters.model_dump(exclude_defaults=True)
            elif filters is not None:
                request["filters"] = filters
            try:
                answer = self.invoke(request, {"callbacks": callbacks})  # type: ignore[arg-type]
            except RagError as e:
                raise ToolException(str(e)) from e
            return answer_text(answer), answer

        return StructuredTool.from_function(
            ask,
            name=name or TOOL_NAME,
            description=description or TOOL_DESCRIPTION,
            args_schema=ToolArgs,
            response_format="content_and_artifact",
            handle_tool_error=True,
            handle_validation_error=_validation_message,
        )

    def _ask(self, input: object) -> dict[str, Any]:
        request = self._checked(input)
        answer = self.assistant.ask(request.question, request.history, request.filters)
        return answer.to_dict()

    def _stream(self, inputs: Iterator[str | AskInput]) -> Iterator[AnswerChunk]:
        request = self._checked(_gathered(inputs))
        for event in self.assistant.stream(request.question, request.history, request.filters):
            if isinstance(event, Answer):
                yield event.to_dict()
                return
            yield event.text

    def _checked(self, input: object) -> AskRequest:
        """``input`` parsed and the question validated, as the CLI and the API do before
        answering; an empty index raises ``IndexNotBuiltError`` here."""
        request = parse_request(input)
        question = self.assistant.validate_question(request.question)
        self.assistant.store.require_built()
        return AskRequest(question, request.history, request.filters)


def as_runnable(assistant: Assistant) -> AnswerRunnable:
    """``assistant`` as a LangChain runnable (see the module docstring)."""
    return AnswerRunnable(assistant)


class ToolFilters(BaseModel):
    """Only articles matching every given filter are searched."""

    model_config = ConfigDict(extra="forbid")

    article_ids: list[str] = Field(default_factory=list, description="only these article ids")
    authors: list[str] = Field(default_factory=list, description="only articles by these authors")
    publishers: list[str] = Field(
        default_factory=list, description="only articles from these outlets"
    )
    date_from: str = Field("", description="only articles dated on or after YYYY-MM-DD")
    date_to: str = Field("", description="only articles dated on or before YYYY-MM-DD")


class ToolArgs(BaseModel):
    """Answer a question from the newsroom's article archive, with verbatim cited quotes."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="a standalone question, in English")
    filters: ToolFilters | None = Field(None, description="optional: restrict the search")


def parse_request(value: object) -> AskRequest:
    """A runnable's input as an ``AskRequest``: a question, or a mapping with ``question`` and
    optionally ``history`` and ``filters``. Raises ``QuestionError`` naming what is wrong; the
    question itself is validated by the assistant."""
    if isinstance(value, str):
        return AskRequest(value)
    if not isinstance(value, Mapping):
        raise QuestionError(
            "the input must be a question (str) or a dict with 'question', 'history' and"
            f" 'filters', got {type(value).__name__}"
        )
    unknown = [str(k) for k in value if k not in _INPUT_KEYS]
    if unknown:
        raise QuestionError(
            f"unknown input key {unknown[0]!r}: expected {', '.join(map(repr, _INPUT_KEYS))}"
        )
    if "question" not in value:
        raise QuestionError("the input has no 'question'")
    question = value["question"]
    if not isinstance(question, str):
        raise QuestionError(f"'question' must be a string, got {type(question).__name__}")
    history = value.get("history") or ()
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise QuestionError(
            f"'history' must be a list of earlier questions, got {type(history).__name__}"
        )
    for item in history:
        if not isinstance(item, str):
            raise QuestionError(
                f"'history' must hold strings (earlier questions), got {type(item).__name__}"
            )
    return AskRequest(question, tuple(history), parse_filters(value.get("filters")))


def parse_filters(value: object) -> SearchFilters | None:
    """``SearchFilters`` from plain data: ``article_ids``, ``authors``, ``publishers`` (a list
    of strings, or one string) and ``date_from``/``date_to`` (``YYYY-MM-DD`` or a date).

    The HTTP API parses the same object with its own request model (``rag.api.FiltersIn``),
    which is tied to FastAPI and has no ``publishers``; this one needs no web stack.
    """
    if value is None or isinstance(value, SearchFilters):
        return value
    if not isinstance(value, Mapping):
        raise QuestionError(f"'filters' must be a dict, got {type(value).__name__}")
    unknown = [str(k) for k in value if k not in _FILTER_KEYS]
    if unknown:
        raise QuestionError(
            f"unknown filter {unknown[0]!r}: expected one of {', '.join(_FILTER_KEYS)}"
        )
    given: dict[str, Any] = {}
    for key, item in value.items():
        if key in _LIST_FILTERS:
            given[key] = _strings(key, item)
        elif isinstance(item, dt.date):
            given[key] = (item.date() if isinstance(item, dt.datetime) else item).isoformat()
        elif item is None or isinstance(item, str):
            given[key] = item or ""
        else:
            raise QuestionError(
                f"filter {key!r} must be a date (YYYY-MM-DD), got {type(item).__name__}"
            )
    try:
        return SearchFilters(**given)
    except RagError as e:
        raise QuestionError(str(e)) from e


def answer_text(answer: Mapping[str, Any]) -> str:
    """An answer dict (``Answer.to_dict()``) as text for a reader or a model: the answer with
    its ``[n]`` markers, its notes, the closest articles on a refusal, then the sources."""
    lines = [str(answer["answer"])]
    lines += [f"Note: {notice}" for notice in answer.get("notices", ())]
    if answer.get("nearest"):
        lines += ["", "Closest articles in the archive:"]
        for headline in answer["nearest"]:
            details = ", ".join(p for p in (headline["publisher"], headline["date"]) if p)
            lines.append(f"- {headline['title']}" + (f" ({details})" if details else ""))
    if answer.get("citations"):
        lines += ["", "Sources:"]
        for c in answer["citations"]:
            byline = ", ".join(p for p in (c.get("publisher", ""), c["author"], c["date"]) if p)
            link = f" {c['url']}" if c["url"] else ""
            lines.append(f"[{c['n']}] {c['title']}" + (f" ({byline})" if byline else "") + link)
            lines.append(f"    “{c['quote']}”")
    return "\n".join(lines)


def _strings(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if value is None:
        return ()
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise QuestionError(f"filter {key!r} must be a list of strings, got {value!r}")


def _gathered(inputs: Iterator[Any]) -> Any:
    """The whole input of a stream: chunks added up (a question streamed in pieces by an
    upstream step), a chunk that cannot be added replacing the sum, as LangChain does."""
    value: Any = None
    for item in inputs:
        try:
            value = item if value is None else value + item
        except TypeError:
            value = item
    return value


def _validation_message(error: Exception) -> str:
    """A tool-argument error as one line a model can act on."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        return f"bad tool arguments: {where}: {first['msg']}"
    return f"bad tool arguments: {error}"
