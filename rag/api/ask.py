"""``POST /v1/ask`` (one answer, the ``Answer.to_dict()`` object of ``rag ask --json``) and
``POST /v1/ask/stream`` (server-sent events: ``token`` ... then ``answer``, or ``error``).

The same ``Assistant`` the CLI uses answers; this module only turns bodies into its arguments
and its answers into JSON. It does not limit how many questions run at once
(``rag.api.limits.AskAdmission`` does, in front of these routes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response, StreamingResponse

from rag.api.errors import INTERNAL_ERROR, one_line
from rag.api.models import ERRORS, AnswerOut, AskIn
from rag.api.security import READER
from rag.api.state import ApiState, api_state
from rag.assistant import Assistant
from rag.errors import RagError
from rag.retrieve import SearchFilters
from rag.schema import Answer, AnswerDelta

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ask"], dependencies=READER)


def _prepare(state: ApiState, body: AskIn) -> tuple[Assistant, str, SearchFilters | None]:
    assistant = state.assistant_for(body.answerer)
    question = assistant.validate_question(body.question)
    filters = body.filters.to_filters() if body.filters else None
    state.store.require_built()
    return assistant, question, filters


@router.post("/v1/ask", responses={200: {"model": AnswerOut}, **ERRORS})
def ask(body: AskIn, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Answer a question: the same object as ``rag ask --json``."""
    assistant, question, filters = _prepare(state, body)
    answer = assistant.ask(question, body.history, filters)
    return JSONResponse(answer.to_dict())


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer_events(
    assistant: Assistant, question: str, history: Sequence[str], filters: SearchFilters | None
) -> Iterator[str]:
    try:
        for event in assistant.stream(question, history, filters):
            if isinstance(event, AnswerDelta):
                yield sse("token", {"text": event.text})
            elif isinstance(event, Answer):
                yield sse("answer", event.to_dict())
                return
    except RagError as e:
        yield sse("error", {"error": one_line(str(e))})
    except Exception:
        logger.exception("Streaming an answer to %r failed", question)
        yield sse("error", {"error": INTERNAL_ERROR})


@router.post(
    "/v1/ask/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "server-sent events: `token` ({text}) as the answer is"
            " produced, then `answer` (the final, verified object of /v1/ask); `error`"
            " ({error}) instead if answering fails part way",
        },
        **ERRORS,
    },
)
def ask_stream(body: AskIn, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Answer a question as server-sent events."""
    assistant, question, filters = _prepare(state, body)
    return StreamingResponse(
        answer_events(assistant, question, body.history, filters),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
