"""Chat models behind one narrow interface: messages in, text out (whole or in pieces).

A ``ChatModel`` has ``generate(messages) -> str`` and ``stream(messages)``, which yields the
reply's text pieces as they arrive. Providers are registered by name and chosen by
``Settings.llm_provider``; an unknown name is a ``ProviderError`` listing the known ones:

* ``openai``: any OpenAI-compatible chat-completions endpoint (a hosted API, vLLM, Ollama, the
  llama.cpp server), spoken to with httpx directly. The key, when there is one, is sent as a
  bearer token and never appears in a message, a log line or ``repr``.
* ``llamacpp``: a local GGUF file through llama-cpp-python, an optional extra
  (``pip install 'newsroom-rag[llamacpp]'``), imported only when this provider is chosen.

Every failure of a call (endpoint down, timeout, HTTP error, malformed or empty reply) is a
``ChatModelError``, so callers can fall back with one ``except``. This module does not build
prompts and does not judge what a model says (see ``rag.generate`` and ``rag.verify``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from rag.config import Settings
from rag.errors import ProviderError

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
# Context window for local GGUF models: the prompt (five ~900-character passages and the
# rules) is ~1,500 tokens, so 4096 leaves room for the reply.
LLAMACPP_CONTEXT_TOKENS = 4096
# llama-cpp-python's LangChain wrapper defaults to 8, which was 2x slower (ENVIRONMENT.md).
LLAMACPP_BATCH = 512
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_BACKOFF_S = 0.5
_MAX_ERROR_CHARS = 200


class ChatModelError(ProviderError):
    """A chat model call failed: unreachable, timed out, an HTTP error or an unusable reply."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a chat: ``role`` is system, user or assistant."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@runtime_checkable
class ChatModel(Protocol):
    """Writes a reply to a conversation. ``model_id`` names the model for logs and reports."""

    @property
    def model_id(self) -> str: ...

    def generate(self, messages: Sequence[ChatMessage]) -> str:
        """The whole reply; raises ``ChatModelError`` when there is none."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """The reply's text pieces as they are produced; raises ``ChatModelError``."""
        ...


ChatModelFactory = Callable[[Settings], ChatModel]
_REGISTRY: dict[str, ChatModelFactory] = {}


def register_chat_model(name: str, factory: ChatModelFactory) -> None:
    """Make ``factory`` available as ``Settings.llm_provider == name``."""
    _REGISTRY[name] = factory


def available_chat_models() -> list[str]:
    return sorted(_REGISTRY)


def create_chat_model(settings: Settings) -> ChatModel:
    """The chat model named by ``settings.llm_provider``."""
    try:
        factory = _REGISTRY[settings.llm_provider]
    except KeyError:
        raise ProviderError(
            f"unknown chat model provider {settings.llm_provider!r};"
            f" available: {', '.join(available_chat_models())}"
        ) from None
    return factory(settings)


# -- openai ---------------------------------------------------------------------------------------


class OpenAIChatModel:
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` is the API root (``http://127.0.0.1:8080/v1``); a URL that already ends in
    ``/chat/completions`` is used as it is. Connection errors, timeouts, HTTP 408/429/5xx are
    retried ``retries`` times with a short backoff; a stream is retried only before its first
    piece. ``timeout_s`` bounds connecting and each wait for data.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str = "",
        *,
        timeout_s: float = 60.0,
        retries: int = 1,
        max_tokens: int = 400,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base_url = base_url.strip()
        if not base_url:
            raise ProviderError(
                "the openai chat model needs an endpoint: set RAG_LLM_BASE_URL or --llm-base-url"
                " (e.g. http://127.0.0.1:8080/v1)"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ProviderError(
                f"llm_base_url must start with http:// or https://, got {base_url!r}"
            )
        if timeout_s <= 0:
            raise ProviderError(f"timeout_s must be greater than 0, got {timeout_s}")
        if retries < 0:
            raise ProviderError(f"retries must be >= 0, got {retries}")
        base_url = base_url.rstrip("/")
        self.url = (
            base_url if base_url.endswith("/chat/completions") else f"{base_url}/chat/completions"
        )
        self.model = model
        self.retries = retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._secret = api_key
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatModel(url={self.url!r}, model={self.model!r})"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model or 'default'}@{self.url}"

    def close(self) -> None:
        self._client.close()

    def generate(self, messages: Sequence[ChatMessage]) -> str:
        body = self._body(messages, stream=False)
        for attempt in self._attempts():
            try:
                response = self._client.post(self.url, json=body)
                self._check(response)
                text = _reply_text(response)
            except _Retryable as e:
                if attempt == self.retries:
                    raise ChatModelError(self._clean(str(e))) from None
                logger.warning("chat model call failed (%s); retrying", self._clean(str(e)))
                continue
            return text
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        body = self._body(messages, stream=True)
        for attempt in self._attempts():
            started = False
            try:
                with self._client.stream("POST", self.url, json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                    self._check(response)
                    for piece in _sse_pieces(response.iter_lines()):
                        started = True
                        yield piece
                if not started:
                    raise ChatModelError("the chat model returned an empty reply")
                return
            except _Retryable as e:
                if started or attempt == self.retries:
                    raise ChatModelError(self._clean(str(e))) from None
                logger.warning("chat model stream failed (%s); retrying", self._clean(str(e)))

    # -- helpers --------------------------------------------------------------------------------

    def _attempts(self) -> Iterator[int]:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(_BACKOFF_S * 2 ** (attempt - 1), 4.0))
            yield attempt

    def _body(self, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
        if not messages:
            raise ChatModelError("no messages to send to the chat model")
        body: dict[str, Any] = {
            "messages": [m.to_dict() for m in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": stream,
        }
        if self.model:
            body["model"] = self.model
        return body

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        # Some providers echo a part of a rejected key in 401/403 bodies: leave those out.
        detail = "" if status in (401, 403) else _error_detail(response)
        message = f"the chat model endpoint answered HTTP {status}" + (
            f": {detail}" if detail else ""
        )
        if status in _RETRY_STATUS:
            raise _RetryableHTTP(self._clean(message))
        raise ChatModelError(self._clean(message))

    def _clean(self, message: str) -> str:
        """``message`` shortened, with the key (should anything echo it) blanked out."""
        if self._secret:
            message = message.replace(self._secret, "***")
        message = " ".join(message.split())
        return message[:_MAX_ERROR_CHARS]


class _RetryableHTTP(Exception):
    """An HTTP status worth another try (408, 429, 5xx)."""


# What a retry may fix: the network, the server's load. A malformed reply is not retried.
_Retryable = (httpx.TransportError, _RetryableHTTP)


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:_MAX_ERROR_CHARS]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return ""


def _reply_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ChatModelError("the chat model endpoint sent a malformed reply") from None
    if not isinstance(content, str) or not content.strip():
        raise ChatModelError("the chat model returned an empty reply")
    return content


def _sse_pieces(lines: Iterator[str]) -> Iterator[str]:
    """The text pieces of an OpenAI server-sent event stream, until ``data: [DONE]``."""
    for line in lines:
        line = line.strip()
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        try:
            data = json.loads(payload)
        except ValueError:
            raise ChatModelError("the chat model endpoint sent a malformed stream") from None
        if isinstance(data, dict) and data.get("error"):
            raise ChatModelError("the chat model endpoint reported an error in its stream")
        try:
            choice = data["choices"][0] if data["choices"] else {}
            piece = (choice.get("delta") or {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ChatModelError("the chat model endpoint sent a malformed stream") from None
        if not isinstance(piece, str):
            raise ChatModelError("the chat model endpoint sent a malformed stream")
        if piece:
            yield piece


def _openai_from_settings(settings: Settings) -> ChatModel:
    return OpenAIChatModel(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


# -- llamacpp -------------------------------------------------------------------------------------


class LlamaCppChatModel:
    """A local GGUF model run in-process by llama-cpp-python (one call at a time)."""

    def __init__(
        self,
        model_path: Path,
        *,
        max_tokens: int = 400,
        temperature: float = 0.0,
        context_tokens: int = LLAMACPP_CONTEXT_TOKENS,
    ) -> None:
        if not model_path.is_file():
            raise ProviderError(
                f"no GGUF model file at {model_path} (set RAG_LLM_MODEL_PATH to a local .gguf)"
            )
        try:
            import llama_cpp
        except ImportError as e:
            raise ProviderError(
                "llama-cpp-python is not installed; install the optional extra with"
                " pip install 'newsroom-rag[llamacpp]' (it builds from source, ~6 min)"
            ) from e
        try:
            # Any: the library's typed dicts would force casts on every message and reply.
            self._llama: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=context_tokens,
                n_batch=LLAMACPP_BATCH,
                verbose=False,
            )
        except Exception as e:  # llama.cpp raises ValueError/RuntimeError for a bad file
            raise ProviderError(f"could not load GGUF model {model_path}: {e}") from e
        self._path = model_path
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"llamacpp:{self._path.name}"

    def generate(self, messages: Sequence[ChatMessage]) -> str:
        with self._lock:
            try:
                result = self._llama.create_chat_completion(
                    messages=[m.to_dict() for m in messages],
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                )
                content = result["choices"][0]["message"]["content"]
            except Exception as e:
                raise ChatModelError(f"the local model failed: {e}") from e
        if not isinstance(content, str) or not content.strip():
            raise ChatModelError("the chat model returned an empty reply")
        return content

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        with self._lock:
            produced = False
            try:
                chunks = self._llama.create_chat_completion(
                    messages=[m.to_dict() for m in messages],
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    stream=True,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content") or ""
                    if piece:
                        produced = True
                        yield piece
            except Exception as e:
                raise ChatModelError(f"the local model failed: {e}") from e
            if not produced:
                raise ChatModelError("the chat model returned an empty reply")


def _llamacpp_from_settings(settings: Settings) -> ChatModel:
    if not settings.llm_model_path:
        raise ProviderError("the llamacpp chat model needs RAG_LLM_MODEL_PATH (a local .gguf file)")
    return LlamaCppChatModel(
        Path(settings.llm_model_path).expanduser(),
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


register_chat_model("openai", _openai_from_settings)
register_chat_model("llamacpp", _llamacpp_from_settings)
