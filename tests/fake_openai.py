"""A fake OpenAI-compatible chat-completions server for tests (a helper, not a test file).

``FakeOpenAIServer`` serves ``POST /v1/chat/completions`` on 127.0.0.1 (a free port) from a
``ThreadingHTTPServer`` in a daemon thread. Replies are scripted: each request takes the next
queued ``Reply`` (or ``default`` when the queue is empty), streamed as server-sent events when
the request asks for ``stream``. A reply can be a faithful answer, an invented figure, garbage
bytes, an HTTP error or a hang (bounded: it ends when the server stops). Every request is
recorded with its headers and JSON body, so a test can check what was sent, or that nothing
was. Use it as a context manager; ``stop()`` returns within a second or two.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted response.

    ``content`` is the assistant's text (streamed as ``pieces`` when given, else word by word);
    ``status`` other than 200 sends an OpenAI-style error body; ``raw`` is sent as the body
    as it is (a malformed reply); ``hang_s`` waits that long before answering.
    """

    content: str = ""
    status: int = 200
    raw: bytes | None = None
    hang_s: float = 0.0
    pieces: tuple[str, ...] = ()


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """All message contents, joined: what the model was shown."""
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


class FakeOpenAIServer:
    """Scripted OpenAI-compatible endpoint; ``url`` is the API root to configure."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(status=500, raw=b'{"error": "no scripted reply"}')
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def enqueue(self, *replies: Reply | str) -> None:
        with self._lock:
            self._queue.extend(Reply(r) if isinstance(r, str) else r for r in replies)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends any hang
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with fake._lock:
                    fake.requests.append(
                        RecordedRequest(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                reply = fake._next()
                if reply.hang_s and fake._stopping.wait(reply.hang_s):
                    return
                try:
                    if reply.status != 200:
                        error = {"error": {"message": f"scripted HTTP {reply.status}"}}
                        self._send(reply.status, reply.raw or json.dumps(error).encode())
                    elif reply.raw is not None:
                        self._send(200, reply.raw)
                    elif body.get("stream"):
                        self._stream(reply)
                    else:
                        message = {"role": "assistant", "content": reply.content}
                        data = {"choices": [{"index": 0, "message": message}]}
                        self._send(200, json.dumps(data).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = reply.pieces or tuple(
                    word if i == 0 else f" {word}"
                    for i, word in enumerate(reply.content.split(" "))
                )
                self.wfile.write(b": keep-alive\n\n")
                for piece in pieces:
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler
