"""The LLM answerer wired into the assistant, the CLI and the eval harness: LangChain's
ChatOpenAI against a fake OpenAI-compatible server on 127.0.0.1, and LangChain's fake chat models
through the real registry, with the fake embedder: verified answers, refusals before generation,
follow-up rewriting, and fallbacks to the extractive answer that never crash."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from rag.analyze import QuestionAnalyzer
from rag.answer import NOT_FOUND
from rag.assistant import Assistant
from rag.chat_models import ChatModelOptions, register_chat_model
from rag.cite import MARKER, citation_problems
from rag.cli import main
from rag.config import Settings
from rag.followup import is_greeting, rewrite_question
from rag.generate import MODEL_FAILED_NOTICE, UNVERIFIED_NOTICE, LLMAnswerer, removed_notice
from rag.schema import Answer, AnswerDelta
from tests.conftest import free_port
from tests.fake_openai import FakeOpenAIServer, Reply

ARTICLE = """---
id: eu-strategy
title: Why Europe Should Double Down On Its Global Tech Ties
author: Mark Scott
date: 2025-06-05
publisher: Tech Policy Press
---

In proposals published on June 5, the executive branch of the 27-country bloc doubled down on
international partnerships.

Brussels wants to reinforce existing relationships with the likes of India, South Korea and Japan.

As part of the proposals, Brussels said it would expand its support for digital infrastructure
across Latin America, Asia and Africa.

“Europe has huge potential to expand its geopolitical reach on digital issues,” said Kaja Kallas,
the High Representative of the European Union for Foreign Affairs and Security Policy.
"""
SECRET = "sk-never-print-me-42"
PARTNERS_Q = "Which countries does Brussels want to reinforce relationships with?"
PARTNERS_REPLY = (
    "Brussels wants to reinforce existing relationships with India, South Korea and Japan [1]."
)
AFRICA_Q = "What support did Brussels promise for Africa?"
INVENTED = "The EU set aside EUR 1.5 billion for Africa [1]."
AFRICA_REPLY = (
    "Brussels said it would expand its support for digital infrastructure across Latin America,"
    f" Asia and Africa [1]. {INVENTED}"
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "eu.md").write_text(ARTICLE, encoding="utf-8")
    return folder


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def llm_settings(settings: Settings, server: FakeOpenAIServer) -> Settings:
    return settings.replace(
        answerer="llm", llm_base_url=server.url, llm_timeout_s=0.5, llm_retries=0
    )


@pytest.fixture
def assistant(llm_settings: Settings, corpus: Path) -> Assistant:
    built = Assistant.open(llm_settings)
    built.ingest([corpus], progress=False)
    return built


def valid(answer: Answer) -> bool:
    return citation_problems(answer) == []


# -- verified answers ----------------------------------------------------------------------------


def test_a_faithful_cited_answer_is_shown_with_its_source(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(PARTNERS_REPLY)
    answer = assistant.ask(PARTNERS_Q)
    assert not answer.refused and answer.answer == PARTNERS_REPLY.replace(" [1].", ". [1]")
    assert answer.notices == () and answer.removed == () and valid(answer)
    (citation,) = answer.citations
    assert citation.article_id == "eu-strategy" and "India, South Korea and Japan" in citation.quote
    (request,) = server.requests
    assert not request.body.get("stream")
    assert (
        "[1] Why Europe Should Double Down On Its Global Tech Ties (2025-06-05)" in request.prompt
    )
    assert PARTNERS_Q in request.prompt and "I don't know." in request.prompt
    assert "answer" in answer.timings_ms and "rewrite" in answer.timings_ms


def test_an_invented_figure_is_removed_and_reported(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(AFRICA_REPLY)
    answer = assistant.ask(AFRICA_Q)
    assert not answer.refused and "Africa" in answer.answer and valid(answer)
    assert "1.5" not in answer.answer and "billion" not in answer.answer
    (removed,) = answer.removed
    assert removed.sentence == INVENTED.replace(" [1].", ".") and "1.5" in removed.reason
    assert answer.notices == (removed_notice(1),)
    data = answer.to_dict()
    assert data["removed"] == [{"sentence": removed.sentence, "reason": removed.reason}]
    assert data["notices"] == [removed_notice(1)]


def test_a_citation_to_a_passage_that_does_not_exist_is_dropped(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(PARTNERS_REPLY.replace("[1]", "[1][9]"))
    answer = assistant.ask(PARTNERS_Q)
    assert MARKER.findall(answer.answer) == ["1"] and "[9]" not in answer.answer
    assert valid(answer) and answer.removed == ()


def test_the_key_is_sent_when_set_and_never_logged(
    llm_settings: Settings,
    corpus: Path,
    server: FakeOpenAIServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assistant = Assistant.open(llm_settings.replace(llm_api_key=SECRET))
    assistant.ingest([corpus], progress=False)
    server.enqueue(PARTNERS_REPLY, Reply(status=401))
    with caplog.at_level(logging.DEBUG):
        assistant.ask(PARTNERS_Q)
        failed = assistant.ask(PARTNERS_Q)
    assert [r.headers.get("authorization") for r in server.requests] == [f"Bearer {SECRET}"] * 2
    assert failed.notices == (MODEL_FAILED_NOTICE,)
    assert SECRET not in caplog.text and SECRET not in json.dumps(failed.to_dict())


# -- refusals -------------------------------------------------------------------------------------


def test_without_strong_evidence_the_model_is_not_called(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    for question in ("What is the capital of Australia?", "How much money did the EU give?"):
        answer = assistant.ask(question)
        assert answer.refused and answer.citations == ()
    assert server.requests == []


def test_the_model_saying_it_does_not_know_is_a_refusal(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue("I don't know.")
    answer = assistant.ask(PARTNERS_Q)
    assert answer.refused and answer.answer == NOT_FOUND and answer.citations == ()
    assert valid(answer) and len(server.requests) == 1


# -- failures fall back to the extractive answer --------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "notice"),
    [
        (Reply(status=500), MODEL_FAILED_NOTICE),
        (Reply(status=404), MODEL_FAILED_NOTICE),
        (Reply(raw=b"\x00garbage\xff"), MODEL_FAILED_NOTICE),
        (Reply(content=""), MODEL_FAILED_NOTICE),
        (Reply(content="Brussels likes Asia."), UNVERIFIED_NOTICE),  # no marker at all
        (Reply(content="asdf qwer zxcv [1]"), UNVERIFIED_NOTICE),
        (Reply(content=INVENTED), UNVERIFIED_NOTICE),  # nothing survives
    ],
)
def test_a_failed_or_unusable_reply_gives_the_extractive_answer_with_a_notice(
    assistant: Assistant,
    settings: Settings,
    server: FakeOpenAIServer,
    reply: Reply,
    notice: str,
) -> None:
    server.enqueue(reply)
    answer = assistant.ask(AFRICA_Q)
    extractive = Assistant(settings, assistant.embedder, assistant.store).ask(AFRICA_Q)
    assert not answer.refused and answer.answer == extractive.answer
    assert answer.citations == extractive.citations and valid(answer)
    assert answer.notices == (notice,)
    assert "1.5" not in answer.answer


def test_a_hanging_endpoint_times_out_and_the_answer_still_comes(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(Reply(content=PARTNERS_REPLY, hang_s=30.0))
    started = time.monotonic()
    answer = assistant.ask(PARTNERS_Q)
    assert time.monotonic() - started < 10
    assert not answer.refused and answer.notices == (MODEL_FAILED_NOTICE,) and valid(answer)
    server.enqueue(PARTNERS_REPLY)  # the process is still up and the next question works
    assert assistant.ask(PARTNERS_Q).notices == ()


def test_an_unreachable_endpoint_gives_the_extractive_answer(
    settings: Settings, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    llm = settings.replace(answerer="llm", llm_base_url=closed, llm_retries=0, llm_timeout_s=1)
    assistant = Assistant.open(llm)
    assistant.ingest([corpus], progress=False)
    with caplog.at_level(logging.WARNING):
        answer = assistant.ask(PARTNERS_Q)
    assert not answer.refused and "India" in answer.answer
    assert answer.notices == (MODEL_FAILED_NOTICE,)
    assert "chat model failed" in caplog.text


# -- streaming ------------------------------------------------------------------------------------


def test_stream_yields_the_model_tokens_then_the_verified_answer(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    pieces = tuple(AFRICA_REPLY[i : i + 7] for i in range(0, len(AFRICA_REPLY), 7))
    server.enqueue(Reply(pieces=pieces))
    events = list(assistant.stream(AFRICA_Q))
    deltas = [e.text for e in events if isinstance(e, AnswerDelta)]
    assert tuple(deltas) == pieces  # one delta per token piece, as it arrived
    final = events[-1]
    assert isinstance(final, Answer) and sum(isinstance(e, Answer) for e in events) == 1
    assert "1.5" not in final.answer and len(final.removed) == 1 and valid(final)
    assert server.requests[0].body["stream"] is True


def test_a_stream_that_fails_ends_with_the_extractive_answer(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(Reply(status=503))
    events = list(assistant.stream(PARTNERS_Q))
    final = events[-1]
    assert isinstance(final, Answer) and final.notices == (MODEL_FAILED_NOTICE,)
    assert not final.refused and valid(final)


def test_the_extractive_default_streams_its_checked_answer_and_needs_no_model(
    settings: Settings, corpus: Path
) -> None:
    assistant = Assistant.open(settings)  # no endpoint configured at all
    assistant.ingest([corpus], progress=False)
    assert assistant.settings.answerer == "extractive"
    events = list(assistant.stream(PARTNERS_Q))
    final = events[-1]
    assert isinstance(final, Answer) and final.notices == () and final.removed == ()
    assert events == [final]  # whole verbatim sentences in one step: no replayed pieces


# -- follow-ups -----------------------------------------------------------------------------------


def test_a_follow_up_is_rewritten_by_the_model_before_retrieval(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(
        "Standalone question: What did Kaja Kallas say?",
        "Kaja Kallas said Europe has huge potential to expand its geopolitical reach [1].",
    )
    answer = assistant.ask("What did she say?", ["Who is Kaja Kallas?"])
    assert answer.search_query == "What did Kaja Kallas say?"
    assert answer.question == "What did she say?"
    rewrite, generate = server.requests
    assert "Who is Kaja Kallas?" in rewrite.prompt and "What did she say?" in rewrite.prompt
    assert "Question: What did Kaja Kallas say?" in generate.prompt
    assert not answer.refused and "Kallas" in answer.answer and valid(answer)


@pytest.mark.parametrize("rewrite", ["", "   ", "x " * 400, "I don't know."])
def test_an_absurd_rewrite_falls_back_to_the_offline_resolution(
    assistant: Assistant, server: FakeOpenAIServer, rewrite: str
) -> None:
    server.enqueue(Reply(content=rewrite), "Kaja Kallas said Europe has huge potential [1].")
    answer = assistant.ask("What did she say?", ["Who is Kaja Kallas?"])
    assert answer.search_query == "What did Kaja Kallas say?"
    assert not answer.refused


def test_a_failed_rewrite_falls_back_and_does_not_call_the_model_again(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    server.enqueue(Reply(status=500), "never used")
    answer = assistant.ask("What did she say?", ["Who is Kaja Kallas?"])
    assert answer.search_query == "What did Kaja Kallas say?"
    assert len(server.requests) == 1 and answer.notices == (
        "Searched for: “What did Kaja Kallas say?”.",
        MODEL_FAILED_NOTICE,
    )
    assert not answer.refused and "Kallas" in answer.answer


def test_greetings_and_standalone_questions_are_not_rewritten(
    assistant: Assistant, server: FakeOpenAIServer
) -> None:
    greeting = assistant.ask("Thanks!", ["Who is Kaja Kallas?"])
    assert greeting.search_query == "Thanks!" and greeting.refused
    assert server.requests == []  # no rewrite, and no answer without evidence
    server.enqueue(PARTNERS_REPLY)
    answer = assistant.ask(PARTNERS_Q, ["Who is Kaja Kallas?"])
    assert answer.search_query == PARTNERS_Q and len(server.requests) == 1


class _Failing(FakeListChatModel):
    """LangChain's fake chat model, failing as a provider with a bug would."""

    def _call(self, *args: Any, **kwargs: Any) -> str:
        self.i += 1
        raise RuntimeError("provider bug")


def test_rewrite_question_rules() -> None:
    analyzer = QuestionAnalyzer()
    model = FakeListChatModel(responses=['"What did Kaja Kallas say about Asia?"', "unused"])
    rewrite = rewrite_question(
        model, "What did she say?", ["Who is Kaja Kallas?"], analyzer, max_chars=100
    )
    assert (rewrite.query, rewrite.by_model) == ("What did Kaja Kallas say about Asia?", True)
    alone = rewrite_question(model, "What did she say?", [], analyzer, max_chars=100)
    assert alone.query == "What did she say?"
    failing = _Failing(responses=["never"])
    fallback = rewrite_question(failing, "Why?", ["Who signed?"], analyzer, max_chars=100)
    assert fallback.model_failed and fallback.query == "Who signed? Why?"
    assert model.i == 1 and failing.i == 1


@pytest.mark.parametrize("text", ["Hi", "hello there!", "Thanks a lot", "Good morning", "ok"])
def test_greetings_are_recognised(text: str) -> None:
    assert is_greeting(text)


@pytest.mark.parametrize("text", ["What did she say?", "Hi, who is Kallas?", "And Japan?", ""])
def test_questions_are_not_greetings(text: str) -> None:
    assert not is_greeting(text)


def test_the_assistant_can_be_handed_a_chat_model(
    llm_settings: Settings, corpus: Path, settings: Settings
) -> None:
    extractive = Assistant.open(settings)
    extractive.ingest([corpus], progress=False)
    model = GenericFakeChatModel(messages=iter([AIMessage(PARTNERS_REPLY)]))
    assistant = Assistant(llm_settings, extractive.embedder, extractive.store, chat_model=model)
    answer = assistant.ask(PARTNERS_Q)
    assert "India" in answer.answer and answer.notices == () and valid(answer)
    with pytest.raises(StopIteration):  # its one reply was used, once
        next(model.messages)


def test_assistant_open_takes_any_langchain_chat_model(
    llm_settings: Settings, corpus: Path
) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(AFRICA_REPLY)]))
    assistant = Assistant.open(llm_settings.replace(llm_base_url=""), chat_model=model)
    assistant.ingest([corpus], progress=False)
    answer = assistant.ask(AFRICA_Q)
    assert assistant.chat_model() is model and "1.5" not in answer.answer and valid(answer)
    assert [r.sentence for r in answer.removed] == [INVENTED.replace(" [1].", ".")]


def test_an_unexpected_provider_exception_does_not_crash_the_answer(
    llm_settings: Settings, corpus: Path, settings: Settings
) -> None:
    extractive = Assistant.open(settings)
    extractive.ingest([corpus], progress=False)
    model = _Failing(responses=["never"])
    assistant = Assistant(llm_settings, extractive.embedder, extractive.store, chat_model=model)
    answer = assistant.ask(PARTNERS_Q)
    assert not answer.refused and answer.notices == (MODEL_FAILED_NOTICE,)
    assert model.i == 1


def _queued(options: ChatModelOptions) -> BaseChatModel:
    """A registered provider for tests: LangChain's fake model, streaming a scripted reply."""
    return GenericFakeChatModel(messages=iter([AIMessage(QUEUED[options.model])]))


QUEUED = {"africa": AFRICA_REPLY, "partners": PARTNERS_REPLY}
register_chat_model("queued", _queued)


def test_a_chat_model_chosen_by_provider_and_model_streams_a_verified_answer(
    settings: Settings, corpus: Path
) -> None:
    assistant = Assistant.open(settings.replace(answerer="llm", llm="queued:africa"))
    assistant.ingest([corpus], progress=False)
    events = list(assistant.stream(AFRICA_Q))
    deltas = [e.text for e in events if isinstance(e, AnswerDelta)]
    final = events[-1]
    assert len(deltas) > 1 and "".join(deltas) == AFRICA_REPLY  # the model's own pieces
    assert isinstance(final, Answer) and "1.5" not in final.answer and valid(final)
    assert [r.sentence for r in final.removed] == [INVENTED.replace(" [1].", ".")]


def test_the_prompt_numbers_the_passages_with_title_and_date(assistant: Assistant) -> None:
    generator = assistant.answerer()
    assert isinstance(generator, LLMAnswerer)
    passages = assistant.retriever().search(PARTNERS_Q).passages
    system, user = generator.messages(PARTNERS_Q, passages)
    assert isinstance(system, SystemMessage) and isinstance(user, HumanMessage)
    assert user.text.count("[1] Why Europe") == 1
    assert "2025-06-05" in user.text and passages[0].text.strip() in user.text


# -- the UI shows notices -------------------------------------------------------------------------


def test_the_chat_shows_notices_as_an_italic_line() -> None:
    import app

    answer = Answer("q", "Quoted. [1]", False, (), (), {}, notices=("The *model* failed.",))
    assert "*The \\*model\\* failed.*" in app.render_answer(answer)
    refusal = Answer("q", NOT_FOUND, True, (), (), {}, notices=("Note one.",))
    assert app.render_answer(refusal).endswith("*Note one.*")


# -- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.setenv("RAG_MIN_EVIDENCE", "0.3")
    monkeypatch.setenv("RAG_LLM_TIMEOUT_S", "1")
    monkeypatch.setenv("RAG_LLM_RETRIES", "0")
    assert main(["ingest", "--quiet", str(corpus)]) == 0
    return corpus


def test_cli_ask_with_an_inventing_model_shows_no_invented_figure(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(default=Reply(AFRICA_REPLY)) as fake:
        capsys.readouterr()
        code = main(["ask", "--answerer", "llm", "--llm-base-url", fake.url, "--json", AFRICA_Q])
        out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0 and len(fake.requests) == 1
    assert "1.5" not in data["answer"] and "billion" not in data["answer"]
    assert data["refused"] or "Africa" in data["answer"]
    assert data["removed"] and "1.5" in data["removed"][0]["reason"]


def test_cli_ask_with_an_unreachable_model_still_answers_and_says_so(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    capsys.readouterr()
    code = main(["ask", "--answerer", "llm", "--llm-base-url", closed, PARTNERS_Q])
    out = capsys.readouterr().out
    assert code == 0 and "India" in out
    assert f"Note: {MODEL_FAILED_NOTICE}" in out
    code = main(["ask", "--answerer", "llm", "--llm-base-url", closed, "--json", PARTNERS_Q])
    assert json.loads(capsys.readouterr().out)["notices"] == [MODEL_FAILED_NOTICE]


def test_cli_llm_without_an_endpoint_is_a_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["ask", "--answerer", "llm", PARTNERS_Q]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "RAG_LLM_BASE_URL" in err and err.count("\n") == 1


def test_cli_has_no_flag_for_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ask", "--llm-api-key", SECRET, "q"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_cli_eval_runs_with_the_llm_answerer_and_counts_removed_sentences(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "questions.yaml"
    questions.write_text(
        f'- id: a1\n  question: "{AFRICA_Q}"\n  facts: [["Africa"]]\n'
        '- id: u1\n  question: "What is the capital of Australia?"\n  answerable: false\n',
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    with FakeOpenAIServer(default=Reply(AFRICA_REPLY)) as fake:
        code = main(
            [
                "eval",
                "--answerer",
                "llm",
                "--llm-base-url",
                fake.url,
                "--questions",
                str(questions),
                "--report-json",
                str(report),
                "--fail-over",
                "verifier_removed=5",
            ]
        )
    assert code == 0, capsys.readouterr()
    metrics = json.loads(report.read_text(encoding="utf-8"))["metrics"]
    assert metrics["verifier_removed"] == 1 and metrics["citation_validity"] == 1.0
    assert len(fake.requests) == 1  # the unanswerable question never reached the model
