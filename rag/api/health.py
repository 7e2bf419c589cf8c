"""``GET /healthz`` (the process is up) and ``GET /readyz`` (ready to answer).

Both are open without a key (``rag.api.security.OPEN_ROUTES``) and show no article: readiness
gives the chunk count, for operators' checks. They do not check the language model's server
(an unreachable one degrades answers, with a notice, rather than stopping them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from rag.api.models import ErrorOut
from rag.api.state import ApiState, api_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorOut}})
def readyz(state: Annotated[ApiState, Depends(api_state)]) -> Response:
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
