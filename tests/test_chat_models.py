"""The chat-model registry and the calls that turn a LangChain chat model into text: providers
chosen by "provider:model", LangChain's fake chat models through the real registry, ChatOpenAI
against the fake OpenAI-compatible server on 127.0.0.1, and one-line errors that never show
the key."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage

from rag.chat_models import (
    ChatModelError,
    ChatModelOptions,
    chat_model_configured,
    create_chat_model,
    generate_text,
    model_label,
    register_chat_model,
    registered_chat_models,
    split_model_spec,
    stream_text,
)
from rag.config import Settings
from rag.errors import ProviderError, SettingsError
from tests.fake_openai import FakeOpenAIServer, Reply

SECRET = "sk-never-print-me-42"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def _scripted(options: ChatModelOptions) -> BaseChatModel:
    """A provider for tests: LangChain's fake chat model, replying with the model name."""
    return FakeListChatModel(responses=[f"{options.model} says hello [1]."])


register_chat_model("scripted", _scripted)


# -- choosing a chat model ------------------------------------------------------------------------


def test_the_registry_holds_the_built_in_providers() -> None:
    assert {"openai", "llamacpp", "scripted"} <= set(registered_chat_models())


def test_provider_model_picks_a_registered_provider_through_the_settings() -> None:
    model = create_chat_model(Settings(llm="scripted:tiny-1"))
    assert isinstance(model, FakeListChatModel)
    assert generate_text(model, [("human", "hi")]) == "tiny-1 says hello [1]."


def test_llm_wins_over_provider_and_model_given_apart() -> None:
    apart = ChatModelOptions.from_settings(Settings(llm_provider="scripted", llm_model="a"))
    both = ChatModelOptions.from_settings(
        Settings(llm="scripted:b:latest", llm_provider="openai", llm_model="a")
    )
    assert (apart.provider, apart.model) == ("scripted", "a")
    assert (both.provider, both.model) == ("scripted", "b:latest")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("ollama:llama3.2:1b", ("ollama", "llama3.2:1b")),
        ("llamacpp:/models/q.gguf", ("llamacpp", "/models/q.gguf")),
        (" anthropic : claude ", ("anthropic", "claude")),
    ],
)
def test_model_specs_split_at_the_first_colon(spec: str, expected: tuple[str, str]) -> None:
    assert split_model_spec(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-4o", ":gpt-4o", "openai:", ""])
def test_a_spec_without_provider_and_model_is_refused(spec: str) -> None:
    with pytest.raises(ProviderError, match="provider:model"):
        split_model_spec(spec)
    if spec:
        with pytest.raises(SettingsError, match="provider:model"):
            Settings(llm=spec)


def test_settings_read_rag_llm_and_check_the_endpoint() -> None:
    settings = Settings.from_env({"RAG_LLM": "openai:gpt-4o-mini"})
    options = ChatModelOptions.from_settings(settings)
    assert (options.provider, options.model) == ("openai", "gpt-4o-mini")
    assert chat_model_configured(settings)
    assert not chat_model_configured(Settings())
    with pytest.raises(SettingsError, match="llm_base_url"):
        Settings(llm_base_url="127.0.0.1:8080/v1")


def test_an_unknown_provider_is_a_one_line_error_naming_the_registered_ones() -> None:
    with pytest.raises(ProviderError) as raised:
        create_chat_model(Settings(llm="no-such-provider:m"))
    message = str(raised.value)
    assert "no-such-provider" in message and "openai" in message and "\n" not in message


def test_a_provider_langchain_knows_without_its_package_says_what_is_missing() -> None:
    # langchain-anthropic is not a dependency: init_chat_model knows the name, not the package.
    with pytest.raises(ProviderError, match="anthropic"):
        create_chat_model(Settings(llm="anthropic:claude-sonnet-4-5", llm_api_key=SECRET))


def test_a_provider_langchain_knows_is_built_by_init_chat_model(
    server: FakeOpenAIServer,
) -> None:
    # "openai" is registered here; init_chat_model builds the same class for "azure_openai"'s
    # sibling names, so check the fallback path with the registry entry out of the way.
    from rag import chat_models

    saved = chat_models._REGISTRY.pop("openai")
    try:
        model = create_chat_model(
            Settings(llm="openai:served-model", llm_base_url=server.url, llm_api_key=SECRET)
        )
    finally:
        chat_models._REGISTRY["openai"] = saved
    server.enqueue("From init_chat_model.")
    assert generate_text(model, [("human", "hi")]) == "From init_chat_model."
    assert server.requests[0].body["model"] == "served-model"


# -- the openai provider: ChatOpenAI ------------------------------------------------------------


def test_the_openai_provider_needs_an_endpoint_or_a_key() -> None:
    with pytest.raises(ProviderError, match="RAG_LLM_BASE_URL"):
        create_chat_model(Settings())


def test_the_openai_provider_takes_its_options_from_the_settings(
    server: FakeOpenAIServer,
) -> None:
    from langchain_openai import ChatOpenAI

    settings = Settings(
        llm_base_url=server.url + "/",
        llm_model="qwen",
        llm_timeout_s=7,
        llm_retries=3,
        llm_max_tokens=123,
        llm_temperature=0.2,
        llm_api_key=SECRET,
    )
    model = create_chat_model(settings)
    assert isinstance(model, ChatOpenAI)
    assert (model.model_name, model.request_timeout, model.max_retries) == ("qwen", 7, 3)
    assert (model.max_tokens, model.temperature) == (123, 0.2)
    assert model.openai_api_base == server.url and model_label(model) == "openai-chat:qwen"
    assert SECRET not in repr(model) and SECRET not in repr(settings)
    server.enqueue("Hello from the endpoint.")
    assert generate_text(model, [("system", "rules"), ("human", "hi")]) == (
        "Hello from the endpoint."
    )
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert request.body["temperature"] == 0.2


def test_chat_openai_streams_the_pieces_as_they_arrive(server: FakeOpenAIServer) -> None:
    model = create_chat_model(Settings(llm_base_url=server.url, llm_retries=0))
    server.enqueue(Reply(pieces=("Brus", "sels ", "said [1]", ".")))
    assert list(stream_text(model, [("human", "hi")])) == ["Brus", "sels ", "said [1]", "."]
    assert server.requests[0].body["stream"] is True


@pytest.mark.parametrize(
    "reply",
    [Reply(status=500), Reply(status=401), Reply(raw=b"\x00garbage\xff"), Reply(content="")],
)
def test_every_failure_of_chat_openai_is_one_chat_model_error(
    server: FakeOpenAIServer, reply: Reply
) -> None:
    model = create_chat_model(
        Settings(llm_base_url=server.url, llm_retries=0, llm_api_key=SECRET, llm_timeout_s=2)
    )
    server.enqueue(reply)
    with pytest.raises(ChatModelError) as raised:
        generate_text(model, [("human", "hi")], secret=SECRET)
    assert SECRET not in str(raised.value) and "\n" not in str(raised.value)
    assert len(str(raised.value)) <= 240


def test_retries_are_chat_openai_own(server: FakeOpenAIServer) -> None:
    model = create_chat_model(Settings(llm_base_url=server.url, llm_retries=1))
    server.enqueue(Reply(status=503), "Second time lucky.")
    assert generate_text(model, [("human", "hi")]) == "Second time lucky."
    assert len(server.requests) == 2


def test_a_hanging_endpoint_times_out_after_the_setting(server: FakeOpenAIServer) -> None:
    model = create_chat_model(Settings(llm_base_url=server.url, llm_retries=0, llm_timeout_s=0.3))
    server.enqueue(Reply(content="late", hang_s=30))
    with pytest.raises(ChatModelError, match=r"(?i)timed? ?out"):
        generate_text(model, [("human", "hi")])


# -- generate_text / stream_text with LangChain's fake models -----------------------------------


def test_a_fake_model_streams_its_reply_in_pieces() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("Brussels wants more [1].")]))
    pieces = list(stream_text(model, [("human", "q")]))
    assert len(pieces) > 1 and "".join(pieces) == "Brussels wants more [1]."


def test_an_empty_reply_is_an_error_whole_or_streamed() -> None:
    with pytest.raises(ChatModelError, match="empty"):
        generate_text(FakeListChatModel(responses=["  "]), [("human", "q")])
    with pytest.raises(ChatModelError, match=r"empty|No generation"):
        list(stream_text(FakeListChatModel(responses=[""]), [("human", "q")]))


def _exploding() -> GenericFakeChatModel:
    def replies() -> Iterator[AIMessage]:
        raise RuntimeError(f"provider bug, key {SECRET}\nsecond line")
        yield AIMessage("never")  # a generator, so the error comes on the first reply

    return GenericFakeChatModel(messages=replies())


def test_a_provider_exception_becomes_one_line_without_the_key() -> None:
    for call in (generate_text, lambda m, x, secret: list(stream_text(m, x, secret=secret))):
        with pytest.raises(ChatModelError) as raised:
            call(_exploding(), [("human", "q")], secret=SECRET)
        message = str(raised.value)
        assert "provider bug" in message and SECRET not in message and "\n" not in message


def test_a_key_the_model_holds_is_blanked_out_without_being_told() -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(api_key=SECRET, base_url="http://127.0.0.1:9/v1", max_retries=0)
    failing = _exploding()
    object.__setattr__(failing, "api_key", model.openai_api_key)  # a SecretStr field
    with pytest.raises(ChatModelError) as raised:
        generate_text(failing, [("human", "q")])
    assert "provider bug" in str(raised.value) and SECRET not in str(raised.value)


# -- the llamacpp provider ------------------------------------------------------------------------


def test_the_llamacpp_provider_needs_a_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="RAG_LLM_MODEL_PATH"):
        create_chat_model(Settings(llm_provider="llamacpp"))
    with pytest.raises(ProviderError, match="no GGUF model file"):
        create_chat_model(Settings(llm=f"llamacpp:{tmp_path / 'missing.gguf'}"))


def test_without_xllamacpp_the_llamacpp_provider_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import fails as when not installed
    with pytest.raises(ProviderError) as raised:
        create_chat_model(Settings(llm_provider="llamacpp", llm_model_path=str(gguf)))
    message = str(raised.value)
    assert "pip install 'newsroom-rag[llamacpp]'" in message and "\n" not in message
