"""Limits that keep the server answering under load: body sizes (``BodyLimit``) and how many
questions are answered at once (``AskAdmission``).

Bodies are capped by Content-Length and while they stream (413); article uploads (multipart
``POST /v1/articles``) get the larger upload limit. Questions (``POST /v1/ask`` and its
stream) are answered ``max_concurrent_asks`` at a time; up to ``max_queued_asks`` more wait
for a turn, each for at most ``QUEUE_WAIT_S``; any beyond that, or one whose wait runs out,
is answered at once with 503 and ``Retry-After``. Answering is CPU-bound, so letting every
caller in would only make every answer slower until clients time out: a quick, explicit
"come back in a second" is the better failure.

The chat mounted at ``/chat`` answers through the same gate: ``AdmittedAnswering`` wraps the
assistant the chat is built around, so each chat answer takes a turn from Gradio's worker
thread (``anyio.from_thread``) for as long as it streams, and a chat turn that cannot get one
is a ``BusyError``, which the chat shows as its one-line message. Gradio's own queue then
limits nothing (``answer_concurrency=None``): one limit, counted in one place.

It does not limit how often a client may call (no rate limits per key, no 429): a proxy in
front does that better. Writes are not admitted here: they queue for the one writer
(``rag.api.state.WriterQueue``), and large ones run as jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import anyio.from_thread
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api.security import route_path
from rag.errors import BusyError
from rag.schema import AnswerEvent
from rag.store import SearchFilters

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.catalog import Catalog


class BodyTooLarge(HTTPException):
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
            error = BodyTooLarge(limit)
            await JSONResponse({"error": error.detail}, 413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # answered by the HTTPException handler
            return message

        await self.app(scope, limited_receive, send)


QUEUE_WAIT_S = 10.0  # how long a question waits for a turn before it is turned away
RETRY_AFTER_S = 1
ASK_PATHS = frozenset({"/v1/ask", "/v1/ask/stream"})


class AskGate:
    """The turns for answering: ``max_concurrent`` at once, ``max_queued`` waiting. It lives
    in the server's one event loop, so its counts need no lock."""

    def __init__(self, max_concurrent: int, max_queued: int, wait_s: float = QUEUE_WAIT_S) -> None:
        if max_concurrent < 1 or max_queued < 0 or wait_s < 0:
            raise ValueError(
                f"bad admission limits: max_concurrent={max_concurrent},"
                f" max_queued={max_queued}, wait_s={wait_s}"
            )
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.wait_s = wait_s
        self.running = 0
        self.waiting = 0
        self.turned_away = 0
        self._free: asyncio.Semaphore | None = None

    async def enter(self) -> bool:
        """Take a turn (True), or say there is none to be had soon (False)."""
        if self._free is None:  # made in the server's event loop
            self._free = asyncio.Semaphore(self.max_concurrent)
        if not self._free.locked():  # a turn is free and nobody is ahead
            await self._free.acquire()
            self.running += 1
            return True
        if self.waiting >= self.max_queued:
            self.turned_away += 1
            return False
        self.waiting += 1
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait_s)
        except TimeoutError:
            self.turned_away += 1
            return False
        finally:
            self.waiting -= 1
        self.running += 1
        return True

    def leave(self) -> None:
        assert self._free is not None
        self.running -= 1
        self._free.release()

    def busy_message(self) -> str:
        return (
            f"the server is answering {self.running} questions and"
            f" {self.waiting} are waiting: try again in {RETRY_AFTER_S} s"
        )


class AskAdmission:
    """Hold each question to a turn of ``gate``; without one, 503 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, gate: AskGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or route_path(scope) not in ASK_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if not await self.gate.enter():
            response = JSONResponse(
                {"error": self.gate.busy_message()},
                503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)  # a stream keeps its turn until it ends
        finally:
            self.gate.leave()


class AdmittedAnswering:
    """``assistant`` as the chat sees it, each answer held to a turn of ``gate``.

    ``stream`` runs in Gradio's worker threads (one per step of the generator, not always the
    same one), so the turn is taken in the server's event loop through ``anyio.from_thread``
    and handed back with ``call_soon_threadsafe``: also when Gradio closes the generator from
    the loop itself (Stop, a closed page). Without a turn soon, it raises ``BusyError``.
    """

    def __init__(self, assistant: Assistant, gate: AskGate) -> None:
        self.assistant = assistant
        self.gate = gate

    @property
    def max_question_chars(self) -> int:
        return self.assistant.max_question_chars

    def catalog(self) -> Catalog:
        return self.assistant.catalog()

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        filters: SearchFilters | None = None,
    ) -> Iterator[AnswerEvent]:
        loops: list[asyncio.AbstractEventLoop] = []

        async def enter() -> bool:
            loops.append(asyncio.get_running_loop())
            return await self.gate.enter()

        if not anyio.from_thread.run(enter):
            raise BusyError(self.gate.busy_message())
        try:
            yield from self.assistant.stream(question, history, filters)
        finally:
            loops[0].call_soon_threadsafe(self.gate.leave)
