"""Chat models: the registry, and the OpenAI-compatible provider against a fake local server."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator

import pytest

from rag.config import Settings
from rag.errors import ProviderError
from rag.llm import (
    ChatMessage,
    ChatModel,
    ChatModelError,
    OpenAIChatModel,
    available_chat_models,
    create_chat_model,
    register_chat_model,
)
from tests.conftest import free_port
from tests.fake_openai import FakeOpenAIServer, Reply

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello.")]
SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def model(url: str, **kwargs: object) -> OpenAIChatModel:
    options: dict[str, object] = {"timeout_s": 2.0, "retries": 0}
    options.update(kwargs)
    return OpenAIChatModel(url, **options)  # type: ignore[arg-type]


# -- registry ----------------------------------------------------------------------------------


def test_the_registry_lists_the_providers_and_names_an_unknown_one() -> None:
    assert {"openai", "llamacpp"} <= set(available_chat_models())
    with pytest.raises(ProviderError, match=r"unknown chat model provider 'gpt-9'.*openai"):
        create_chat_model(Settings(llm_provider="gpt-9"))


def test_a_registered_provider_is_created_from_settings() -> None:
    class Echo:
        model_id = "echo"

        def generate(self, messages: object) -> str:
            return "echo"

        def stream(self, messages: object) -> Iterator[str]:
            yield "echo"

    register_chat_model("echo-test", lambda settings: Echo())
    created = create_chat_model(Settings(llm_provider="echo-test"))
    assert isinstance(created, ChatModel) and created.generate(MESSAGES) == "echo"


def test_the_openai_provider_needs_an_endpoint() -> None:
    with pytest.raises(ProviderError, match="RAG_LLM_BASE_URL"):
        create_chat_model(Settings(llm_provider="openai"))
    with pytest.raises(ProviderError, match="http"):
        create_chat_model(Settings(llm_provider="openai", llm_base_url="ftp://x"))


def test_the_openai_provider_takes_its_settings() -> None:
    settings = Settings(
        llm_base_url="http://127.0.0.1:9/v1/",
        llm_model="m",
        llm_timeout_s=3.0,
        llm_retries=2,
        llm_max_tokens=50,
        llm_api_key=SECRET,
    )
    created = create_chat_model(settings)
    assert isinstance(created, OpenAIChatModel)
    assert created.url == "http://127.0.0.1:9/v1/chat/completions"
    assert (created.model, created.retries, created.max_tokens) == ("m", 2, 50)
    assert SECRET not in repr(created) and SECRET not in created.model_id


def test_the_llamacpp_provider_explains_what_is_missing(tmp_path: object) -> None:
    with pytest.raises(ProviderError, match="RAG_LLM_MODEL_PATH"):
        create_chat_model(Settings(llm_provider="llamacpp"))
    with pytest.raises(ProviderError, match="no GGUF model file"):
        create_chat_model(Settings(llm_provider="llamacpp", llm_model_path="/no/such.gguf"))


def test_without_the_extra_the_llamacpp_provider_says_how_to_install_it(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    gguf = Path(str(tmp_path)) / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    with pytest.raises(ProviderError, match=r"llama-cpp-python is not installed.*\[llamacpp\]"):
        create_chat_model(Settings(llm_provider="llamacpp", llm_model_path=str(gguf)))


# -- openai against the fake server ------------------------------------------------------------


def test_generate_returns_the_reply_and_sends_the_request(server: FakeOpenAIServer) -> None:
    server.enqueue("Hello [1].")
    chat = model(server.url, model="tiny", max_tokens=64, temperature=0.0)
    assert chat.generate(MESSAGES) == "Hello [1]."
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "tiny" and request.body["stream"] is False
    assert request.body["max_tokens"] == 64 and request.body["temperature"] == 0.0
    assert request.body["messages"] == [m.to_dict() for m in MESSAGES]
    assert "authorization" not in request.headers  # no key, no header (local servers)


def test_the_key_is_sent_as_a_bearer_token_and_never_shown(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Reply(status=401), Reply(status=500), Reply(status=500))
    chat = model(server.url, api_key=SECRET, retries=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(ChatModelError) as raised:
        chat.generate(MESSAGES)
    assert "401" in str(raised.value) and SECRET not in str(raised.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    with caplog.at_level(logging.DEBUG), pytest.raises(ChatModelError):
        chat.generate(MESSAGES)  # 500, retried once, 500 again
    assert SECRET not in caplog.text and SECRET not in repr(chat)


def test_a_base_url_with_the_full_path_is_used_as_it_is(server: FakeOpenAIServer) -> None:
    server.enqueue("ok")
    assert model(f"{server.url}/chat/completions").generate(MESSAGES) == "ok"
    assert server.requests[0].path == "/v1/chat/completions"


def test_the_model_name_is_left_out_when_not_set(server: FakeOpenAIServer) -> None:
    server.enqueue("ok")
    model(server.url).generate(MESSAGES)
    assert "model" not in server.requests[0].body


def test_stream_yields_the_pieces_as_they_arrive(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(pieces=("Brus", "sels ", "wants", " ties [1].")))
    pieces = list(model(server.url).stream(MESSAGES))
    assert pieces == ["Brus", "sels ", "wants", " ties [1]."]
    assert server.requests[0].body["stream"] is True


def test_server_errors_are_retried_then_reported(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(status=503), "recovered")
    assert model(server.url, retries=1).generate(MESSAGES) == "recovered"
    assert len(server.requests) == 2
    server.enqueue(Reply(status=500), Reply(status=500))
    with pytest.raises(ChatModelError, match="HTTP 500"):
        model(server.url, retries=1).generate(MESSAGES)


def test_client_errors_are_not_retried(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(status=400), "never sent")
    with pytest.raises(ChatModelError, match="HTTP 400"):
        model(server.url, retries=3).generate(MESSAGES)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(raw=b"<html>not json</html>"),
        Reply(raw=b'{"choices": []}'),
        Reply(raw=b'{"choices": [{"message": {"content": null}}]}'),
        Reply(content="   "),
    ],
)
def test_malformed_or_empty_replies_are_errors(server: FakeOpenAIServer, reply: Reply) -> None:
    server.enqueue(reply)
    with pytest.raises(ChatModelError, match=r"malformed|empty"):
        model(server.url).generate(MESSAGES)


def test_a_malformed_or_empty_stream_is_an_error(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(status=500))
    with pytest.raises(ChatModelError, match="HTTP 500"):
        list(model(server.url).stream(MESSAGES))
    server.enqueue(Reply(pieces=()), Reply(content=""))
    with pytest.raises(ChatModelError, match="empty"):
        list(model(server.url).stream(MESSAGES))


def test_a_hanging_endpoint_times_out_within_the_setting(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(content="too late", hang_s=30.0))
    started = time.monotonic()
    with pytest.raises(ChatModelError, match=r"(?i)timed? ?out"):
        model(server.url, timeout_s=0.3).generate(MESSAGES)
    assert time.monotonic() - started < 10


def test_an_unreachable_endpoint_is_an_error_not_a_crash() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(ChatModelError):
        model(url, retries=1).generate(MESSAGES)
    with pytest.raises(ChatModelError):
        list(model(url).stream(MESSAGES))


def test_messages_take_only_known_roles() -> None:
    with pytest.raises(ValueError, match="'robot'"):
        ChatMessage("robot", "beep")
