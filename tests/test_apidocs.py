"""The API's documentation pages (rag.apidocs) load offline: only this server's own files.

Unit tests read the pages and the policy over ASGI; the browser test opens /docs in headless
Chromium against the real app on 127.0.0.1 and checks that it renders the API's
routes, with every request going to that server and no Content-Security-Policy violation.
Every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.apidocs import policy
from rag.assistant import Assistant
from rag.config import Settings
from tests.test_api import serve
from tests.test_embed_browser import CHROMIUM, WAIT_MS, browser  # noqa: F401  (the fixture)


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(Assistant.open(settings), settings))


@pytest.mark.parametrize("path", ["/docs", "/docs/oauth2-redirect"])
def test_docs_pages_name_only_this_servers_files(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text.replace(
        "https://github.com", ""
    )
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]


def test_the_bundled_assets_are_served(client: TestClient) -> None:
    for name, kind in [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")]:
        asset = client.get(f"/docs/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert len(asset.content) > 10_000


def test_the_policy_allows_each_inline_script_by_its_hash() -> None:
    one = policy("<script>a()</script>")
    two = policy("<script>b()</script>")
    assert "'sha256-" in one and one != two


@pytest.mark.integration
def test_docs_render_offline_in_chromium(
    settings: Settings,
    browser: Any,  # noqa: F811
) -> None:
    path, shown = "/docs", ".opblock"
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    api = create_app(Assistant.open(settings), settings)
    with serve(api) as url:
        own = urlsplit(url).netloc
        page = browser.new_page()
        elsewhere: list[str] = []
        violations: list[str] = []
        page.on(
            "request",
            lambda r: (
                None
                if urlsplit(r.url).scheme in ("data", "blob") or urlsplit(r.url).netloc == own
                else elsewhere.append(r.url)
            ),
        )
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        try:
            page.goto(f"{url}{path}", timeout=WAIT_MS)
            page.locator(shown).first.wait_for(state="visible", timeout=WAIT_MS)
            text = page.inner_text("body", timeout=WAIT_MS)
        finally:
            page.close()
    assert elsewhere == [], f"{path} fetched {elsewhere}"
    assert violations == [], violations
    assert "/v1/ask" in text
