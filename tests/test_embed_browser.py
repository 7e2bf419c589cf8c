"""The chat embedded in another site's page, as a reader would see it, in headless Chromium.

``rag serve``'s app (real model, the bundled corpus) runs on uvicorn on one 127.0.0.1 port; a
"newsroom CMS" page is served from a second local server on another port, a different origin
that ``frame_ancestors`` (and, for the web component, ``cors_origins``) allow. Playwright drives
the system Chromium (/usr/bin/chromium, installed by ``make test``; never downloaded): it asks a
question inside the embedded chat and waits for an answer with a "Sources" section, saving a
screenshot to ``tests/artifacts/``. A page from a third origin, not allowed, must not get the
chat into its frame. Every wait is bounded, so the test stops by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import app as chat_ui
from rag.api import create_app
from rag.assistant import Assistant
from rag.config import Settings
from tests.conftest import CORPUS, REPO
from tests.test_api import serve

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
QUESTION = "On what date were the International Digital Strategy proposals published?"
WAIT_MS = 60_000


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free 127.0.0.1 port in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def host_site(pages: dict[str, str]) -> Iterator[str]:
    """A second local web server (another origin) serving ``pages`` (path -> HTML)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = pages.get(self.path.split("?", 1)[0])
            if body is None:
                self.send_error(404)
                return
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with local_server(Handler) as url:
        yield url


def iframe_page(chat_url: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Newsroom CMS</title>
<style>body {{ font-family: sans-serif; margin: 16px; }} h1 {{ font-size: 20px; }}</style>
</head><body>
<h1>Research desk: ask the archive</h1>
<iframe id="chat" src="{chat_url}/chat/" title="Ask the news articles"
        style="width: 100%; height: 860px; border: 1px solid #ccc"></iframe>
</body></html>"""


def web_component_page(chat_url: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Newsroom CMS</title>
<script type="module" src="{chat_url}/embed/gradio.js"></script>
</head><body>
<h1>Research desk (web component)</h1>
<gradio-app src="{chat_url}/chat/"></gradio-app>
</body></html>"""


@dataclass
class Sites:
    chat: str
    host: str


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    pages: dict[str, str] = {}
    with host_site(pages) as host:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("index"),
            frame_ancestors=f"'self' {host}",
            cors_origins=host,
        )
        Assistant.open(settings).ingest([CORPUS], progress=False)
        assistant = Assistant.open(settings)
        api = create_app(assistant, settings, chat=chat_ui.build_app)
        with serve(api) as chat:
            pages["/iframe.html"] = iframe_page(chat)
            pages["/component.html"] = web_component_page(chat)
            yield Sites(chat=chat, host=host)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def ask_in(frame: Any, question: str) -> Any:
    """Type ``question`` into the chat in ``frame`` and return the locator of the answer."""
    box = frame.locator("textarea").first
    box.wait_for(state="visible", timeout=WAIT_MS)
    box.fill(question)
    box.press("Enter")
    answer = frame.locator(".message.bot, [data-testid='bot']").filter(has_text="Sources").last
    answer.wait_for(state="visible", timeout=WAIT_MS)
    return answer


def test_the_chat_answers_inside_an_iframe_on_another_origin(sites: Sites, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 960})
    try:
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{sites.host}/iframe.html", wait_until="domcontentloaded")
        answer = ask_in(page.frame_locator("#chat"), QUESTION)
        text = answer.inner_text()
        assert "June 5" in text and "Sources" in text
        assert "Why Europe Should Double Down On Its Global Tech Ties" in text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "embedded-chat.png"), full_page=True)
    finally:
        page.close()


def test_the_chat_answers_as_a_web_component(sites: Sites, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 960})
    try:
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{sites.host}/component.html", wait_until="domcontentloaded")
        text = ask_in(page.locator("gradio-app"), QUESTION).inner_text()
        assert "June 5" in text and "Sources" in text
        page.screenshot(path=str(ARTIFACTS / "embedded-web-component.png"), full_page=True)
    finally:
        page.close()


def test_an_origin_that_is_not_allowed_cannot_frame_the_chat(sites: Sites, browser: Any) -> None:
    with host_site({"/iframe.html": iframe_page(sites.chat)}) as other:
        import httpx

        policy = httpx.get(f"{sites.chat}/chat/", timeout=30).headers["content-security-policy"]
        assert policy == f"frame-ancestors 'self' {sites.host}"
        assert other not in policy

        page = browser.new_page()
        try:
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{other}/iframe.html", wait_until="load")
            frame = page.frame_locator("#chat")
            # Chromium shows its own error page in place of the chat: no chat box ever appears.
            page.wait_for_timeout(1500)
            assert frame.locator("textarea").count() == 0
        finally:
            page.close()
