"""Errors at the HTTP edge: every failure is answered as JSON ``{"error": "<one line>"}``.

A ``RagError`` keeps its message, with a status chosen by its kind (``error_status``); a
request that fails validation gets the first few problems in one line (422); anything
unexpected is logged once and answered 500 ``internal error``, so no traceback reaches a
client. It does not decide what is an error: the routes and the core raise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import (
    CorpusError,
    IndexLockedError,
    IndexNotBuiltError,
    ProviderError,
    QuestionError,
    RagError,
    SettingsError,
)

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error"

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


def one_line(message: str) -> str:
    """The first non-blank line of ``message``, stripped."""
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def error_status(error: RagError) -> int:
    return next(status for kind, status in _ERROR_STATUS if isinstance(error, kind))


def validation_message(errors: Sequence[Any]) -> str:
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


async def _rag_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RagError)
    return JSONResponse({"error": one_line(str(error))}, error_status(error))


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"error": str(error.detail)}, error.status_code, error.headers)


async def _invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError | ValidationError)
    return JSONResponse({"error": validation_message(error.errors())}, 422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ValidationError, _invalid_request)


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
