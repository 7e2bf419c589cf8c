"""The API's documentation page (Swagger UI at ``/docs``), served offline.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank on a machine
without internet and would make a reader's browser fetch from a third party. ``add_api_docs``
serves the Swagger UI page with the assets bundled in the ``fastapi-offline`` package (MIT),
under ``/docs/static/``, and a Content-Security-Policy that allows only this server's own
scripts plus the page's one inline script, by its hash. There is no ``/redoc``: ReDoc's page
fetches its logo from its vendor's CDN. It does not describe the API (FastAPI
derives ``/openapi.json`` from the routes) or decide who may read it (``rag.api``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
STATIC_PATH = "/docs/static"
STATIC_FILE = re.compile(re.escape(STATIC_PATH) + r"/[\w.-]+")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def static_dir() -> Path:
    """Where the bundled Swagger UI files lie."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def policy(html: str) -> str:
    """The Content-Security-Policy for one docs page: own scripts and the page's inline ones
    (by hash), own styles (Swagger UI also sets inline ones), own or data: images, fetches of
    this server's /openapi.json; nothing from anywhere else."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; font-src 'self'; connect-src 'self';"
        " base-uri 'none'; form-action 'none'"
    )


def _page(response: HTMLResponse) -> HTMLResponse:
    html = bytes(response.body).decode("utf-8")
    return HTMLResponse(html, headers={"Content-Security-Policy": policy(html)})


def add_api_docs(app: FastAPI, title: str) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect`` and their assets on ``app`` (created with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(STATIC_PATH, StaticFiles(directory=static_dir()), name="api-docs-static")

    @app.api_route(DOCS_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{title} - API",
                swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_PATH}/favicon.png",
                oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
            )
        )

    @app.api_route(OAUTH2_REDIRECT_PATH, methods=["GET", "HEAD"], include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return _page(get_swagger_ui_oauth2_redirect_html())
