"""Tests for who may read: the API keys, the chat's sign-in and the routes left open (``rag.api``).

With keys configured, every route of the app (the FastAPI routes and every route of the mounted
Gradio app, found by walking the mount) must refuse a request without credentials, except the
few this file lists as open on purpose. The chat's own endpoints (``POST
/chat/gradio_api/call/respond`` first of all) work with the session cookie the sign-in form sets
or with a key, and sign-out ends the session on the server. A keys setting that yields no key
stops ``rag serve`` with one line. Without keys, everything stays open as before.

The walk and the sign-in flow run against uvicorn on 127.0.0.1 with client timeouts, so a
route that streamed forever would fail the test instead of hanging it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from gradio_client import Client
from starlette.routing import BaseRoute, Mount
from starlette.websockets import WebSocketDisconnect

import app as chat_ui
from rag.api import MISSING_KEY, SESSION_COOKIE, WRONG_KEY, Sessions, create_app, load_api_keys
from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import SettingsError
from tests.conftest import CORPUS
from tests.test_api import AUTH, KEY, OTHER_KEY, PARTNERS_Q, serve
from tests.test_app import only_loopback  # noqa: F401 - autouse: fail any non-local connection

TIMEOUT_S = 20.0
CALL = "/chat/gradio_api/call/respond"
# Text only the archive holds: no open route may show it.
ARCHIVE_TEXT = ("Why Europe Should Double Down", "India, South Korea and Japan")

# Routes answered without credentials even when keys are configured, and why (method sets as
# the walk reports them). Anything not listed here must be refused.
LEFT_OPEN: dict[str, set[str]] = {
    "/healthz": {"GET"},  # liveness
    "/readyz": {"GET"},  # readiness and the chunk count, for load balancers and operators
    "/openapi.json": {"GET", "HEAD"},  # the API's description: schemas, no archive data
    "/docs": {"GET", "HEAD"},
    "/docs/oauth2-redirect": {"GET", "HEAD"},
    "/docs/static/{rest:path}": {"GET"},  # Swagger UI's own files (rag.apidocs)
    "/": {"GET"},  # a redirect to /chat/
    "/embed/gradio.js": {"GET"},  # one line importing the chat's (guarded) script
    "/assets/{name}": {"GET"},  # a redirect into the chat's (guarded) assets
    "/chat/login": {"GET", "POST"},  # the sign-in form
    "/chat/logout": {"POST"},  # sign-out: it only ends the session the cookie names
}


def base_settings(data_dir: Path, **changes: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        embedding_provider="fake-hash",
        min_evidence=0.3,
        judge="fake-overlap",
    ).replace(**changes)


def whole_app(settings: Settings) -> FastAPI:
    """What ``rag serve`` runs: the API with the chat mounted."""
    assistant = Assistant.open(settings)
    return create_app(assistant, settings, chat=chat_ui.build_app)


@pytest.fixture(scope="module")
def keyed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = base_settings(tmp_path_factory.mktemp("index"), api_keys=f"{KEY},{OTHER_KEY}")
    Assistant.open(settings).ingest([CORPUS], progress=False)
    return settings


@pytest.fixture(scope="module")
def keyed_app(keyed_settings: Settings) -> FastAPI:
    """The app the module's server runs. Tests that run an app in-process (``TestClient``)
    build their own: leaving its lifespan stops the chat's queue for good."""
    return whole_app(keyed_settings)


@pytest.fixture(scope="module")
def keyed_url(keyed_app: FastAPI) -> Iterator[str]:
    with serve(keyed_app) as url:
        yield url


@pytest.fixture
def http(keyed_url: str) -> Iterator[httpx.Client]:
    """A fresh client (no cookies) for the keyed server."""
    with httpx.Client(base_url=keyed_url, timeout=TIMEOUT_S) as client:
        yield client


# --- the walk ---------------------------------------------------------------------------------


def every_route(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(method, path)`` for every route, into mounted apps (Gradio's included)."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Mount):
            if route.routes:
                yield from every_route(route.routes, prefix + route.path)
            else:  # a mounted app without routes of its own (static files)
                yield "GET", prefix + route.path + "/{rest:path}"
            continue
        path = prefix + str(context.path)
        for method in sorted(context.methods or {"WEBSOCKET"}):
            yield method, path


def concrete(path: str) -> str:
    """``path`` with each parameter (``{name}``, ``{name:path}``) filled with ``x``."""
    return re.sub(r"\{[^}]+\}", "x", path)


def is_refusal(response: httpx.Response, message: str) -> bool:
    if response.status_code != 401 or response.headers.get("www-authenticate") != "Bearer":
        return False
    return response.request.method == "HEAD" or response.json() == {"error": message}


def shows_archive_text(response: httpx.Response) -> bool:
    return any(text in response.text for text in ARCHIVE_TEXT)


def test_with_keys_every_route_but_the_open_ones_refuses_a_request_without_credentials(
    keyed_app: FastAPI, http: httpx.Client
) -> None:
    routes = sorted(set(every_route(keyed_app.routes)))
    # The walk reached into the mounted chat: a walk that missed it would prove nothing.
    for expected in [
        ("POST", "/chat/gradio_api/call/{api_name}"),
        ("GET", "/chat/gradio_api/call/{api_name}/{event_id}"),
        ("POST", "/chat/gradio_api/queue/join"),
        ("GET", "/chat/gradio_api/queue/data"),
        ("POST", "/chat/gradio_api/upload"),
        ("GET", "/chat/gradio_api/file={path_or_url:path}"),
        ("GET", "/chat/config"),
        ("GET", "/chat/"),
        ("POST", "/v1/ask"),
        ("GET", "/v1/articles/{article_id}"),
    ]:
        assert expected in routes
    assert len(routes) > 60
    assert {"WEBSOCKET"}.isdisjoint(m for m, _ in routes)  # none today; see the test below

    guarded = [(m, p) for m, p in routes if m not in LEFT_OPEN.get(p, set())]
    # Paths that match no route are refused too (the guard closes by default).
    guarded += [("GET", "/v1/unknown"), ("POST", "/chat/gradio_api/unknown"), ("GET", "/x/../v1")]
    failures = []
    for method, path in guarded:
        url = concrete(path)
        anonymous = http.request(method, url)
        wrong = http.request(method, url, headers={"X-API-Key": "wrong-key"})
        if not is_refusal(anonymous, MISSING_KEY) or not is_refusal(wrong, WRONG_KEY):
            failures.append(f"{method} {path}: {anonymous.status_code} / {wrong.status_code}")
        if method == "GET" and path.startswith("/chat"):
            page = http.get(url, headers={"Accept": "text/html"})
            if page.status_code != 303 or page.headers["location"] != "/chat/login":
                failures.append(f"{method} {path} as a page: {page.status_code}")
    assert not failures, "\n".join(failures)

    for path, methods in LEFT_OPEN.items():
        for method in methods:
            response = http.request(method, concrete(path))
            assert not is_refusal(response, MISSING_KEY), f"{method} {path}"
            assert not shows_archive_text(response), f"{method} {path}"


def test_every_route_left_open_exists(keyed_app: FastAPI) -> None:
    """The open list names real routes: a stale entry would hide a renamed one."""
    routes = set(every_route(keyed_app.routes))
    for path, methods in LEFT_OPEN.items():
        for method in methods:
            assert (method, path) in routes, f"{method} {path}"


def test_a_websocket_without_credentials_is_closed(keyed_settings: Settings) -> None:
    with (
        TestClient(whole_app(keyed_settings)) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/chat/gradio_api/ws"),
    ):
        pass
    assert closed.value.code == 1008


# --- the chat: sign-in, session, sign-out -----------------------------------------------------


def ask_chat(client: httpx.Client, question: str, **headers: str) -> str:
    """Ask through the chat's call endpoint, as ``gradio_client`` does; the final reply."""
    started = client.post(CALL, json={"data": [question, []]}, headers=headers)
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    result = client.get(f"{CALL}/{event_id}", headers=headers)
    assert result.status_code == 200
    blocks = [b for b in result.text.strip().split("\n\n") if b.startswith("event: complete")]
    assert blocks, result.text
    data = json.loads(blocks[-1].split("data: ", 1)[1])
    return str(data[0])


def has_sign_out_button(config: dict[str, Any]) -> bool:
    return any(c.get("props", {}).get("elem_id") == "sign-out" for c in config["components"])


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    return client.post("/chat/login", data={"key": key})


def test_the_chat_call_endpoint_needs_credentials(http: httpx.Client) -> None:
    refused = http.post(CALL, json={"data": [PARTNERS_Q, []]})
    assert refused.status_code == 401 and refused.json() == {"error": MISSING_KEY}
    assert "India" not in refused.text


def test_signing_in_sets_a_session_cookie_that_opens_the_chat(http: httpx.Client) -> None:
    page = http.get("/chat/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/chat/login"

    form = http.get("/chat/login")
    assert form.status_code == 200 and 'name="key"' in form.text and 'action="login"' in form.text
    policy = form.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert form.headers["cache-control"] == "no-store"

    signed_in = sign_in(http, OTHER_KEY)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "./"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/chat" in cookie.lower()
    assert "secure" not in attributes  # plain http here; see the https test
    token = http.cookies[SESSION_COOKIE]
    assert KEY not in cookie and OTHER_KEY not in cookie and len(token) >= 40

    reply = ask_chat(http, PARTNERS_Q)
    assert "India, South Korea and Japan" in reply and "#### Sources" in reply
    chat_page = http.get("/chat/", headers={"Accept": "text/html"})
    assert chat_page.status_code == 200 and "gradio" in chat_page.text.lower()
    assert http.get("/chat/login").status_code == 303  # signed in: straight to the chat
    assert has_sign_out_button(http.get("/chat/config").json())

    # The cookie is for the chat only: it never opens the API.
    listing = http.get("/v1/articles", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert listing.status_code == 401


def test_a_wrong_or_missing_key_at_sign_in_is_refused(http: httpx.Client) -> None:
    for key, message in (("wrong-key", WRONG_KEY), (KEY[:-1], WRONG_KEY), ("", "enter one")):
        refused = sign_in(http, key)
        assert refused.status_code == 401 and message in refused.text
        assert "set-cookie" not in refused.headers and 'name="key"' in refused.text
    assert http.post("/chat/login", json={"key": KEY}).status_code == 401  # a form, not JSON
    assert http.post(CALL, json={"data": [PARTNERS_Q, []]}).status_code == 401


def test_signing_out_ends_the_session_on_the_server(http: httpx.Client) -> None:
    sign_in(http, KEY)
    token = http.cookies[SESSION_COOKIE]
    assert http.get("/chat/config").status_code == 200
    assert http.get("/chat/logout").status_code == 200  # the sign-out form

    signed_out = http.post("/chat/logout")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "login"
    assert f'{SESSION_COOKIE}=""' in signed_out.headers["set-cookie"]
    # The old token is dead, not just forgotten by the browser.
    replayed = http.get("/chat/config", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert replayed.status_code == 401
    assert http.post(CALL, json={"data": [PARTNERS_Q, []]}).status_code == 401


def test_a_key_opens_the_chat_endpoints_for_programs(http: httpx.Client, keyed_url: str) -> None:
    assert "India" in ask_chat(http, PARTNERS_Q, **{"X-API-Key": KEY})
    assert "India" in ask_chat(http, PARTNERS_Q, **AUTH)
    assert SESSION_COOKIE not in http.cookies

    client = Client(
        f"{keyed_url}/chat/",
        headers={"X-API-Key": KEY},
        verbose=False,
        analytics_enabled=False,
        download_files=False,
        httpx_kwargs={"timeout": TIMEOUT_S},
    )
    try:
        assert "India, South Korea and Japan" in client.predict(PARTNERS_Q, api_name="/respond")
    finally:
        client.close()
    with pytest.raises(Exception):  # noqa: B017 - gradio_client's error for a 401 varies
        Client(f"{keyed_url}/chat/", verbose=False, analytics_enabled=False)


def test_the_session_cookie_is_secure_over_https(keyed_settings: Settings) -> None:
    with TestClient(whole_app(keyed_settings), base_url="https://testserver") as client:
        response = client.post("/chat/login", data={"key": KEY}, follow_redirects=False)
    assert response.status_code == 303
    assert "secure" in {p.strip().lower() for p in response.headers["set-cookie"].split(";")}


def test_a_session_expires(keyed_settings: Settings) -> None:
    now = [1000.0]
    api = whole_app(keyed_settings)
    api.state.api.sessions = Sessions(ttl_s=60, clock=lambda: now[0])
    with TestClient(api) as client:
        client.post("/chat/login", data={"key": KEY}, follow_redirects=False)
        assert client.get("/chat/config").status_code == 200
        now[0] += 61
        assert client.get("/chat/config").status_code == 401
        page = client.get("/chat/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/chat/login"


def test_sessions_are_random_bounded_and_end() -> None:
    now = [0.0]
    sessions = Sessions(ttl_s=10, max_sessions=3, clock=lambda: now[0])
    tokens = [sessions.start() for _ in range(4)]
    assert len(set(tokens)) == 4 and len(sessions) == 3
    assert not sessions.valid(tokens[0])  # the oldest made room
    assert all(sessions.valid(t) for t in tokens[1:])
    sessions.end(tokens[1])
    assert not sessions.valid(tokens[1]) and not sessions.valid("") and not sessions.valid(None)
    now[0] = 10.0
    assert not sessions.valid(tokens[2]) and len(sessions) == 0


# --- start-up ---------------------------------------------------------------------------------


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "index").mkdir()  # an empty index: `rag serve` refuses a missing folder
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.delenv("RAG_API_KEYS", raising=False)
    monkeypatch.delenv("RAG_API_KEYS_FILE", raising=False)


@pytest.mark.parametrize(
    "content",
    ["", "\n\n  \n", "# newsroom CMS (revoked)\n\n   # Slack bot: not issued yet\n", "\ufeff\n"],
    ids=["empty", "blank-lines", "comments-only", "bom-only"],
)
def test_rag_serve_stops_with_one_line_on_a_keys_file_without_keys(
    serve_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str,
) -> None:
    from rag.cli import main

    keys_file = tmp_path / "keys"
    keys_file.write_text(content, encoding="utf-8")
    monkeypatch.setenv("RAG_API_KEYS_FILE", str(keys_file))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not serve"))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: the API keys file {keys_file} holds no key (only blank or # comment lines):"
        " put one key a line\n"
    )


def test_rag_serve_stops_on_a_keys_setting_without_keys(
    serve_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main

    monkeypatch.setenv("RAG_API_KEYS", " , ,")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not serve"))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "error: RAG_API_KEYS holds no key: give one or more keys, comma-separated\n"
    )


def test_an_empty_keys_variable_is_unset(
    serve_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``RAG_API_KEYS=`` is unset, as every empty ``RAG_*`` variable is; the start-up line
    says that reads are open."""
    from rag.cli import main

    monkeypatch.setenv("RAG_API_KEYS", "")
    monkeypatch.setenv("RAG_API_KEYS_FILE", "")
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **options: ran.update(api=api))
    assert main(["serve"]) == 0
    assert not ran["api"].state.api.keys.configured
    assert "no API keys: reads open, writes disabled" in capsys.readouterr().err


def test_keys_file_validation(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("\ufeff# CMS\nfile-key-1\n", encoding="utf-8")
    assert load_api_keys(Settings(api_keys_file=str(keys_file))) == ("file-key-1",)
    keys_file.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="holds no key"):
        load_api_keys(Settings(api_keys="env-key", api_keys_file=str(keys_file)))
    with pytest.raises(SettingsError, match="cannot read the API keys file"):
        load_api_keys(Settings(api_keys_file=str(tmp_path)))  # a directory
    assert load_api_keys(Settings()) == ()


# --- without keys -----------------------------------------------------------------------------


def test_without_keys_everything_stays_open(tmp_path: Path) -> None:
    settings = base_settings(tmp_path / "index")
    Assistant.open(settings).ingest([CORPUS], progress=False)
    with (
        serve(whole_app(settings)) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT_S) as http,
    ):
        asked = http.post("/v1/ask", json={"question": PARTNERS_Q})
        assert asked.status_code == 200 and "India" in asked.text
        listing = http.get("/v1/articles").json()
        assert listing["total"] == 1
        article_id = listing["articles"][0]["article_id"]
        assert http.get(f"/v1/articles/{article_id}").status_code == 200
        page = http.get("/chat/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert not has_sign_out_button(http.get("/chat/config").json())
        assert "India, South Korea and Japan" in ask_chat(http, PARTNERS_Q)
        assert http.get("/chat/login").headers["location"] == "./"  # nothing to sign in to
        assert sign_in(http, "anything").headers["location"] == "./"
        assert SESSION_COOKIE not in http.cookies
        assert http.post("/v1/articles", json={"title": "T", "text": "x"}).status_code == 403


# --- in a browser -----------------------------------------------------------------------------


@pytest.mark.integration
def test_a_reader_signs_in_asks_and_signs_out_in_chromium(keyed_url: str) -> None:
    """The whole flow in headless Chromium: every request the chat's front end makes must carry
    the cookie (a bare fetch that dropped it would leave the chat without answers)."""
    from tests.test_embed_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, ask_in

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 960})
            page.set_default_timeout(WAIT_MS)
            refused: list[str] = []
            page.on(
                "response",
                lambda r: refused.append(r.url) if r.status == 401 else None,
            )
            page.goto(f"{keyed_url}/chat/", wait_until="domcontentloaded")
            assert page.url == f"{keyed_url}/chat/login"
            page.fill("input[name=key]", "wrong-key")
            page.click("button[type=submit]")
            assert WRONG_KEY in page.inner_text("body")
            refused.clear()  # that 401 was the point

            page.fill("input[name=key]", KEY)
            page.click("button[type=submit]")
            page.wait_for_url(f"{keyed_url}/chat/")
            text = ask_in(page, PARTNERS_Q).inner_text()
            assert "India, South Korea and Japan" in text and "Sources" in text
            assert not refused, refused

            page.click("#sign-out button")
            page.wait_for_url(f"{keyed_url}/chat/login")
            page.goto(f"{keyed_url}/chat/", wait_until="domcontentloaded")
            assert page.url == f"{keyed_url}/chat/login"
        finally:
            browser.close()
