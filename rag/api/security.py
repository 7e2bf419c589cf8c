"""Who may use the API and the chat, and what a browser may do with their pages.

Writes always need an API key (none configured: refused with 403). With keys configured,
everything else needs one too, the chat and Gradio's endpoints under ``/chat`` included, except
the routes in ``OPEN_ROUTES`` (health, readiness, the API's description, the sign-in form). Keys
come as ``Authorization: Bearer <key>`` or ``X-API-Key`` and are compared in constant time. A
browser signs in to the chat at ``/chat/login`` with a key: that starts a session held in
memory, for ``SESSION_TTL_S``, whose random token travels in an HttpOnly, SameSite=Strict cookie
scoped to ``/chat`` (Secure over https); ``/chat/logout`` ends it. Without credentials a chat
page redirects to the sign-in form and anything else is 401. A keys setting that holds no key
stops the server at start-up. The chat's pages say who may frame them (``frame_ancestors``);
the sign-in pages carry a Content-Security-Policy that allows no script at all.

What it deliberately does not do: accept the chat's session cookie on ``/v1`` (programs send
keys; the cookie never grants a write), keep sessions across restarts or processes, limit
sign-in attempts (keys are long random strings), or let a page on another site use the chat
when keys are configured (the SameSite=Strict cookie is not sent there: frame it from the same
site, or leave keys unset and restrict who reaches it with ``--host``, a proxy and
``frame_ancestors``).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from rag.apidocs import STATIC_FILE
from rag.config import ServeSettings
from rag.errors import SettingsError

if TYPE_CHECKING:
    import gradio as gr

CHAT_PATH = "/chat"
WRITES_DISABLED = "writes are disabled: no API keys configured"
MISSING_KEY = "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
WRONG_KEY = "the API key is not valid"
MISSING_SIGN_IN_KEY = "enter one of the server's API keys"

# The chat's sign-in: a random token in an HttpOnly, SameSite=Strict cookie scoped to the chat.
SIGN_IN_PATH = f"{CHAT_PATH}/login"
SIGN_OUT_PATH = f"{CHAT_PATH}/logout"
SESSION_COOKIE = "rag_session"
SESSION_TTL_S = 12 * 3600  # a working day: then the chat asks for the key again
MAX_SESSIONS = 10_000

# With keys configured, these alone are answered without credentials (path -> methods). They
# show no article, title or text: liveness and readiness (with the chunk count, for operators'
# checks), the API's description, the sign-in and sign-out forms, the redirect to the chat and
# the chat's loader script.
_GET = frozenset({"GET", "HEAD"})
OPEN_ROUTES: dict[str, frozenset[str]] = {
    "/healthz": _GET,
    "/readyz": _GET,
    "/docs": _GET,
    "/docs/oauth2-redirect": _GET,
    "/openapi.json": _GET,
    "/": _GET,
    "/embed/gradio.js": _GET,
    SIGN_IN_PATH: _GET | {"POST"},
    SIGN_OUT_PATH: frozenset({"POST"}),
}
# /assets/<name>: a redirect to the chat's own (guarded) assets, for Gradio's web component.
_OPEN_ASSET = re.compile(r"/assets/[^/]+")


# --- keys and sessions ------------------------------------------------------------------------


def load_api_keys(settings: ServeSettings) -> tuple[str, ...]:
    """The keys from ``api_keys`` (comma-separated) and ``api_keys_file`` (one a line, ``#``
    comment lines), without duplicates.

    Raises ``SettingsError`` for a keys file that cannot be read or holds no key, and for an
    ``api_keys`` value that holds no key (``", ,"``): a keys setting that was given but yields
    nothing must stop the server, not start it with reads open. An empty ``api_keys`` is unset,
    as every empty ``RAG_*`` variable is.
    """
    keys = [k.strip() for k in settings.api_keys.split(",")]
    if settings.api_keys and not any(keys):
        raise SettingsError("RAG_API_KEYS holds no key: give one or more keys, comma-separated")
    if settings.api_keys_file:
        path = Path(settings.api_keys_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"cannot read the API keys file {path}: {e}") from e
        from_file = [line.strip() for line in lines if not line.strip().startswith("#")]
        if not any(from_file):
            raise SettingsError(
                f"the API keys file {path} holds no key (only blank or # comment lines):"
                " put one key a line"
            )
        keys.extend(from_file)
    return tuple(dict.fromkeys(k for k in keys if k))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The configured keys, held as SHA-256 digests and compared in constant time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        given = _digest(key)
        found = False
        for digest in self._digests:  # no early exit: the time does not tell which key matched
            found |= hmac.compare_digest(given, digest)
        return found


class Sessions:
    """The chat's sign-in sessions: random tokens, held in this process's memory only (as
    SHA-256 digests) with a fixed expiry. A restart signs everyone out, so a key removed
    from the keys file (which needs a restart) leaves no session behind."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        *,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._prune()
            return len(self._expiry)

    def start(self) -> str:
        """A new session's token, for the cookie."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            while len(self._expiry) >= self._max:  # the oldest goes first
                del self._expiry[next(iter(self._expiry))]
            self._expiry[_digest(token)] = self._clock() + self.ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(_digest(token))
            return expiry is not None and self._clock() < expiry

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._expiry.pop(_digest(token), None)

    def _prune(self) -> None:
        now = self._clock()
        for digest in [d for d, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[digest]


class Guarded(Protocol):
    """What the guards read from the app's state (``rag.api.state.ApiState``)."""

    keys: ApiKeys
    sessions: Sessions
    chat_title: str


def _guarded(request: Request) -> Guarded:
    state: Guarded = request.app.state.api
    return state


# --- route dependencies -----------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="an API key as a bearer token")
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def presented_key(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_key_header)],
) -> str | None:
    return bearer.credentials if bearer is not None else header


def key_in(headers: Headers) -> str | None:
    """The API key a request carries, read as ``presented_key`` reads it: a bearer token,
    else ``X-API-Key``."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def require_reader(
    state: Annotated[Guarded, Depends(_guarded)],
    key: Annotated[str | None, Depends(presented_key)],
) -> None:
    """A route dependency: with keys configured, a valid key."""
    if state.keys.configured and not state.keys.accepts(key):
        raise _unauthorized(WRONG_KEY if key else MISSING_KEY)


def require_writer(
    state: Annotated[Guarded, Depends(_guarded)],
    key: Annotated[str | None, Depends(presented_key)],
) -> None:
    """A route dependency: a valid key, and keys configured at all."""
    if not state.keys.configured:
        raise HTTPException(403, WRITES_DISABLED)
    if not state.keys.accepts(key):
        raise _unauthorized(WRONG_KEY if key else MISSING_KEY)


READER = [Depends(require_reader)]
WRITER = [Depends(require_writer)]


# --- the guard in front of everything ---------------------------------------------------------


def route_path(scope: Scope) -> str:
    """The path the router matches, without the ``root_path`` a proxy mounts the app under
    (as Starlette's own routing strips it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def is_open(method: str, path: str) -> bool:
    """Whether ``method path`` is answered without credentials when keys are configured."""
    if method in OPEN_ROUTES.get(path, ()):
        return True
    return method in ("GET", "HEAD") and (
        _OPEN_ASSET.fullmatch(path) is not None or STATIC_FILE.fullmatch(path) is not None
    )


def _wants_html(headers: Headers) -> bool:
    return "text/html" in headers.get("accept", "")


class RequireCredentials:
    """With keys configured, refuse every request that is not on the open list (``is_open``)
    and carries neither a valid API key nor, under the chat's path, a valid session cookie.

    It guards by default: a route added later, Gradio's own included, is closed until it is
    listed as open. A browser asking for a chat page (a GET that accepts HTML) is sent to
    the sign-in page; anything else gets 401 ``{"error": ...}``, a websocket is closed.
    """

    def __init__(self, app: ASGIApp, state: Guarded) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.state.keys.configured:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        path = route_path(scope)
        method = scope.get("method", "GET")
        key = key_in(connection.headers)
        in_chat = path == CHAT_PATH or path.startswith(CHAT_PATH + "/")
        if (
            is_open(method, path)
            or self.state.keys.accepts(key)
            or (in_chat and self.state.sessions.valid(connection.cookies.get(SESSION_COOKIE)))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
            return
        response: Response
        if in_chat and method in ("GET", "HEAD") and not key and _wants_html(connection.headers):
            sign_in = scope.get("root_path", "") + SIGN_IN_PATH
            response = RedirectResponse(sign_in, 303, headers={"Cache-Control": "no-store"})
        else:
            response = JSONResponse(
                {"error": WRONG_KEY if key else MISSING_KEY},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)


class FrameAncestors:
    """Say who may frame the chat: ``Content-Security-Policy: frame-ancestors ...`` on every
    response under the chat path, and ``X-Frame-Options`` for old browsers when only the
    server's own origin (or nobody) may frame it."""

    def __init__(self, app: ASGIApp, ancestors: Sequence[str], path: str = CHAT_PATH) -> None:
        self.app = app
        self.path = path
        self.policy = "frame-ancestors " + " ".join(ancestors)
        self.x_frame_options = {"'self'": "SAMEORIGIN", "'none'": "DENY"}.get(
            " ".join(ancestors), ""
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.path or path.startswith(self.path + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy")  # the sign-in page has one
                headers["Content-Security-Policy"] = f"{own}; {self.policy}" if own else self.policy
                if self.x_frame_options:
                    headers["X-Frame-Options"] = self.x_frame_options
            await send(message)

        await self.app(scope, receive, send_with_policy)


# --- the chat's sign-in pages -----------------------------------------------------------------

_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:12vh auto;padding:0 1rem}"
    "h1{font-size:1.3rem}label{display:block;margin:1rem 0 .3rem}"
    "input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}"
    "button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#b00020}"
)


def sign_in_page(title: str, message: str = "") -> str:
    """The sign-in form: one API key field, posted to ``login`` beside it."""
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Sign in: {html.escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{error}"
        '<form method="post" action="login"><label for="key">API key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required'
        ' autofocus><button type="submit">Sign in</button></form></body></html>'
    )


def sign_out_page(title: str) -> str:
    """A page with the sign-out button, for a browser that opens ``logout`` by address."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Sign out: {html.escape(title)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        '<form method="post" action="logout"><button type="submit">Sign out</button></form>'
        "</body></html>"
    )


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        body,
        status,
        headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-store"},
    )


def _cookie_options(request: Request) -> dict[str, Any]:
    return {
        "path": request.scope.get("root_path", "") + CHAT_PATH,
        "secure": request.url.scheme == "https",
        "httponly": True,
        "samesite": "strict",
    }


def _signed_in(request: Request, state: Guarded) -> bool:
    return state.sessions.valid(request.cookies.get(SESSION_COOKIE))


# ``GET``/``POST /chat/login`` (the form; a valid key starts a session and sets its cookie)
# and ``GET``/``POST /chat/logout`` (ends it). Without keys they lead to the chat. Included
# only with the chat, before its mount, so that they answer rather than Gradio.
sign_in_router = APIRouter(include_in_schema=False)


@sign_in_router.get(SIGN_IN_PATH)
def sign_in_form(request: Request, state: Annotated[Guarded, Depends(_guarded)]) -> Response:
    if not state.keys.configured or _signed_in(request, state):
        return RedirectResponse("./", 303)
    return _page(sign_in_page(state.chat_title))


@sign_in_router.post(SIGN_IN_PATH)
async def sign_in(request: Request, state: Annotated[Guarded, Depends(_guarded)]) -> Response:
    if not state.keys.configured:
        return RedirectResponse("./", 303)
    async with request.form(max_files=0, max_fields=4) as form:
        key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    if not state.keys.accepts(key):
        message = WRONG_KEY if key else MISSING_SIGN_IN_KEY
        return _page(sign_in_page(state.chat_title, message), 401)
    response = RedirectResponse("./", 303)
    response.set_cookie(
        SESSION_COOKIE,
        state.sessions.start(),
        max_age=int(state.sessions.ttl_s),
        **_cookie_options(request),
    )
    return response


@sign_in_router.get(SIGN_OUT_PATH)
def sign_out_form(request: Request, state: Annotated[Guarded, Depends(_guarded)]) -> Response:
    if not state.keys.configured:
        return RedirectResponse("./", 303)
    return _page(sign_out_page(state.chat_title))


@sign_in_router.post(SIGN_OUT_PATH)
def sign_out(request: Request, state: Annotated[Guarded, Depends(_guarded)]) -> Response:
    state.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("login" if state.keys.configured else "./", 303)
    response.delete_cookie(SESSION_COOKIE, **_cookie_options(request))
    return response


def add_sign_out_button(chat: gr.Blocks) -> None:
    """A sign-out button under the chat: a plain form posting to ``logout`` beside it."""
    import gradio as gr

    with chat:
        gr.HTML(
            '<form method="post" action="logout" style="text-align:right">'
            '<button type="submit" class="sign-out">Sign out</button></form>',
            elem_id="sign-out",
        )
