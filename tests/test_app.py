"""Tests for the Gradio UI in ``app.py``, driven over HTTP with ``gradio_client``.

A scripted fake stands in for the assistant (no model, no index), the app is served on
127.0.0.1 on a free port, and every socket connection to anywhere else fails the test.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gradio_client import Client

import app
from rag.errors import IndexNotBuiltError, QuestionError
from rag.schema import Answer, AnswerDelta, AnswerEvent, Citation
from tests.conftest import free_port

CALL_TIMEOUT_S = 20.0
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

DATE_QUESTION = "On what date were the proposals published?"
PARTNERS_QUESTION = "Which countries does Brussels want to work with?"
REFUSED_QUESTION = "Who won the 1966 World Cup?"
FOLLOW_UP = "What did she say?"
BROKEN_QUESTION = "Trigger an internal failure"
NO_INDEX_QUESTION = "Ask before ingesting"

DIGITAL_STRATEGY = Citation(
    n=1,
    article_id="a1",
    title="EU unveils its International Digital Strategy",
    author="Jane Doe",
    date="2025-06-05",
    url="https://news.example/eu-digital (2025)",
    quote="The Commission published the proposals on 5 June 2025.",
    chunk_id="a1-0",
    score=0.91,
)
PARTNERS = Citation(
    n=2,
    article_id="a2",
    title="Brussels *looks* abroad",
    author="",
    date="June 2025",
    url="",
    quote="# Partners\n* Japan, India and [Canada](x) are named_first_",
    chunk_id="a2-3",
    score=0.72,
)


def make_answer(question: str, text: str, citations: Sequence[Citation] = ()) -> Answer:
    return Answer(
        question=question,
        answer=text,
        refused=not citations,
        citations=tuple(citations),
        passages=(),
        timings_ms={"total": 1.0},
    )


class ScriptedAssistant:
    """A deterministic stand-in for the real assistant that records what it was asked."""

    max_question_chars = 80

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def stream(self, question: str, history: Sequence[str] = ()) -> Iterator[AnswerEvent]:
        self.calls.append((question, tuple(history)))
        if not question.strip():
            raise QuestionError("The question is empty: type a question about the articles.")
        if len(question) > self.max_question_chars:
            raise QuestionError(
                f"The question is {len(question)} characters long; "
                f"the limit is {self.max_question_chars}."
            )
        if question == NO_INDEX_QUESTION:
            raise IndexNotBuiltError("No articles are indexed yet: run `rag ingest` first.")
        if question == BROKEN_QUESTION:
            yield AnswerDelta("Half an answer")
            raise RuntimeError("internal detail that users must not see")
        if question in (DATE_QUESTION, PARTNERS_QUESTION, FOLLOW_UP):
            yield AnswerDelta("The proposals were published ")
            yield AnswerDelta("on 5 June 2025 [1].")
            yield make_answer(
                question,
                "The proposals were published on 5 June 2025 [1]. Japan, India and Canada "
                "are named as partners [2].",
                [DIGITAL_STRATEGY, PARTNERS],
            )
            return
        yield make_answer(question, "The articles do not say who won the 1966 World Cup.")


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail any connection or name look-up that leaves 127.0.0.1, and record it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def is_local(host: object) -> bool:
        return isinstance(host, str) and (host in LOOPBACK or host.startswith("127."))

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
            attempts.append(address)
            raise OSError(f"test blocked a connection to {address!r}")
        real_connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_local(host):
            attempts.append(host)
            raise socket.gaierror(f"test blocked a look-up of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
    assert attempts == [], f"tried to reach outside 127.0.0.1: {attempts}"


@pytest.fixture
def assistant() -> ScriptedAssistant:
    return ScriptedAssistant()


@pytest.fixture
def served(assistant: ScriptedAssistant) -> Iterator[str]:
    """The app around ``assistant``, listening on 127.0.0.1; yields its URL."""
    blocks = app.build_app(assistant)
    url = ""
    for attempt in range(5):  # another process may take the free port before we bind it
        try:
            url = app.launch(blocks, "127.0.0.1", free_port(), block=False)
            break
        except OSError:
            if attempt == 4:
                raise
    try:
        yield url
    finally:
        blocks.close()


@pytest.fixture
def new_client(served: str) -> Iterator[Callable[[], Client]]:
    """Opens one ``Client`` per conversation (a Client keeps its chat history)."""
    clients: list[Client] = []

    def open_client() -> Client:
        client = Client(
            served,
            verbose=False,
            analytics_enabled=False,
            download_files=False,
            httpx_kwargs={"timeout": CALL_TIMEOUT_S},
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def ask(client: Client, question: str) -> tuple[str, list[Any]]:
    """Ask through ``/respond``; returns the final reply and every streamed value."""
    job = client.submit(question, api_name="/respond")
    reply = job.result(timeout=CALL_TIMEOUT_S)
    assert isinstance(reply, str)
    return reply, list(job.outputs())


# --- Through the served app -------------------------------------------------------------------


def test_endpoint_takes_only_the_message(new_client: Callable[[], Client]) -> None:
    info = new_client().view_api(print_info=False, return_format="dict")
    assert isinstance(info, dict)
    endpoint = info["named_endpoints"]["/respond"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["message"]


def test_answer_streams_then_shows_sources(
    new_client: Callable[[], Client], assistant: ScriptedAssistant
) -> None:
    reply, outputs = ask(new_client(), DATE_QUESTION)

    assert outputs[0] == "The proposals were published "
    assert "The proposals were published on 5 June 2025 [1]." in outputs
    assert outputs[-1] == reply
    assert reply.startswith("The proposals were published on 5 June 2025 [1].")
    assert "#### Sources" in reply
    assert (
        "**[1]** [*EU unveils its International Digital Strategy*]"
        "(https://news.example/eu-digital%20%282025%29) — Jane Doe, 5 June 2025"
    ) in reply
    assert "> The Commission published the proposals on 5 June 2025." in reply
    assert r"**[2]** *Brussels \*looks\* abroad* — June 2025" in reply
    assert assistant.calls == [(DATE_QUESTION, ())]


def test_refusal_is_marked_and_has_no_sources(new_client: Callable[[], Client]) -> None:
    reply, _ = ask(new_client(), REFUSED_QUESTION)

    assert reply.startswith(app.REFUSAL_PREFIX)
    assert "The articles do not say who won the 1966 World Cup." in reply
    assert "Sources" not in reply


def test_bad_questions_get_one_line_messages_and_the_app_keeps_answering(
    new_client: Callable[[], Client], assistant: ScriptedAssistant
) -> None:
    client = new_client()

    empty, _ = ask(client, "")
    too_long, _ = ask(client, "x" * 81)
    no_index, _ = ask(client, NO_INDEX_QUESTION)
    fine, _ = ask(client, DATE_QUESTION)

    assert empty == "⚠️ The question is empty: type a question about the articles."
    assert too_long == "⚠️ The question is 81 characters long; the limit is 80."
    assert no_index == "⚠️ No articles are indexed yet: run `rag ingest` first."
    assert "#### Sources" in fine
    # The over-long question reached the assistant whole: the UI does not truncate it.
    assert assistant.calls[1][0] == "x" * 81


def test_unexpected_failure_is_logged_not_shown(
    new_client: Callable[[], Client], caplog: pytest.LogCaptureFixture
) -> None:
    client = new_client()
    with caplog.at_level(logging.ERROR, logger=app.logger.name):
        reply, _ = ask(client, BROKEN_QUESTION)

    assert reply == f"⚠️ {app.UNEXPECTED_ERROR_MESSAGE}"
    assert "internal detail" not in reply
    assert any(r.exc_info and "internal detail" in str(r.exc_info[1]) for r in caplog.records)
    assert "#### Sources" in ask(client, DATE_QUESTION)[0]


def test_follow_up_gets_earlier_questions_as_history(
    new_client: Callable[[], Client], assistant: ScriptedAssistant
) -> None:
    conversation = new_client()
    ask(conversation, DATE_QUESTION)
    ask(conversation, PARTNERS_QUESTION)
    ask(conversation, FOLLOW_UP)
    ask(new_client(), FOLLOW_UP)  # a new conversation starts with no history

    assert assistant.calls == [
        (DATE_QUESTION, ()),
        (PARTNERS_QUESTION, (DATE_QUESTION,)),
        (FOLLOW_UP, (DATE_QUESTION, PARTNERS_QUESTION)),
        (FOLLOW_UP, ()),
    ]


def test_app_turns_analytics_off_without_the_environment(
    monkeypatch: pytest.MonkeyPatch, assistant: ScriptedAssistant
) -> None:
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED")
    blocks = app.build_app(assistant, examples=["Q?"], title="Test")
    assert blocks.analytics_enabled is False
    assert blocks.title == "Test"


# --- Pure functions ---------------------------------------------------------------------------


def test_render_answer_escapes_quotes_and_formats_sources() -> None:
    answer = make_answer(
        DATE_QUESTION,
        "Published on 5 June 2025 [1], with partners [2].",
        [PARTNERS, DIGITAL_STRATEGY],
    )
    rendered = app.render_answer(answer)

    assert rendered.index("**[1]**") < rendered.index("**[2]**")
    assert (
        "\n> \\# Partners\n> \\* Japan, India and \\[Canada\\](x) are named\\_first\\_" in rendered
    )
    assert "Jane Doe, 5 June 2025" in rendered
    # Each source starts its own paragraph, so a quote cannot swallow the next heading.
    assert "2025.\n\n**[2]**" in rendered


def test_article_markup_in_the_answer_text_is_shown_as_text() -> None:
    quote = 'The wall <img src="http://127.0.0.1:9/p.png"> costs <b>4m</b> <script>x()</script>.'
    rendered = app.render_answer(make_answer("q", f"{quote} [1]", [PARTNERS]))
    text = rendered.split("\n\n#### Sources", 1)[0]
    assert text == (
        'The wall \\<img src="http\\://127.0.0.1:9/p.png"\\> costs \\<b\\>4m\\</b\\>'
        " \\<script\\>x()\\</script\\>. [1]"
    )
    # A marker the article text dresses as a link stays escaped.
    assert app.escape_answer("[1](http://x) [2]") == "\\[1\\](http\\://x) [2]"


def test_refusal_rendering_keeps_the_assistants_text() -> None:
    rendered = app.render_answer(make_answer("q", "The articles do not mention this."))
    assert rendered == f"{app.REFUSAL_PREFIX}\n\nThe articles do not mention this."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a *b* _c_ `d`", r"a \*b\* \_c\_ \`d\`"),
        ("# heading", r"\# heading"),
        ("- item\n1. first\n+ plus", "\\- item\n1\\. first\n\\+ plus"),
        ("<script>x</script> & [l](u)", r"\<script\>x\</script\> \& \[l\](u)"),
        ("plain words, 5.2% and C:\\path", "plain words, 5.2% and C:\\\\path"),
        ("at https://x.org or www.x.org", "at https\\://x.org or www\\.x.org"),
    ],
)
def test_escape_markdown(text: str, expected: str) -> None:
    assert app.escape_markdown(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-05", "5 June 2025"),
        ("2024-12-31T08:00:00Z", "31 December 2024"),
        ("June 2025", "June 2025"),
        ("2025-02-30", "2025-02-30"),
        ("", ""),
    ],
)
def test_format_date(value: str, expected: str) -> None:
    assert app.format_date(value) == expected


def test_previous_questions_reads_both_content_shapes() -> None:
    history = [
        {"role": "user", "content": "First?"},
        {"role": "assistant", "content": "An answer [1]."},
        {"role": "user", "content": [{"type": "text", "text": "Second?"}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/x"}}]},
        {"role": "user", "content": "   "},
    ]
    assert app.previous_questions(history) == ["First?", "Second?"]
