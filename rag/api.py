"""The HTTP API: ask questions and manage articles over REST, with the chat mounted beside it.

``create_app(assistant, settings, chat=blocks)`` returns one FastAPI app, which ``rag serve``
runs with uvicorn:

- ``POST /v1/ask`` (the ``Answer.to_dict()`` object, as ``rag ask --json``), ``POST
  /v1/ask/stream`` (server-sent events ``token`` ... ``answer``, or ``error``);
- ``POST /v1/articles`` (one article as JSON, or a file upload in any format ``rag ingest``
  reads), ``GET /v1/articles`` (paged), ``GET``/``DELETE /v1/articles/{id}``;
- ``GET /healthz`` (the process is up), ``GET /readyz`` (model loaded and index not empty);
- OpenAPI at ``/docs`` and ``/openapi.json``; the Gradio chat at ``/chat/`` (``/`` redirects
  there) and ``/embed/gradio.js``, a stable address for its web component's hashed script.

Access: writes always need an API key (none configured: refused with 403). With keys configured,
everything else needs one too, the chat and Gradio's endpoints under ``/chat`` included, except
the routes in ``OPEN_ROUTES`` (health, readiness, the API's description, the sign-in form). Keys
come as ``Authorization: Bearer <key>`` or ``X-API-Key`` and are compared in constant time. A
browser signs in to the chat at ``/chat/login`` with a key: that starts a session held in
memory, for ``SESSION_TTL_S``, whose random token travels in an HttpOnly, SameSite=Strict cookie
scoped to ``/chat`` (Secure over https); ``/chat/logout`` ends it. Without credentials a chat
page redirects to the sign-in form and anything else is 401. A keys setting that holds no key
stops the server at start-up. Bodies are capped by Content-Length and while they stream (413).
Browsers may call the API only from ``cors_origins``, and frame the chat only from
``frame_ancestors``. Every error is JSON ``{"error": "<one line>"}``: a ``RagError`` keeps its
message (422, 409 for a locked index, 503 for an empty one); anything unexpected is logged and
answered 500 ``internal error``.

What it deliberately does not do: retrieve, answer or index by itself (``Assistant`` and
``Indexer`` do, the same code as the CLI), read the environment (``Settings`` arrive built),
accept the chat's session cookie on ``/v1`` (programs send keys; the cookie never grants a
write), keep sessions across restarts or processes, limit sign-in attempts (keys are long
random strings), or let a page on another site use the chat when keys are configured (the
SameSite=Strict cookie is not sent there: frame it from the same site, or leave keys unset
and restrict who reaches it with ``--host``, a proxy and ``frame_ancestors``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from rag.apidocs import STATIC_FILE, add_api_docs
from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import (
    CorpusError,
    IndexLockedError,
    IndexNotBuiltError,
    ProviderError,
    QuestionError,
    RagError,
    SettingsError,
)
from rag.index import IngestReport
from rag.retrieve import SearchFilters
from rag.schema import Answer, AnswerDelta, Article
from rag.store import ChromaStore, StoredChunk

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger(__name__)

CHAT_PATH = "/chat"
INTERNAL_ERROR = "internal error"
WRITES_DISABLED = "writes are disabled: no API keys configured"
MISSING_KEY = "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
WRONG_KEY = "the API key is not valid"
MISSING_SIGN_IN_KEY = "enter one of the server's API keys"
MAX_PAGE = 500

# The chat's sign-in: a random token in an HttpOnly, SameSite=Strict cookie scoped to the chat.
SIGN_IN_PATH = f"{CHAT_PATH}/login"
SIGN_OUT_PATH = f"{CHAT_PATH}/logout"
SESSION_COOKIE = "rag_session"
SESSION_TTL_S = 12 * 3600  # a working day: then the chat asks for the key again
MAX_SESSIONS = 10_000

# With keys configured, these alone are answered without credentials (path -> methods). They
# show no article, title or text: liveness and readiness (with the chunk count, for operators'
# checks), the API's description, the sign-in and sign-out forms, the redirect to the chat and
# the chat's loader script.
_GET = frozenset({"GET", "HEAD"})
OPEN_ROUTES: dict[str, frozenset[str]] = {
    "/healthz": _GET,
    "/readyz": _GET,
    "/docs": _GET,
    "/docs/oauth2-redirect": _GET,
    "/openapi.json": _GET,
    "/": _GET,
    "/embed/gradio.js": _GET,
    SIGN_IN_PATH: _GET | {"POST"},
    SIGN_OUT_PATH: frozenset({"POST"}),
}
# /assets/<name>: a redirect to the chat's own (guarded) assets, for Gradio's web component.
_OPEN_ASSET = re.compile(r"/assets/[^/]+")

# RagError subclasses -> HTTP status; the first match wins, plain RagError is a 422.
_ERROR_STATUS: tuple[tuple[type[RagError], int], ...] = (
    (QuestionError, 422),
    (SettingsError, 422),
    (CorpusError, 422),
    (IndexLockedError, 409),
    (IndexNotBuiltError, 503),
    (ProviderError, 503),
    (RagError, 422),
)


# --- request and response bodies --------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(_Body):
    """Restrict retrieval; every given filter must match (dates inclusive)."""

    article_ids: list[str] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters(
            article_ids=tuple(self.article_ids),
            authors=tuple(self.authors),
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


class CitationOut(BaseModel):
    n: int
    article_id: str
    title: str
    author: str
    date: str
    url: str
    quote: str
    chunk_id: str
    score: float
    kind: Literal["quote", "metadata"] = Field(
        description="quote: verbatim passage text; metadata: the answer states the article's"
        " record (author, date, outlet) and the quote is its headline"
    )
    publisher: str


class RemovedOut(BaseModel):
    sentence: str
    reason: str


class HeadlineOut(BaseModel):
    article_id: str
    title: str
    date: str
    publisher: str
    url: str


class AnswerOut(BaseModel):
    """``Answer.to_dict()``: the shape ``rag ask --json`` prints (documentation only)."""

    answer: str
    refused: bool
    citations: list[CitationOut]
    timings_ms: dict[str, float]
    notices: list[str]
    removed: list[RemovedOut]
    searched_for: str = Field(
        description="what was searched when the conversation or a corrected name changed it"
    )
    nearest: list[HeadlineOut] = Field(
        description="on a refusal, the closest articles the archive holds"
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


class SkippedOut(BaseModel):
    source: str
    reason: str


class IngestOut(BaseModel):
    created: bool = Field(description="true when at least one article was new (status 201)")
    article_ids: list[str]
    articles_added: int
    articles_updated: int
    articles_unchanged: int
    chunks_embedded: int
    chunks_deleted: int
    total_chunks: int
    skipped: list[SkippedOut]


class ArticleSummary(BaseModel):
    article_id: str
    title: str
    author: str
    date: str
    publisher: str
    url: str
    chunks: int


class ArticleListOut(BaseModel):
    total: int
    offset: int
    limit: int
    articles: list[ArticleSummary]


class ArticleOut(ArticleSummary):
    text: str


class DeletedOut(BaseModel):
    article_id: str
    deleted: bool
    chunks_deleted: int
    total_chunks: int


class ErrorOut(BaseModel):
    error: str


# --- access -----------------------------------------------------------------------------------


def load_api_keys(settings: Settings) -> tuple[str, ...]:
    """The keys from ``api_keys`` (comma-separated) and ``api_keys_file`` (one a line, ``#``
    comment lines), without duplicates.

    Raises ``SettingsError`` for a keys file that cannot be read or holds no key, and for an
    ``api_keys`` value that holds no key (``", ,"``): a keys setting that was given but yields
    nothing must stop the server, not start it with reads open. An empty ``api_keys`` is unset,
    as every empty ``RAG_*`` variable is.
    """
    keys = [k.strip() for k in settings.api_keys.split(",")]
    if settings.api_keys and not any(keys):
        raise SettingsError("RAG_API_KEYS holds no key: give one or more keys, comma-separated")
    if settings.api_keys_file:
        path = Path(settings.api_keys_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"cannot read the API keys file {path}: {e}") from e
        from_file = [line.strip() for line in lines if not line.strip().startswith("#")]
        if not any(from_file):
            raise SettingsError(
                f"the API keys file {path} holds no key (only blank or # comment lines):"
                " put one key a line"
            )
        keys.extend(from_file)
    return tuple(dict.fromkeys(k for k in keys if k))


class ApiKeys:
    """The configured keys, held as SHA-256 digests and compared in constant time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        given = _digest(key)
        found = False
        for digest in self._digests:  # no early exit: the time does not tell which key matched
            found |= hmac.compare_digest(given, digest)
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class Sessions:
    """The chat's sign-in sessions: random tokens, held in this process's memory only (as
    SHA-256 digests) with a fixed expiry. A restart signs everyone out, so a key removed
    from the keys file (which needs a restart) leaves no session behind."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        *,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._prune()
            return len(self._expiry)

    def start(self) -> str:
        """A new session's token, for the cookie."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            while len(self._expiry) >= self._max:  # the oldest goes first
                del self._expiry[next(iter(self._expiry))]
            self._expiry[_digest(token)] = self._clock() + self.ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(_digest(token))
            return expiry is not None and self._clock() < expiry

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._expiry.pop(_digest(token), None)

    def _prune(self) -> None:
        now = self._clock()
        for digest in [d for d, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[digest]


_bearer = HTTPBearer(auto_error=False, description="an API key as a bearer token")
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def _presented_key(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_key_header)],
) -> str | None:
    return bearer.credentials if bearer is not None else header


def key_in(headers: Headers) -> str | None:
    """The API key a request carries, read as ``_presented_key`` reads it: a bearer token,
    else ``X-API-Key``."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _require_reader(request: Request, key: Annotated[str | None, Depends(_presented_key)]) -> None:
    keys: ApiKeys = request.app.state.api.keys
    if keys.configured and not keys.accepts(key):
        raise _unauthorized(WRONG_KEY if key else MISSING_KEY)


def _require_writer(request: Request, key: Annotated[str | None, Depends(_presented_key)]) -> None:
    keys: ApiKeys = request.app.state.api.keys
    if not keys.configured:
        raise HTTPException(403, WRITES_DISABLED)
    if not keys.accepts(key):
        raise _unauthorized(WRONG_KEY if key else MISSING_KEY)


def _route_path(scope: Scope) -> str:
    """The path the router matches, without the ``root_path`` a proxy mounts the app under
    (as Starlette's own routing strips it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def is_open(method: str, path: str) -> bool:
    """Whether ``method path`` is answered without credentials when keys are configured."""
    if method in OPEN_ROUTES.get(path, ()):
        return True
    return method in ("GET", "HEAD") and (
        _OPEN_ASSET.fullmatch(path) is not None or STATIC_FILE.fullmatch(path) is not None
    )


class RequireCredentials:
    """With keys configured, refuse every request that is not on the open list (``is_open``)
    and carries neither a valid API key nor, under the chat's path, a valid session cookie.

    It guards by default: a route added later, Gradio's own included, is closed until it is
    listed as open. A browser asking for a chat page (a GET that accepts HTML) is sent to
    the sign-in page; anything else gets 401 ``{"error": ...}``, a websocket is closed.
    """

    def __init__(self, app: ASGIApp, state: ApiState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.state.keys.configured:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        path = _route_path(scope)
        method = scope.get("method", "GET")
        key = key_in(connection.headers)
        in_chat = path == CHAT_PATH or path.startswith(CHAT_PATH + "/")
        if (
            is_open(method, path)
            or self.state.keys.accepts(key)
            or (in_chat and self.state.sessions.valid(connection.cookies.get(SESSION_COOKIE)))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
            return
        response: Response
        if in_chat and method in ("GET", "HEAD") and not key and _wants_html(connection.headers):
            sign_in = scope.get("root_path", "") + SIGN_IN_PATH
            response = RedirectResponse(sign_in, 303, headers={"Cache-Control": "no-store"})
        else:
            response = JSONResponse(
                {"error": WRONG_KEY if key else MISSING_KEY},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)


def _wants_html(headers: Headers) -> bool:
    return "text/html" in headers.get("accept", "")


# --- the service behind the routes ------------------------------------------------------------


class ApiState:
    """The assistant(s), the keys and chat sessions, warm-up state and the writer lock."""

    def __init__(self, assistant: Assistant, settings: Settings, keys: ApiKeys) -> None:
        self.assistant = assistant
        self.settings = settings
        self.keys = keys
        self.sessions = Sessions()
        self.warmed = threading.Event()
        self.warm_up_error = ""
        self._write_lock = threading.Lock()  # one writer in this process; others queue
        self._others: dict[str, Assistant] = {}
        self._others_lock = threading.Lock()

    @property
    def store(self) -> ChromaStore:
        return self.assistant.store

    def warm_up(self) -> None:
        try:
            self.assistant.warm_up()
        except IndexNotBuiltError:
            pass  # the model is loaded; /readyz reports the empty index
        except Exception as e:
            self.warm_up_error = _one_line(str(e)) or type(e).__name__
            logger.exception("Warming up failed")
            return
        self.warmed.set()

    def assistant_for(self, answerer: str | None) -> Assistant:
        """The assistant for ``answerer``: the server's own, or a second one built on first use
        that shares its embedder and store."""
        if answerer is None or answerer == self.assistant.settings.answerer:
            return self.assistant
        settings = self.assistant.settings
        if answerer == "llm" and not (settings.llm_base_url or settings.llm_model_path):
            raise HTTPException(
                422,
                "answerer 'llm' is not available: no language model is configured"
                " (set RAG_LLM_BASE_URL or RAG_LLM_MODEL_PATH)",
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
        if self.settings.chroma_url or self.settings.data_dir.is_dir():
            return ""
        return (
            f"the data dir {self.settings.data_dir} was removed while the server was running:"
            " restore it, or restart the server to start a new index"
        )

    def write(self, change: Any) -> IngestReport:
        """Run ``change(assistant)`` as the only writer, then let every assistant see it."""
        gone = self.data_dir_gone()
        if gone:
            raise ProviderError(gone)
        with self._write_lock:
            report: IngestReport = change(self.assistant)
        with self._others_lock:
            others = list(self._others.values())
        for other in others:
            other.index_changed()
        return report


# --- articles: listing and reassembly ---------------------------------------------------------


def _summary(article_id: str, metadata: dict[str, Any], chunks: int) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "title": str(metadata.get("title", "")),
        "author": str(metadata.get("author", "")),
        "date": str(metadata.get("date", "")),
        "publisher": str(metadata.get("publisher", "")),
        "url": str(metadata.get("url", "")),
        "chunks": chunks,
    }


def list_articles(store: ChromaStore) -> list[dict[str, Any]]:
    """One summary per indexed article, newest first (then by id), from chunk metadata."""
    grouped = store.chunks_by_article()
    summaries = [
        _summary(a, dict(next(iter(grouped[a].values()))), len(grouped[a])) for a in sorted(grouped)
    ]
    summaries.sort(key=lambda s: s["date"], reverse=True)  # stable: ids stay ascending
    return summaries


def reassemble_text(chunks: Sequence[StoredChunk]) -> str:
    """An article's text rebuilt from its chunks by their character offsets.

    Chunks may overlap (a repeated sentence) or leave out the whitespace between them (a
    paragraph break between packed paragraphs, a space between sentences of a split one):
    overlaps are taken once, and a gap is refilled with the whitespace normalised text has
    there, so the offsets of every chunk, and so of every citation, still hold.
    """
    parts: list[str] = []
    position = 0
    for chunk in sorted(chunks, key=lambda c: (int(c.metadata["start"]), int(c.metadata["end"]))):
        start, end = int(chunk.metadata["start"]), int(chunk.metadata["end"])
        if end <= position:
            continue
        if start > position:
            gap = start - position
            parts.append("\n\n" if gap == 2 else " " * gap)
            position = start
        parts.append(chunk.text[position - start :])
        position = end
    return "".join(parts)


# --- server-sent events -----------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _answer_events(
    assistant: Assistant, question: str, history: Sequence[str], filters: SearchFilters | None
) -> Iterator[str]:
    try:
        for event in assistant.stream(question, history, filters):
            if isinstance(event, AnswerDelta):
                yield _sse("token", {"text": event.text})
            elif isinstance(event, Answer):
                yield _sse("answer", event.to_dict())
                return
    except RagError as e:
        yield _sse("error", {"error": _one_line(str(e))})
    except Exception:
        logger.exception("Streaming an answer to %r failed", question)
        yield _sse("error", {"error": INTERNAL_ERROR})


# --- middleware -------------------------------------------------------------------------------


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    """Refuse bodies over the limit: at once by Content-Length, else when the streamed body
    passes it. Article uploads (multipart POST /v1/articles) get the larger upload limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, scope: Scope) -> int:
        headers = MutableHeaders(scope=scope)
        if (
            scope["method"] == "POST"
            and scope["path"] == "/v1/articles"
            and headers.get("content-type", "").startswith("multipart/form-data")
        ):
            return self.max_upload_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = MutableHeaders(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = _BodyTooLarge(limit)
            await JSONResponse({"error": error.detail}, 413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)  # answered by the HTTPException handler
            return message

        await self.app(scope, limited_receive, send)


class FrameAncestors:
    """Say who may frame the chat: ``Content-Security-Policy: frame-ancestors ...`` on every
    response under the chat path, and ``X-Frame-Options`` for old browsers when only the
    server's own origin (or nobody) may frame it."""

    def __init__(self, app: ASGIApp, ancestors: Sequence[str], path: str = CHAT_PATH) -> None:
        self.app = app
        self.path = path
        self.policy = "frame-ancestors " + " ".join(ancestors)
        self.x_frame_options = {"'self'": "SAMEORIGIN", "'none'": "DENY"}.get(
            " ".join(ancestors), ""
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.path or path.startswith(self.path + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy")  # the sign-in page has one
                headers["Content-Security-Policy"] = f"{own}; {self.policy}" if own else self.policy
                if self.x_frame_options:
                    headers["X-Frame-Options"] = self.x_frame_options
            await send(message)

        await self.app(scope, receive, send_with_policy)


class InternalErrors:
    """Answer an unexpected exception with 500 ``internal error`` and log it, once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await JSONResponse({"error": INTERNAL_ERROR}, 500)(scope, receive, send)


# --- errors -----------------------------------------------------------------------------------


def _one_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def error_status(error: RagError) -> int:
    return next(status for kind, status in _ERROR_STATUS if isinstance(error, kind))


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for error in errors[:3]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "json_invalid":
            message = "the body is not valid JSON"
            location = ""
        parts.append(f"{location}: {message}" if location else message)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _install_error_handlers(app: FastAPI) -> None:
    async def rag_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RagError)
        return JSONResponse({"error": _one_line(str(error))}, error_status(error))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse({"error": str(error.detail)}, error.status_code, error.headers)

    async def invalid_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError | ValidationError)
        return JSONResponse({"error": _validation_message(error.errors())}, 422)

    app.add_exception_handler(RagError, rag_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ValidationError, invalid_request)


# --- the chat's sign-in page ------------------------------------------------------------------

_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:12vh auto;padding:0 1rem}"
    "h1{font-size:1.3rem}label{display:block;margin:1rem 0 .3rem}"
    "input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}"
    "button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#b00020}"
)


def sign_in_page(title: str, message: str = "") -> str:
    """The sign-in form: one API key field, posted to ``login`` beside it."""
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Sign in: {html.escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{error}"
        '<form method="post" action="login"><label for="key">API key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required'
        ' autofocus><button type="submit">Sign in</button></form></body></html>'
    )


def sign_out_page(title: str) -> str:
    """A page with the sign-out button, for a browser that opens ``logout`` by address."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Sign out: {html.escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        '<form method="post" action="logout"><button type="submit">Sign out</button></form>'
        "</body></html>"
    )


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        body,
        status,
        headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-store"},
    )


def _cookie_options(request: Request) -> dict[str, Any]:
    return {
        "path": request.scope.get("root_path", "") + CHAT_PATH,
        "secure": request.url.scheme == "https",
        "httponly": True,
        "samesite": "strict",
    }


def _add_sign_in(app: FastAPI, state: ApiState, title: str) -> None:
    """``GET``/``POST /chat/login`` (the form; a valid key starts a session and sets its
    cookie) and ``GET``/``POST /chat/logout`` (ends it). Without keys they lead to the chat."""

    def signed_in(request: Request) -> bool:
        return state.sessions.valid(request.cookies.get(SESSION_COOKIE))

    @app.get(SIGN_IN_PATH, include_in_schema=False)
    def sign_in_form(request: Request) -> Response:
        if not state.keys.configured or signed_in(request):
            return RedirectResponse("./", 303)
        return _page(sign_in_page(title))

    @app.post(SIGN_IN_PATH, include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        if not state.keys.configured:
            return RedirectResponse("./", 303)
        async with request.form(max_files=0, max_fields=4) as form:
            key = form.get("key")
        key = key.strip() if isinstance(key, str) else ""
        if not state.keys.accepts(key):
            return _page(sign_in_page(title, WRONG_KEY if key else MISSING_SIGN_IN_KEY), 401)
        response = RedirectResponse("./", 303)
        response.set_cookie(
            SESSION_COOKIE,
            state.sessions.start(),
            max_age=int(state.sessions.ttl_s),
            **_cookie_options(request),
        )
        return response

    @app.get(SIGN_OUT_PATH, include_in_schema=False)
    def sign_out_form(request: Request) -> Response:
        if not state.keys.configured:
            return RedirectResponse("./", 303)
        return _page(sign_out_page(title))

    @app.post(SIGN_OUT_PATH, include_in_schema=False)
    def sign_out(request: Request) -> Response:
        state.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("login" if state.keys.configured else "./", 303)
        response.delete_cookie(SESSION_COOKIE, **_cookie_options(request))
        return response


def _add_sign_out_button(chat: gr.Blocks) -> None:
    """A sign-out button under the chat: a plain form posting to ``logout`` beside it."""
    import gradio as gr

    with chat:
        gr.HTML(
            '<form method="post" action="logout" style="text-align:right">'
            '<button type="submit" class="sign-out">Sign out</button></form>',
            elem_id="sign-out",
        )


# --- the app ----------------------------------------------------------------------------------


def gradio_script_name() -> str:
    """The hashed file name of the Gradio front end's entry script (``index-<hash>.js``), as
    the installed Gradio's page references it; it changes with each Gradio version."""
    import gradio

    frontend = Path(gradio.__file__).parent / "templates" / "frontend"
    for page in ("index.html", "gradio.js"):
        try:
            found = re.search(r"assets/(index-[\w-]+\.js)", (frontend / page).read_text("utf-8"))
        except OSError:
            continue
        if found:
            return found[1]
    raise ProviderError(f"cannot find Gradio's entry script under {frontend}")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422, 503)
}


def create_app(
    assistant: Assistant, settings: Settings, *, chat: gr.Blocks | None = None
) -> FastAPI:
    """The API around ``assistant``, with ``chat`` (when given) mounted at ``/chat``.

    The model is warmed up in the background when the app starts (``/readyz`` says when).
    Raises ``SettingsError`` when a keys setting cannot be read or holds no key.
    """
    state = ApiState(assistant, settings, ApiKeys(load_api_keys(settings)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.warm_up, name="rag-warm-up", daemon=True).start()
        yield

    app = FastAPI(
        title="newsroom-rag",
        version="1",
        summary="Grounded answers with citations over the newsroom's articles.",
        lifespan=lifespan,
        docs_url=None,  # rag.apidocs serves the docs pages with local assets, not a CDN's
        redoc_url=None,
    )
    app.state.api = state
    add_api_docs(app, "newsroom-rag")
    _install_error_handlers(app)
    _add_routes(app, state)
    # Outermost last: CORS headers go on every answer, errors included.
    app.add_middleware(InternalErrors)
    app.add_middleware(RequireCredentials, state=state)
    app.add_middleware(FrameAncestors, ancestors=settings.frame_ancestor_list)
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Always installed, so that it (not Gradio's own, more lenient one) rules /chat too.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origin_list),
        allow_methods=["GET", "POST", "DELETE"],
        # The origin list is the gate; the chat's web component sends headers of its own.
        allow_headers=["*"],
        allow_credentials=False,
        max_age=600,
    )
    if chat is not None:
        _mount_chat(app, chat, state)
    return app


def _mount_chat(app: FastAPI, chat: gr.Blocks, state: ApiState) -> None:
    import gradio as gr

    script = gradio_script_name()
    # Before the mount: these routes answer /chat/login and /chat/logout, not Gradio's own.
    _add_sign_in(app, state, str(chat.title or "Sign in"))
    if state.keys.configured:
        _add_sign_out_button(chat)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{CHAT_PATH}/")

    @app.get("/embed/gradio.js", include_in_schema=False)
    def embed_script() -> Response:
        """A stable address for the chat's web component script, whose name has a hash.

        It imports the script by its own address rather than redirecting to it: a browser
        keys modules by the address asked for, so a redirect would load Gradio a second time
        when its chunks import it, and the component would not start.
        """
        return Response(
            f'import "..{CHAT_PATH}/assets/{script}";\n',
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/assets/{name}", include_in_schema=False)
    def root_assets(name: str) -> RedirectResponse:
        """Gradio's web component loads its main stylesheet from the server's root
        (``/assets/index-<hash>.css``), not from the path the chat is mounted at."""
        return RedirectResponse(f"{CHAT_PATH}/assets/{name}", 307)

    chat.analytics_enabled = False
    gr.mount_gradio_app(
        app,
        chat,
        path=CHAT_PATH,
        footer_links=["api", "settings"],
        run_history=False,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
    )


def _add_routes(app: FastAPI, state: ApiState) -> None:
    reader = [Depends(_require_reader)]
    writer = [Depends(_require_writer)]

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorOut}})
    def readyz() -> Response:
        """Ready to answer: the model is loaded and the index holds articles."""
        if state.warm_up_error:
            return JSONResponse({"error": f"warming up failed: {state.warm_up_error}"}, 503)
        if not state.warmed.is_set():
            return JSONResponse({"error": "warming up: the model is loading"}, 503)
        gone = state.data_dir_gone()
        if gone:
            return JSONResponse({"error": gone}, 503)
        chunks = state.store.count()
        if chunks == 0:
            return JSONResponse(
                {"error": "the index is empty: add articles (POST /v1/articles or rag ingest)"},
                503,
            )
        return JSONResponse({"status": "ready", "chunks": chunks})

    def prepare(body: AskIn) -> tuple[Assistant, str, SearchFilters | None]:
        assistant = state.assistant_for(body.answerer)
        question = assistant.validate_question(body.question)
        filters = body.filters.to_filters() if body.filters else None
        state.store.require_built()
        return assistant, question, filters

    @app.post(
        "/v1/ask",
        tags=["ask"],
        dependencies=reader,
        responses={200: {"model": AnswerOut}, **_ERRORS},
    )
    def ask(body: AskIn) -> Response:
        """Answer a question: the same object as ``rag ask --json``."""
        assistant, question, filters = prepare(body)
        answer = assistant.ask(question, body.history, filters)
        return JSONResponse(answer.to_dict())

    @app.post(
        "/v1/ask/stream",
        tags=["ask"],
        dependencies=reader,
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "server-sent events: `token` ({text}) as the answer is"
                " produced, then `answer` (the final, verified object of /v1/ask); `error`"
                " ({error}) instead if answering fails part way",
            },
            **_ERRORS,
        },
    )
    def ask_stream(body: AskIn) -> Response:
        """Answer a question as server-sent events."""
        assistant, question, filters = prepare(body)
        return StreamingResponse(
            _answer_events(assistant, question, body.history, filters),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post(
        "/v1/articles",
        tags=["articles"],
        dependencies=writer,
        status_code=201,
        responses={200: {"model": IngestOut}, 201: {"model": IngestOut}, 415: {}, **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": ArticleIn.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "a file rag ingest reads: .md, .txt,"
                                    " .html, .jsonl, .csv",
                                }
                            },
                        }
                    },
                },
            }
        },
    )
    async def add_article(request: Request) -> Response:
        """Add or update one article (JSON) or the articles in an uploaded file (multipart).

        Idempotent: an unchanged article embeds nothing and answers 200 with ``created: false``.
        """
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            article_in = ArticleIn.model_validate_json(await request.body())
            articles = [_article_from_body(article_in)]
            skipped: tuple[tuple[str, str], ...] = ()
        elif content_type.startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=5) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise HTTPException(422, "file: send the article file as the 'file' field")
                name, data = upload.filename or "", await upload.read()
            articles, skipped = await run_in_threadpool(_read_upload, name, data)
        else:
            raise HTTPException(
                415, "send the article as application/json, or a file as multipart/form-data"
            )
        report = await run_in_threadpool(
            state.write, lambda assistant: assistant.add_articles(articles)
        )
        created = report.articles_added > 0
        body = {
            "created": created,
            "article_ids": [a.article_id for a in articles],
            **{k: v for k, v in dataclasses.asdict(report).items() if k != "skipped"},
            "skipped": [{"source": s, "reason": r} for s, r in skipped],
        }
        return JSONResponse(body, 201 if created else 200)

    @app.get(
        "/v1/articles",
        tags=["articles"],
        dependencies=reader,
        response_model=ArticleListOut,
        responses=_ERRORS,
    )
    def get_articles(
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """The indexed articles, newest first, a page at a time."""
        articles = list_articles(state.store)
        page = articles[offset : offset + limit]
        return {"total": len(articles), "offset": offset, "limit": limit, "articles": page}

    @app.get(
        "/v1/articles/{article_id}",
        tags=["articles"],
        dependencies=reader,
        response_model=ArticleOut,
        responses=_ERRORS,
    )
    def get_article(article_id: str) -> dict[str, Any]:
        """One article's metadata and full text, rebuilt from its indexed chunks."""
        chunks = list(state.store.iter_chunks(where={"article_id": article_id}))
        if not chunks:
            raise HTTPException(404, f"no article with id {article_id!r}")
        first = min(chunks, key=lambda c: int(c.metadata.get("start", 0))).metadata
        return {**_summary(article_id, first, len(chunks)), "text": reassemble_text(chunks)}

    @app.delete(
        "/v1/articles/{article_id}",
        tags=["articles"],
        dependencies=writer,
        response_model=DeletedOut,
        responses=_ERRORS,
    )
    def delete_article(article_id: str) -> dict[str, Any]:
        """Remove an article and its chunks from the index."""
        report = state.write(lambda assistant: assistant.remove_articles([article_id]))
        if not report.articles_removed:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return {
            "article_id": article_id,
            "deleted": True,
            "chunks_deleted": report.chunks_deleted,
            "total_chunks": report.total_chunks,
        }


def _article_from_body(body: ArticleIn) -> Article:
    from rag.ingest import article_from_record

    record: dict[object, object] = {k: v for k, v in body.model_dump().items() if v}
    return article_from_record(record, source="api")


def _read_upload(filename: str, data: bytes) -> tuple[list[Article], tuple[tuple[str, str], ...]]:
    """The articles in an uploaded file, read by ``read_articles`` from a temporary copy that
    keeps the file's name (ids may come from it)."""
    from rag.ingest import SUPPORTED_SUFFIXES, read_articles

    name = Path(filename.replace("\\", "/")).name
    if not name or name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise CorpusError(
            f"cannot read an upload named {filename!r}: use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        result = read_articles([path])

    def local(source: str) -> str:
        return source.replace(str(path), name)

    skipped = tuple((local(s.source), s.reason) for s in result.skipped)
    if not result.articles:
        reasons = "; ".join(f"{source}: {reason}" for source, reason in skipped[:3])
        raise CorpusError(f"no article could be read from the upload ({reasons or name})")
    source = f"upload:{name}"
    articles = [
        dataclasses.replace(a, source=a.source.replace(str(path), source)) for a in result.articles
    ]
    return articles, skipped
