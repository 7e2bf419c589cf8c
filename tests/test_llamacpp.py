"""The xllamacpp adapter: LangChain messages in, OpenAI-style requests to llama.cpp's in-process
server, replies and streamed deltas back as LangChain messages. Unit tests hand it a scripted
server; the opt-in test (``make test-gguf``, marker ``gguf``) runs the real Qwen2.5-Coder-1.5B
GGUF through ``rag ask --answerer llm``."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from rag.chat_models import ChatModelError, generate_text, stream_text
from rag.cli import main
from rag.errors import ProviderError
from rag.generate import MODEL_FAILED_NOTICE
from rag.llamacpp import ChatXLlamaCpp
from tests.conftest import CORPUS


class ScriptedServer:
    """Stands in for ``xllamacpp.Server``: records requests, answers from a script."""

    def __init__(self, reply: Any = None, chunks: tuple[Any, ...] = ()) -> None:
        self.reply = reply
        self.chunks = chunks
        self.requests: list[dict[str, Any]] = []
        self.stopped_after: int | None = None

    def handle_chat_completions(
        self, request: dict[str, Any], callback: Callable[[Any], bool] | None = None
    ) -> Any:
        self.requests.append(request)
        if callback is None:
            assert not request["stream"]
            return self.reply
        assert request["stream"]
        for n, chunk in enumerate(self.chunks, start=1):
            if callback(chunk):  # True: the consumer asked llama.cpp to stop
                self.stopped_after = n
                return None
        return None


def reply(text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}


def delta(text: str | None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


MESSAGES = [SystemMessage("Answer from the passages."), HumanMessage("Who?")]


def test_invoke_sends_an_openai_request_and_returns_the_reply() -> None:
    server = ScriptedServer(reply("Kaja Kallas [1]."))
    model = ChatXLlamaCpp(server=server, model_name="q.gguf", max_tokens=50, temperature=0.1)
    message = model.invoke(MESSAGES, stop=["\n\n"])
    assert message.text == "Kaja Kallas [1]."
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 3
    (request,) = server.requests
    assert request["messages"] == [
        {"role": "system", "content": "Answer from the passages."},
        {"role": "user", "content": "Who?"},
    ]
    assert (request["max_tokens"], request["temperature"], request["stop"]) == (50, 0.1, ["\n\n"])


def test_stream_yields_each_delta_as_llama_cpp_produces_it() -> None:
    chunks = (delta(None), delta("Kaja"), delta(" Kallas"), delta(" [1]."), {"choices": []})
    model = ChatXLlamaCpp(server=ScriptedServer(chunks=chunks))
    assert list(stream_text(model, MESSAGES)) == ["Kaja", " Kallas", " [1]."]


def test_closing_a_stream_early_asks_llama_cpp_to_stop() -> None:
    class Generating(ScriptedServer):
        """Produces a piece every 20 ms, up to 100, unless told to stop."""

        def handle_chat_completions(self, request: dict[str, Any], callback: Any = None) -> Any:
            for n in range(1, 101):
                if callback(delta(f"w{n} ")):
                    self.stopped_after = n
                    return None
                threading.Event().wait(0.02)
            return None

    server = Generating()
    pieces = ChatXLlamaCpp(server=server).stream(MESSAGES)
    first = next(pieces)
    pieces.close()
    assert first.text == "w1 "
    assert server.stopped_after is not None and server.stopped_after < 100


@pytest.mark.parametrize(
    "bad",
    [
        {"code": 500, "type": "server_error", "message": "context overflow"},
        {"error": {"message": "bad request"}},
        "not a dict",
        {"choices": [{"message": {"content": None}}]},
    ],
)
def test_an_error_reply_is_one_chat_model_error(bad: Any) -> None:
    model = ChatXLlamaCpp(server=ScriptedServer(reply=bad))
    with pytest.raises(ChatModelError) as raised:
        generate_text(model, MESSAGES)
    assert "\n" not in str(raised.value)


def test_an_error_in_a_stream_is_one_chat_model_error() -> None:
    chunks = (delta("Kaja"), {"code": 500, "message": "slot died"})
    model = ChatXLlamaCpp(server=ScriptedServer(chunks=chunks))
    with pytest.raises(ChatModelError, match="slot died"):
        list(stream_text(model, MESSAGES))


def test_calls_run_one_at_a_time() -> None:
    active = 0
    most = 0
    lock = threading.Lock()

    class Slow(ScriptedServer):
        def handle_chat_completions(self, request: dict[str, Any], callback: Any = None) -> Any:
            nonlocal active, most
            with lock:
                active += 1
                most = max(most, active)
            threading.Event().wait(0.05)
            with lock:
                active -= 1
            return reply("ok")

    model = ChatXLlamaCpp(server=Slow())
    threads = [threading.Thread(target=model.invoke, args=(MESSAGES,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert most == 1


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="make gguf"):
        ChatXLlamaCpp.load(tmp_path / "none.gguf")


# -- the real model (opt-in) ----------------------------------------------------------------------

GGUF = os.environ.get("RAG_TEST_GGUF", "")


@pytest.mark.gguf
@pytest.mark.integration
@pytest.mark.skipif(
    not GGUF or not Path(GGUF).is_file(),
    reason="opt-in: make test-gguf (RAG_TEST_GGUF names the Qwen2.5-Coder-1.5B GGUF)",
)
def test_rag_ask_with_the_real_gguf_through_xllamacpp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("xllamacpp", reason="pip install 'newsroom-rag[llamacpp]'")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_LLM", f"llamacpp:{GGUF}")
    assert main(["ingest", "--quiet", str(CORPUS)]) == 0
    capsys.readouterr()
    question = "On what date were the International Digital Strategy proposals published?"
    assert main(["ask", "--answerer", "llm", "--json", question]) == 0
    data = json.loads(capsys.readouterr().out)
    with capsys.disabled():  # the figures for the closing note, outside the captured output
        print(json.dumps(data, indent=2))
    assert MODEL_FAILED_NOTICE not in data["notices"], data  # the model ran, in-process
    assert data["refused"] or "June 5" in data["answer"]
    article = next(CORPUS.glob("*.md")).read_text(encoding="utf-8")
    assert all(" ".join(c["quote"].split()) in " ".join(article.split()) for c in data["citations"])
    assert (
        main(["ask", "--answerer", "llm", "--json", "How much money did the EU give Africa?"]) == 0
    )
    africa = json.loads(capsys.readouterr().out)
    with capsys.disabled():
        print(json.dumps(africa, indent=2))
    assert "1.5" not in africa["answer"] and "billion" not in africa["answer"]
