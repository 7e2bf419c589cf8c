"""The composition root of the HTTP API: ``create_app`` wires the routers, the guards, the
limits and the error handlers around one ``Assistant``, and mounts the Gradio chat.

Middleware, from the outside in: CORS (so its headers go on every answer, errors included),
body limits, frame-ancestors for the chat, the credentials guard, the last-resort 500, and
admission for questions.
It does not define routes (``health``, ``ask``, ``articles``, ``security``'s sign-in) or read
the environment (``Settings`` arrive built).
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse, Response

from rag.api import articles, ask, health
from rag.api.errors import InternalErrors, install_error_handlers
from rag.api.limits import AdmittedAnswering, AskAdmission, BodyLimit
from rag.api.security import (
    CHAT_PATH,
    ApiKeys,
    FrameAncestors,
    RequireCredentials,
    add_sign_out_button,
    load_api_keys,
    sign_in_router,
)
from rag.api.state import ApiState
from rag.apidocs import add_api_docs
from rag.assistant import Assistant
from rag.config import ServeSettings
from rag.errors import ProviderError

if TYPE_CHECKING:
    import gradio as gr


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


class ChatBuilder(Protocol):
    """How the chat is built (``app.build_app``): around the answering object it is handed,
    with Gradio's own queue limit set by the caller."""

    def __call__(
        self, assistant: AdmittedAnswering, /, *, answer_concurrency: int | None = ...
    ) -> gr.Blocks: ...


def create_app(
    assistant: Assistant, settings: ServeSettings, *, chat: ChatBuilder | None = None
) -> FastAPI:
    """The API around ``assistant``, with the chat ``chat`` builds (when given) mounted at
    ``/chat``. The chat is built here, around the assistant held to the same question
    admission as ``/v1/ask``, so that no path answers past the limit.

    The model is warmed up in the background when the app starts (``/readyz`` says when).
    Raises ``SettingsError`` when a keys setting cannot be read or holds no key.
    """
    state = ApiState(assistant, settings, ApiKeys(load_api_keys(settings)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=state.warm_up, name="rag-warm-up", daemon=True).start()
        yield
        state.jobs.close()

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
    install_error_handlers(app)
    for router in (health.router, ask.router, articles.router):
        app.include_router(router)
    # Outermost last: CORS headers go on every answer, errors included. Admission is inside
    # the credentials guard, so a caller without a key never takes a turn.
    app.add_middleware(AskAdmission, gate=state.asks)
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
        blocks = chat(AdmittedAnswering(assistant, state.asks), answer_concurrency=None)
        _mount_chat(app, blocks, state)
    return app


def _mount_chat(app: FastAPI, chat: gr.Blocks, state: ApiState) -> None:
    import gradio as gr

    script = gradio_script_name()
    state.chat_title = str(chat.title or "Sign in")
    # Before the mount: these routes answer /chat/login and /chat/logout, not Gradio's own.
    app.include_router(sign_in_router)
    if state.keys.configured:
        add_sign_out_button(chat)

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
        footer_links=[],  # the chat's own footer links the /v1 docs; no Gradio developer links
        run_history=False,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
    )
