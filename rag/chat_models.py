"""Chat models: any LangChain ``BaseChatModel`` writes the answer, chosen by name or handed in.

The LLM answerer (``rag.generate``) and the follow-up rewriter (``rag.followup``) speak to a
LangChain chat model and to nothing else. Which one is chosen by the settings, in
``init_chat_model``'s "provider:model" form (``RAG_LLM=openai:gpt-4o-mini``), or by
``RAG_LLM_PROVIDER`` and ``RAG_LLM_MODEL``; code can also hand an instance to
``Assistant(..., chat_model=...)``. ``create_chat_model`` looks the provider up in a small
registry first, then asks LangChain:

* ``openai``: ``ChatOpenAI``, for OpenAI itself (``RAG_LLM_API_KEY``) or any OpenAI-compatible
  endpoint (``RAG_LLM_BASE_URL``: vLLM, Ollama's ``/v1``, a llama.cpp server, LM Studio).
* ``llamacpp``: a local GGUF file run in-process by the prebuilt ``xllamacpp`` wheel
  (``rag.llamacpp``; the optional extra ``newsroom-rag[llamacpp]``), named as
  ``llamacpp:/path/model.gguf`` or by ``RAG_LLM_MODEL_PATH``.
* any other name goes to ``langchain.chat_models.init_chat_model`` (``anthropic``, ``ollama``,
  ``google_genai``, ...), which needs that provider's ``langchain-*`` package installed.

Timeouts and retries are the model's own options (``timeout``, ``max_retries``), set from
``RAG_LLM_TIMEOUT_S`` and ``RAG_LLM_RETRIES``. ``generate_text`` and ``stream_text`` turn a call
into text, and every failure (unreachable, timed out, an HTTP error, a malformed or empty reply,
a provider bug) into one ``ChatModelError`` with a one-line message, the key blanked out, so
callers fall back with one ``except``. This module does not build prompts and does not judge
what a model says (``rag.generate``, ``rag.verify``); LangChain is imported only when a chat
model is made or called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import ProviderError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel, LanguageModelInput

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 200


class ChatModelError(ProviderError):
    """A chat model call failed: unreachable, timed out, an HTTP error or an unusable reply."""


class LlmFields(Protocol):
    """The llm section of the settings (``rag.config``), as this module reads it."""

    llm: str
    llm_provider: str
    llm_base_url: str
    llm_model: str
    llm_api_key: str
    llm_model_path: str
    llm_timeout_s: float
    llm_retries: int
    llm_max_tokens: int
    llm_temperature: float


@dataclass(frozen=True, slots=True)
class ChatModelOptions:
    """What a chat model is built from: the llm part of the settings, resolved.

    ``provider`` and ``model`` come from ``RAG_LLM`` ("provider:model") when it is set, else
    from ``RAG_LLM_PROVIDER`` and ``RAG_LLM_MODEL``. The key is kept out of ``repr``.
    """

    provider: str = "openai"
    model: str = ""
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    model_path: str = ""
    timeout_s: float = 60.0
    retries: int = 1
    max_tokens: int = 400
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if not self.provider:
            raise ProviderError(
                "the chat model provider is empty (e.g. RAG_LLM=openai:gpt-4o-mini)"
            )
        if self.timeout_s <= 0:
            raise ProviderError(f"the chat model timeout must be > 0 s, got {self.timeout_s}")
        if self.retries < 0:
            raise ProviderError(f"the chat model retries must be >= 0, got {self.retries}")
        if self.max_tokens <= 0:
            raise ProviderError(f"the chat model max_tokens must be > 0, got {self.max_tokens}")

    @classmethod
    def from_settings(cls, section: LlmFields | Any) -> ChatModelOptions:
        """From the settings' llm section (or the whole settings, which hold it)."""
        settings = _llm_section(section)
        provider, model = split_model_spec(settings.llm) if settings.llm else ("", "")
        return cls(
            provider=provider or settings.llm_provider,
            model=model if provider else settings.llm_model,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            model_path=settings.llm_model_path,
            timeout_s=settings.llm_timeout_s,
            retries=settings.llm_retries,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )


def split_model_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; the model part may hold
    colons of its own (``"ollama:llama3.2:1b"``, ``"llamacpp:/models/q.gguf"``)."""
    provider, sep, model = spec.strip().partition(":")
    if not sep or not provider.strip() or not model.strip():
        raise ProviderError(
            f"a chat model is named as provider:model (e.g. openai:gpt-4o-mini), got {spec!r}"
        )
    return provider.strip(), model.strip()


ChatModelFactory = Callable[[ChatModelOptions], "BaseChatModel"]
_REGISTRY: dict[str, ChatModelFactory] = {}


def register_chat_model(name: str, factory: ChatModelFactory) -> None:
    """Make ``factory`` the provider ``name`` (ahead of any provider LangChain knows)."""
    _REGISTRY[name] = factory


def registered_chat_models() -> list[str]:
    return sorted(_REGISTRY)


def create_chat_model(settings: LlmFields | ChatModelOptions | Any) -> BaseChatModel:
    """The chat model the settings name: a registered provider, else ``init_chat_model``."""
    options = (
        settings
        if isinstance(settings, ChatModelOptions)
        else ChatModelOptions.from_settings(settings)
    )
    factory = _REGISTRY.get(options.provider)
    if factory is not None:
        return factory(options)
    return _init_chat_model(options)


def chat_model_configured(section: LlmFields | Any) -> bool:
    """Whether the settings name a chat model at all (the default names none)."""
    settings = _llm_section(section)
    named = settings.llm or settings.llm_base_url or settings.llm_model_path
    return bool(named or settings.llm_api_key) or settings.llm_provider != "openai"


def _llm_section(settings: LlmFields | Any) -> LlmFields:
    """The llm section: ``Assistant.open`` hands it over; scripts may pass all the settings,
    whose ``llm`` is then the section itself rather than the model spec."""
    spec = settings.llm
    return settings if isinstance(spec, str) else spec  # type: ignore[no-any-return]


def model_label(chat_model: BaseChatModel) -> str:
    """A short name for logs and reports: the provider's type and its model name."""
    name = getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
    kind = chat_model._llm_type  # every BaseChatModel has one
    return f"{kind}:{name}" if isinstance(name, str) and name else kind


# -- calling --------------------------------------------------------------------------------------


def generate_text(
    chat_model: BaseChatModel, messages: LanguageModelInput, *, secret: str = ""
) -> str:
    """The whole reply's text; ``ChatModelError`` when there is none or the call failed.

    The error's message never holds ``secret`` nor any key the model holds (``SecretStr``).
    """
    try:
        reply = chat_model.invoke(messages)
    except ChatModelError:
        raise
    except Exception as e:  # each provider has its own error classes
        raise ChatModelError(_one_line(e, secret, chat_model)) from e
    text = reply.text
    if not text.strip():
        raise ChatModelError("the chat model returned an empty reply")
    return text


def stream_text(
    chat_model: BaseChatModel, messages: LanguageModelInput, *, secret: str = ""
) -> Iterator[str]:
    """The reply's text pieces as they arrive; ``ChatModelError`` as ``generate_text``.

    A model without a streaming implementation yields its whole reply as one piece
    (LangChain's own fallback).
    """
    produced = False
    try:
        for chunk in chat_model.stream(messages):
            piece = chunk.text
            if piece:
                produced = True
                yield piece
    except ChatModelError:
        raise
    except Exception as e:
        raise ChatModelError(_one_line(e, secret, chat_model)) from e
    if not produced:
        raise ChatModelError("the chat model returned an empty reply")


def _one_line(error: BaseException, secret: str, chat_model: object = None) -> str:
    """``error`` in one short line, with ``secret`` and the model's own keys blanked out."""
    message = " ".join(str(error).split()) or type(error).__name__
    for key in (secret, *_secrets_of(chat_model)):
        if key:
            message = message.replace(key, "***")
    if len(message) > _MAX_ERROR_CHARS:
        message = message[: _MAX_ERROR_CHARS - 3] + "..."
    return f"{type(error).__name__}: {message}"


def _secrets_of(chat_model: object) -> list[str]:
    """The keys a LangChain chat model holds: its pydantic ``SecretStr`` fields."""
    from pydantic import SecretStr

    values = getattr(chat_model, "__dict__", {}).values()
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]


# -- providers ------------------------------------------------------------------------------------


def _openai(options: ChatModelOptions) -> BaseChatModel:
    if not options.base_url and not options.api_key:
        raise ProviderError(
            "the openai chat model needs an endpoint or a key: set RAG_LLM_BASE_URL (an"
            " OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1) or RAG_LLM_API_KEY"
        )
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as e:
        raise ProviderError(f"langchain-openai is not installed ({e})") from e
    kwargs: dict[str, Any] = {
        "timeout": options.timeout_s,
        "max_retries": options.retries,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        # A local endpoint needs no key, but the OpenAI client refuses to start without one.
        "api_key": options.api_key or "unused",
    }
    if options.model:
        kwargs["model"] = options.model
    if options.base_url:
        kwargs["base_url"] = options.base_url.rstrip("/")
    return ChatOpenAI(**kwargs)


def _llamacpp(options: ChatModelOptions) -> BaseChatModel:
    path = options.model or options.model_path
    if not path:
        raise ProviderError(
            "the llamacpp chat model needs a GGUF file: RAG_LLM=llamacpp:/path/model.gguf"
            " or RAG_LLM_MODEL_PATH"
        )
    from rag.llamacpp import ChatXLlamaCpp

    return ChatXLlamaCpp.load(
        Path(path).expanduser(), max_tokens=options.max_tokens, temperature=options.temperature
    )


def _init_chat_model(options: ChatModelOptions) -> BaseChatModel:
    if not options.model:
        raise ProviderError(
            f"name the {options.provider} model: RAG_LLM={options.provider}:MODEL"
            " (or RAG_LLM_MODEL)"
        )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as e:
        raise ProviderError(f"langchain is not installed ({e})") from e
    kwargs: dict[str, Any] = {
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "timeout": options.timeout_s,
        "max_retries": options.retries,
    }
    if options.base_url:
        kwargs["base_url"] = options.base_url.rstrip("/")
    if options.api_key:
        kwargs["api_key"] = options.api_key
    try:
        # Without configurable_fields, init_chat_model returns the provider's chat model.
        model: BaseChatModel = init_chat_model(
            options.model, model_provider=options.provider, **kwargs
        )
    except ImportError as e:
        raise ProviderError(
            f"chat model provider {options.provider!r} needs its LangChain package: {e}"
        ) from e
    except ValueError as e:
        raise ProviderError(
            f"unknown chat model provider {options.provider!r}"
            f" (registered: {', '.join(registered_chat_models())}; or one that LangChain's"
            f" init_chat_model knows): {_one_line(e, options.api_key)}"
        ) from e
    return model


register_chat_model("openai", _openai)
register_chat_model("llamacpp", _llamacpp)
