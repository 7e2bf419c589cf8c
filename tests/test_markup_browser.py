"""Article markup quoted in an answer is shown as text and fetches nothing, in headless Chromium.

An article holds an ``<img>`` pointing at a local "tracking pixel" server that counts requests,
plus ``<b>`` and ``<script>``. The real stack (packaged models, Chroma in a temporary
directory, the Gradio chat on uvicorn on 127.0.0.1) answers a question by quoting that
sentence. The reader's browser must show the markup literally, exactly as quoted, and make
zero requests to the pixel server. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import app as chat_ui
from rag.api import create_app
from rag.assistant import Assistant
from rag.config import Settings
from tests.test_api import serve
from tests.test_embed_browser import (  # noqa: F401  (browser: the fixture)
    CHROMIUM,
    WAIT_MS,
    browser,
    local_server,
)

pytestmark = pytest.mark.integration

QUESTION = "How much will rebuilding the harbour wall cost?"


@contextmanager
def pixel_server() -> Iterator[tuple[str, list[str]]]:
    """A local server that answers every GET with a 1x1 GIF and records the path asked."""
    hits: list[str] = []
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.send_header("Content-Length", str(len(gif)))
            self.end_headers()
            self.wfile.write(gif)

    with local_server(Handler) as url:
        yield url, hits


def test_quoted_markup_is_shown_as_text_and_makes_no_request(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    with pixel_server() as (pixel, hits):
        image = f'<img src="{pixel}/pixel.gif">'
        sentence = (
            f"The town council voted on Monday to rebuild the harbour wall {image} at a cost"
            " of <b>4 million</b> pounds <script>steal()</script>, after winter storms broke"
            " it in two places."
        )
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        (corpus / "harbour.md").write_text(
            "---\nid: harbour-wall\ntitle: Council votes to rebuild the harbour wall\n"
            f"author: Ana Diaz\ndate: 2017-01-09\n---\n\n{sentence}\n\n"
            "Work will start in the spring and last two years, the council said.\n",
            encoding="utf-8",
        )
        settings = Settings(data_dir=tmp_path / "index")
        Assistant.open(settings).ingest([corpus], progress=False)
        assistant = Assistant.open(settings)
        answer = assistant.ask(QUESTION)
        assert not answer.refused and image in answer.answer  # the quote holds the markup

        api = create_app(assistant, settings, chat=chat_ui.build_app)
        with serve(api) as chat:
            page = browser.new_page()
            try:
                page.goto(f"{chat}/chat/", timeout=WAIT_MS)
                box = page.locator("textarea").first
                box.wait_for(state="visible", timeout=WAIT_MS)
                box.fill(QUESTION)
                box.press("Enter")
                bot = page.locator(".message.bot, [data-testid='bot']").filter(has_text="Sources")
                bot.last.wait_for(state="visible", timeout=WAIT_MS)
                shown = bot.last.inner_text(timeout=WAIT_MS)
                page.wait_for_timeout(500)  # time for any image the answer holds to be fetched
                images = bot.last.locator("img, svg image, script").count()
            finally:
                page.close()
    assert hits == [], f"the answer made the browser fetch {hits}"
    assert images == 0
    assert image in shown and "<b>4 million</b>" in shown and "<script>steal()</script>" in shown
