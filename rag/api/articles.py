"""The articles: ``POST /v1/articles`` (JSON or a file upload), ``GET /v1/articles`` (paged),
``GET``/``DELETE /v1/articles/{id}``, and ``GET /v1/jobs/{id}`` for ingests run in the
background.

A write of more than ``async_ingest_chars`` characters of article text, or any write sent
with ``Prefer: respond-async`` (RFC 7240), is answered ``202 Accepted`` with ``Location:
/v1/jobs/{id}`` and runs as a job (``rag.api.jobs``); smaller ones are answered when done.
The size decides by default because a client cannot know how long an upload will take to
embed, and a request that runs past its timeout leaves it guessing what happened.
A listing and an article's text are rebuilt from the stored chunks: nothing else is kept.

It does not read files itself (``rag.readers`` do, the same readers as ``rag ingest``) or
index them (``Assistant`` and ``rag.index`` do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from rag.api.jobs import JobsFullError, Progress
from rag.api.models import (
    ERRORS,
    ArticleIn,
    ArticleListOut,
    ArticleOut,
    DeletedOut,
    IngestOut,
    JobOut,
)
from rag.api.security import READER, WRITER
from rag.api.state import ApiState, api_state
from rag.chunk import reassemble
from rag.errors import CorpusError
from rag.index import IngestReport
from rag.schema import Article
from rag.store import SearchFilters, StoredChunk, VectorStore

MAX_PAGE = 500
Skipped = tuple[tuple[str, str], ...]

router = APIRouter(tags=["articles"])


# --- listing and reassembly -------------------------------------------------------------------


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


def list_articles(store: VectorStore) -> list[dict[str, Any]]:
    """One summary per indexed article, newest first (then by id), from chunk metadata."""
    grouped = store.chunks_by_article()
    summaries = [
        _summary(a, dict(next(iter(grouped[a].values()))), len(grouped[a])) for a in sorted(grouped)
    ]
    summaries.sort(key=lambda s: s["date"], reverse=True)  # stable: ids stay ascending
    return summaries


def reassemble_text(chunks: Sequence[StoredChunk]) -> str:
    """An article's text rebuilt from its stored chunks (``rag.chunk.reassemble``)."""
    return reassemble((int(c.metadata["start"]), int(c.metadata["end"]), c.text) for c in chunks)


# --- reading what was posted ------------------------------------------------------------------


def article_from_body(body: ArticleIn) -> Article:
    from rag.readers import article_from_record

    record: dict[object, object] = {k: v for k, v in body.model_dump().items() if v}
    return article_from_record(record, source="api")


def read_upload(filename: str, data: bytes) -> tuple[list[Article], Skipped]:
    """The articles in an uploaded file, read from its bytes by the reader of its format
    (``rag.readers.read_bytes``: no temporary file); its name picks the reader and may give
    the ids."""
    from rag.readers import UnreadableSource, read_bytes, reader_for, supported_suffixes

    name = Path(filename.replace("\\", "/")).name
    if not name or name.startswith(".") or reader_for(name) is None:
        raise CorpusError(
            f"cannot read an upload named {filename!r}:"
            f" use one of {', '.join(supported_suffixes())}"
        )
    try:
        result = read_bytes(name, data)
    except UnreadableSource as error:
        raise CorpusError(
            f"no article could be read from the upload ({error.source}: {error.reason})"
        ) from error
    skipped = tuple((s.source, s.reason) for s in result.skipped)
    if not result.articles:
        reasons = "; ".join(f"{source}: {reason}" for source, reason in skipped[:3])
        raise CorpusError(f"no article could be read from the upload ({reasons or name})")
    source = f"upload:{name}"
    articles = [dataclasses.replace(a, source=source) for a in result.articles]
    return articles, skipped


async def _posted_articles(request: Request) -> tuple[list[Article], Skipped]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        article_in = ArticleIn.model_validate_json(await request.body())
        return [article_from_body(article_in)], ()
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "file: send the article file as the 'file' field")
            name, data = upload.filename or "", await upload.read()
        return await run_in_threadpool(read_upload, name, data)
    raise HTTPException(
        415, "send the article as application/json, or a file as multipart/form-data"
    )


def ingest_body(
    report: IngestReport, articles: Sequence[Article], skipped: Skipped
) -> dict[str, Any]:
    """What ``POST /v1/articles`` answers (``IngestOut``), from the indexer's report."""
    body = {
        "created": report.articles_added > 0,
        "article_ids": [a.article_id for a in articles],
        **{k: v for k, v in dataclasses.asdict(report).items() if k != "skipped"},
        "skipped": [{"source": s, "reason": r} for s, r in skipped],
    }
    return IngestOut.model_validate(body).model_dump()


def _wants_async(request: Request) -> bool:
    """``Prefer: respond-async`` (RFC 7240), among the header's other preferences."""
    preferences = ",".join(request.headers.getlist("prefer"))
    return any(p.split(";")[0].strip().lower() == "respond-async" for p in preferences.split(","))


# --- routes -----------------------------------------------------------------------------------

_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "a file rag ingest reads: .md, .txt, .html, .jsonl, .csv",
        }
    },
}


@router.post(
    "/v1/articles",
    dependencies=WRITER,
    status_code=201,
    responses={
        200: {"model": IngestOut},
        201: {"model": IngestOut},
        202: {
            "model": JobOut,
            "description": "a large ingest (or one sent with `Prefer: respond-async`) runs in"
            " the background: follow `Location` (`/v1/jobs/{id}`)",
        },
        415: {},
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ArticleIn.model_json_schema()},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def add_article(request: Request, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Add or update one article (JSON) or the articles in an uploaded file (multipart).

    Idempotent: an unchanged article embeds nothing and answers 200 with ``created: false``.
    A large ingest answers 202 and runs as a job.
    """
    articles, skipped = await _posted_articles(request)
    asked = _wants_async(request)
    if asked or sum(len(a.text) for a in articles) > state.settings.async_ingest_chars:
        return _start_job(request, state, articles, skipped, asked)
    report = await run_in_threadpool(state.ingest, articles)
    body = ingest_body(report, articles, skipped)
    return JSONResponse(body, 201 if body["created"] else 200)


def _start_job(
    request: Request,
    state: ApiState,
    articles: list[Article],
    skipped: Skipped,
    asked: bool,
) -> Response:
    def work(progress: Progress) -> dict[str, Any]:
        return ingest_body(state.ingest(articles, progress), articles, skipped)

    try:
        job = state.jobs.submit("ingest", work, unit="chunks")
    except JobsFullError as e:
        raise HTTPException(503, str(e), headers={"Retry-After": "30"}) from e
    location = f"{request.scope.get('root_path', '')}/v1/jobs/{job.job_id}"
    headers = {"Location": location}
    if asked:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(dataclasses.asdict(job), 202, headers=headers)


@router.get("/v1/jobs/{job_id}", dependencies=WRITER, response_model=JobOut, responses=ERRORS)
def get_job(job_id: str, state: Annotated[ApiState, Depends(api_state)]) -> dict[str, Any]:
    """A background ingest: queued, running (with chunks done of total), done (with what
    ``POST /v1/articles`` would have answered) or failed (with why). Jobs last as long as the
    server process: after a restart an id is unknown (404), and the article it was writing
    stays at its last complete version."""
    job = state.jobs.status(job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id!r} (jobs do not outlive a restart)")
    return dataclasses.asdict(job)


@router.get("/v1/articles", dependencies=READER, response_model=ArticleListOut, responses=ERRORS)
def get_articles(
    state: Annotated[ApiState, Depends(api_state)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """The indexed articles, newest first, a page at a time."""
    articles = list_articles(state.store)
    page = articles[offset : offset + limit]
    return {"total": len(articles), "offset": offset, "limit": limit, "articles": page}


@router.get(
    "/v1/articles/{article_id}", dependencies=READER, response_model=ArticleOut, responses=ERRORS
)
def get_article(article_id: str, state: Annotated[ApiState, Depends(api_state)]) -> dict[str, Any]:
    """One article's metadata and full text, rebuilt from its indexed chunks."""
    chunks = list(state.store.iter_chunks(SearchFilters(article_ids=(article_id,))))
    if not chunks:
        raise HTTPException(404, f"no article with id {article_id!r}")
    first = min(chunks, key=lambda c: int(c.metadata.get("start", 0))).metadata
    return {**_summary(article_id, first, len(chunks)), "text": reassemble_text(chunks)}


@router.delete(
    "/v1/articles/{article_id}", dependencies=WRITER, response_model=DeletedOut, responses=ERRORS
)
def delete_article(
    article_id: str, state: Annotated[ApiState, Depends(api_state)]
) -> dict[str, Any]:
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
