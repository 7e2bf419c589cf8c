"""What the routes share: the assistant(s), the keys and chat sessions, warm-up state, the
writer and the background jobs (``ApiState``), found by routes through ``api_state``.

Writes in this process take one lock, so they queue rather than fail on the index's file
lock; another process writing the same index still gets 409. It holds no route and does not
decide who may call what (``rag.api.security``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from fastapi import Request
from starlette.exceptions import HTTPException

from rag.api.errors import one_line
from rag.api.jobs import Jobs, Progress
from rag.api.security import ApiKeys, Sessions
from rag.assistant import Assistant
from rag.config import ServeSettings
from rag.errors import IndexNotBuiltError, ProviderError
from rag.index import IngestReport
from rag.schema import Article
from rag.store import ChromaStore

logger = logging.getLogger(__name__)


class ApiState:
    """The assistant(s), the keys and chat sessions, warm-up state, the writer and the jobs."""

    def __init__(self, assistant: Assistant, settings: ServeSettings, keys: ApiKeys) -> None:
        self.assistant = assistant
        self.settings = settings
        self.keys = keys
        self.sessions = Sessions()
        self.chat_title = "Sign in"
        self.jobs = Jobs()
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
            self.warm_up_error = one_line(str(e)) or type(e).__name__
            logger.exception("Warming up failed")
            return
        self.warmed.set()

    def assistant_for(self, answerer: str | None) -> Assistant:
        """The assistant for ``answerer``: the server's own, or a second one built on first use
        that shares its embedder and store."""
        if answerer is None or answerer == self.assistant.settings.answer.answerer:
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
        index = self.assistant.settings.index
        if index.chroma_url or index.data_dir.is_dir():
            return ""
        return (
            f"the data dir {index.data_dir} was removed while the server was running:"
            " restore it, or restart the server to start a new index"
        )

    def write(self, change: Callable[[Assistant], IngestReport]) -> IngestReport:
        """Run ``change(assistant)`` as the only writer, then let every assistant see it."""
        gone = self.data_dir_gone()
        if gone:
            raise ProviderError(gone)
        with self._write_lock:
            report = change(self.assistant)
        with self._others_lock:
            others = list(self._others.values())
        for other in others:
            other.index_changed()
        return report

    def ingest(self, articles: Sequence[Article], progress: Progress | None = None) -> IngestReport:
        """Add or update ``articles`` as the only writer, reporting chunks embedded."""
        report = self.write(lambda assistant: assistant.add_articles(articles))
        if progress is not None:
            progress.advance(report.chunks_embedded)
        return report


def api_state(request: Request) -> ApiState:
    """A route dependency: the app's shared state."""
    state: ApiState = request.app.state.api
    return state
