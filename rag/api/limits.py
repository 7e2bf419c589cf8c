"""Limits that keep one client from taking the server: body sizes (``BodyLimit``).

Bodies are capped by Content-Length and while they stream (413); article uploads (multipart
``POST /v1/articles``) get the larger upload limit. It does not limit how often a client may
call (no rate limits per key): a proxy in front does that better.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    """Refuse bodies over the limit: at once by Content-Length, else when the streamed body
    passes it. Article uploads (multipart POST /v1/articles) get the larger upload limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, scope: Scope) -> int:
        headers = MutableHeaders(scope=scope)
        if (
            scope["method"] == "POST"
            and scope["path"] == "/v1/articles"
            and headers.get("content-type", "").startswith("multipart/form-data")
        ):
            return self.max_upload_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = MutableHeaders(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit)
            await JSONResponse({"error": error.detail}, 413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # answered by the HTTPException handler
            return message

        await self.app(scope, limited_receive, send)
