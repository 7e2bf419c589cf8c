"""The HTTP API: ask questions and manage articles over REST, with the chat mounted beside it.

``create_app(assistant, settings, chat=app.build_app)`` returns one FastAPI app, which ``rag
serve`` runs with uvicorn; it builds the chat itself, around the assistant held to the same
question admission as ``/v1/ask`` (``limits.AdmittedAnswering``):

- ``POST /v1/ask`` (the ``Answer.to_dict()`` object, as ``rag ask --json``), ``POST
  /v1/ask/stream`` (server-sent events ``token`` ... ``answer``, or ``error``);
- ``POST /v1/articles`` (one article as JSON, or a file upload in any format ``rag ingest``
  reads), ``GET /v1/articles`` (paged), ``GET``/``DELETE /v1/articles/{id}``; a large ingest
  (or one asked for with ``Prefer: respond-async``) runs as a background job: ``202`` with
  ``Location: /v1/jobs/{id}``, and ``GET /v1/jobs/{id}`` for its progress and result;
- ``GET /healthz`` (the process is up), ``GET /readyz`` (model loaded and index not empty);
- OpenAPI at ``/docs`` and ``/openapi.json``; the Gradio chat at ``/chat/`` (``/`` redirects
  there) and ``/embed/gradio.js``, a stable address for its web component's hashed script.

The package, one concern a module: ``app`` (the composition root: ``create_app`` and the
chat's mount), ``security`` (API keys, the chat's sign-in sessions, the routes left open and
the headers that say who may frame or script a page), ``models`` (request bodies, and the
response models derived from ``rag.schema``'s dataclasses), ``state`` (what the routes share:
the assistant, the writer and the jobs), ``jobs`` (background ingests), ``limits`` (body
sizes and admission control for questions), ``errors`` (one-line JSON errors), and the routes
by resource: ``health``, ``ask``, ``articles``.

Every error is JSON ``{"error": "<one line>"}``: a ``RagError`` keeps its message (422, 409
for a locked index, 503 for an empty one); anything unexpected is logged and answered 500
``internal error``; a question beyond the server's capacity is 503 with ``Retry-After`` (in
the chat, the same message as its one-line reply).

What it deliberately does not do: retrieve, answer or index by itself (``Assistant`` and
``Indexer`` do, the same code as the CLI), read the environment (``Settings`` arrive built),
or keep sessions or jobs across restarts or processes.
"""

from rag.api.app import create_app, gradio_script_name
from rag.api.articles import list_articles, reassemble_text
from rag.api.errors import INTERNAL_ERROR, error_status
from rag.api.models import AnswerOut, IngestOut, JobOut
from rag.api.security import (
    MISSING_KEY,
    OPEN_ROUTES,
    SESSION_COOKIE,
    WRITES_DISABLED,
    WRONG_KEY,
    ApiKeys,
    Sessions,
    is_open,
    key_in,
    load_api_keys,
)

__all__ = [
    "INTERNAL_ERROR",
    "MISSING_KEY",
    "OPEN_ROUTES",
    "SESSION_COOKIE",
    "WRITES_DISABLED",
    "WRONG_KEY",
    "AnswerOut",
    "ApiKeys",
    "IngestOut",
    "JobOut",
    "Sessions",
    "create_app",
    "error_status",
    "gradio_script_name",
    "is_open",
    "key_in",
    "list_articles",
    "load_api_keys",
    "reassemble_text",
]
