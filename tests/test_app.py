"""Tests for the Gradio UI in ``app.py`` and its rendering in ``rag/ui/``.

A scripted fake stands in for the assistant (no model, no index; its catalogue is a real
``Catalog`` over hand-made chunks), the app is served on 127.0.0.1 on a free port and driven
over HTTP with ``gradio_client``, and every socket connection to anywhere else fails the test.
The browser's side (links, headings, accessible names) is in ``tests/test_app_browser.py``.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gradio_client import Client

import app
from rag.catalog import ArticleInfo, Catalog
from rag.errors import IndexNotBuiltError, QuestionError
from rag.retrieve import SearchFilters
from rag.schema import Answer, AnswerDelta, AnswerEvent, Citation, Headline
from rag.store import StoredChunk
from rag.ui import render
from rag.ui.markdown import escape_markdown, format_date
from tests.conftest import free_port

CALL_TIMEOUT_S = 20.0
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

DATE_QUESTION = "On what date were the proposals published?"
PARTNERS_QUESTION = "Which countries does Brussels want to work with?"
REFUSED_QUESTION = "Who won the 1966 World Cup?"
FOLLOW_UP = "What did she say?"
BROKEN_QUESTION = "Trigger an internal failure"
NO_INDEX_QUESTION = "Ask before ingesting"

STRATEGY_TEXT = (
    "Brussels set out its plans on Tuesday.\n\n"
    "The Commission published the proposals on 5 June 2025. They follow a year of talks.\n\n"
    "# Partners\n* Japan, India and [Canada](x) are named_first_ in the plan."
)
PARTNERS_TEXT = "A short piece.\n\n# Partners\n* Japan, India and [Canada](x) are named_first_"


def chunks_of(article_id: str, text: str, meta: dict[str, str]) -> list[StoredChunk]:
    """One stored chunk per paragraph, with the offsets the store keeps."""
    chunks = []
    position = 0
    for index, paragraph in enumerate(text.split("\n\n")):
        start = text.index(paragraph, position)
        end = start + len(paragraph)
        position = end
        metadata: dict[str, str | int | float | bool] = {
            **meta,
            "article_id": article_id,
            "start": start,
            "end": end,
            "index": index,
        }
        chunks.append(StoredChunk(f"{article_id}-{index}", paragraph, metadata))
    return chunks


STRATEGY_META = {
    "title": "EU unveils its International Digital Strategy",
    "author": "Jane Doe",
    "date": "2025-06-05",
    "publisher": "Euro Desk",
    "url": "https://news.example/eu-digital (2025)",
}
PARTNERS_META = {
    "title": "Brussels *looks* abroad",
    "author": "",
    "date": "2017-02-07",
    "publisher": "ABC News",
    "url": "",
}
CATALOG = Catalog(
    [*chunks_of("a1", STRATEGY_TEXT, STRATEGY_META), *chunks_of("a2", PARTNERS_TEXT, PARTNERS_META)]
)

DIGITAL_STRATEGY = Citation(
    n=1,
    article_id="a1",
    title=STRATEGY_META["title"],
    author="Jane Doe",
    date="2025-06-05",
    url=STRATEGY_META["url"],
    quote="The Commission published the proposals on 5 June 2025.",
    chunk_id="a1-1",
    score=0.91,
    publisher="Euro Desk",
)
TUESDAY = Citation(
    n=3,
    article_id="a1",
    title=STRATEGY_META["title"],
    author="Jane Doe",
    date="2025-06-05",
    url=STRATEGY_META["url"],
    quote="Brussels set out its plans on Tuesday.",
    chunk_id="a1-0",
    score=0.5,
    publisher="Euro Desk",
)
PARTNERS = Citation(
    n=2,
    article_id="a2",
    title=PARTNERS_META["title"],
    author="",
    date="2017-02-07",
    url="",
    quote="# Partners\n* Japan, India and [Canada](x) are named_first_",
    chunk_id="a2-1",
    score=0.72,
    publisher="ABC News",
)
ANSWER_TEXT = (
    "The proposals were published on 5 June 2025 [1]. Japan, India and Canada are named as "
    "partners [2]. Brussels set out its plans on Tuesday [3]."
)


def make_answer(
    question: str,
    text: str,
    citations: Sequence[Citation] = (),
    *,
    notices: Sequence[str] = (),
    nearest: Sequence[Headline] = (),
) -> Answer:
    return Answer(
        question=question,
        answer=text,
        refused=not citations,
        citations=tuple(citations),
        passages=(),
        timings_ms={"total": 1.0},
        notices=tuple(notices),
        nearest=tuple(nearest),
    )


class ScriptedAssistant:
    """A deterministic stand-in for the real assistant that records what it was asked."""

    max_question_chars = 80

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.filters: list[SearchFilters | None] = []

    def catalog(self) -> Catalog:
        return CATALOG

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        filters: SearchFilters | None = None,
    ) -> Iterator[AnswerEvent]:
        self.calls.append((question, tuple(history)))
        self.filters.append(filters)
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
            yield make_answer(question, ANSWER_TEXT, [DIGITAL_STRATEGY, PARTNERS, TUESDAY])
            return
        yield make_answer(
            question,
            "The articles do not say who won the 1966 World Cup.",
            nearest=[Headline("a2", PARTNERS_META["title"], "2017-02-07", "ABC News", "")],
        )


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


# --- /respond, through the served app ---------------------------------------------------------


def test_only_respond_is_public_and_it_takes_only_the_message(
    new_client: Callable[[], Client],
) -> None:
    info = new_client().view_api(print_info=False, return_format="dict")
    assert isinstance(info, dict)
    assert list(info["named_endpoints"]) == ["/respond"]
    endpoint = info["named_endpoints"]["/respond"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["message"]


def test_answer_streams_then_lists_each_source_article_once(
    new_client: Callable[[], Client], assistant: ScriptedAssistant
) -> None:
    reply, outputs = ask(new_client(), DATE_QUESTION)

    assert outputs[0] == "The proposals were published "
    assert "The proposals were published on 5 June 2025 [1]." in outputs
    assert outputs[-1] == reply
    assert reply.startswith("The proposals were published on 5 June 2025 [1].")
    assert reply.count("#### Sources") == 1
    assert (
        "**[1]** **[3]** [*EU unveils its International Digital Strategy*]"
        "(https://news.example/eu-digital%20%282025%29) — Jane Doe, Euro Desk, 5 June 2025"
    ) in reply
    assert reply.count("EU unveils its International Digital Strategy") == 1
    assert "> **[1]** The Commission published the proposals on 5 June 2025." in reply
    assert "> **[3]** Brussels set out its plans on Tuesday." in reply
    assert r"**[2]** *Brussels \*looks\* abroad* — ABC News, 7 February 2017" in reply
    assert assistant.calls == [(DATE_QUESTION, ())]


def test_refusal_is_marked_lists_nearest_headlines_and_has_no_sources(
    new_client: Callable[[], Client],
) -> None:
    reply, _ = ask(new_client(), REFUSED_QUESTION)

    assert reply.startswith(app.REFUSAL_PREFIX)
    assert "The articles do not say who won the 1966 World Cup." in reply
    assert r"- *Brussels \*looks\* abroad* (ABC News, 7 February 2017)" in reply
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


# --- The browser's answer (HTML) --------------------------------------------------------------


def rendered_answer() -> str:
    answer = make_answer(DATE_QUESTION, ANSWER_TEXT, [DIGITAL_STRATEGY, PARTNERS, TUESDAY])
    texts = {"a1": STRATEGY_TEXT, "a2": PARTNERS_TEXT}
    return render.render_answer(answer, "k1", texts)


def test_answer_html_is_one_raw_html_block() -> None:
    html = rendered_answer()
    # Gradio renders messages as Markdown: a blank line would end the HTML block there.
    assert html.startswith("<div") and "\n" not in html


def test_each_cited_article_gets_one_card_holding_its_quotes_in_their_paragraphs() -> None:
    html = rendered_answer()

    assert html.count('<article class="rag-card">') == 2
    assert html.count("EU unveils its International Digital Strategy</h3>") == 1
    first_card = html.split('<article class="rag-card">')[1]
    # [1] and [3] are in the same card; [1] is shown inside its paragraph.
    assert 'id="k1-q1"' in first_card and 'id="k1-q3"' in first_card
    assert re.search(
        r'<mark class="rag-quote" id="k1-q1" tabindex="-1"><span class="rag-n">\[1\]</span> '
        r"The Commission published the proposals on 5 June 2025\.</mark> They follow a year of "
        r"talks\.",
        first_card,
    )
    assert 'href="#article=a1"' in first_card
    assert "Euro Desk" in first_card and "Jane Doe" in first_card
    assert '<time datetime="2025-06-05">5 June 2025</time>' in first_card


def test_every_marker_links_to_a_quote_id_that_exists() -> None:
    html = rendered_answer()
    targets = re.findall(r'<a class="rag-ref" href="#([^"]+)"', html)
    assert targets == ["k1-q1", "k1-q2", "k1-q3"]
    for target in targets:
        assert html.count(f'id="{target}"') == 1


def test_the_quote_appears_once_in_the_prose_and_once_highlighted() -> None:
    html = rendered_answer()
    prose = "".join(re.findall(r'<p class="rag-text">.*?</p>', html))
    marks = re.findall(r'<mark class="rag-quote"[^>]*>(.*?)</mark>', html)
    assert prose.count("The proposals were published on 5 June 2025") == 1
    assert sum("The Commission published the proposals" in m for m in marks) == 1
    assert len(marks) == 3


def test_a_relative_date_gets_the_articles_date_beside_it() -> None:
    html = rendered_answer()
    note = '<span class="rag-when"> (article of Thursday 5 June 2025)</span>'
    # In the answer's text (the date of the article its marker cites) and in the quote.
    assert html.count(f"on Tuesday{note}") == 2
    assert render.with_dates("It rained yesterday.", "") == "It rained yesterday."


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("The vote was on Tuesday.", ["Tuesday"]),
        ("She spoke on Monday night and again last week.", ["Monday night", "last week"]),
        ("Sales rose 5% last month, three days ago, yesterday.", ["last month", "three days ago"]),
        ("It opens next Friday or tomorrow", ["Friday", "tomorrow"]),
        ("In May the sun shone on the Wednesday committee", ["Wednesday"]),
        ("The March for Science; a Sunday Times report", ["Sunday"]),
    ],
)
def test_relative_dates_are_found(text: str, found: list[str]) -> None:
    matched = [m.group(0) for m in render.RELATIVE_DATE.finditer(text)]
    for expected in found:
        assert any(expected in m for m in matched), (expected, matched)
    assert not any("May" in m or "March" in m for m in matched)


def test_article_markup_is_escaped_everywhere() -> None:
    quote = 'The wall <img src="http://127.0.0.1:9/p.png"> costs <b>4m</b> <script>x()</script>.'
    cited = Citation(2, "a2", "<i>T</i>", "<u>A</u>", "2017-02-07", "javascript:x()", quote, "c", 1)
    html = render.render_answer(make_answer("q", f"{quote} [2]", [cited]), "k", {"a2": quote})
    for tag in ("<img", "<b>", "<script", "<i>", "<u>"):
        assert tag not in html
    assert "&lt;img src=&quot;http://127.0.0.1:9/p.png&quot;&gt;" in html
    assert "javascript:" not in html  # a non-http(s) URL is not linked


def test_refusal_html_lists_nearest_headlines_with_article_links() -> None:
    refused = make_answer(
        "q",
        "The articles do not say.",
        nearest=[Headline("a2", "Brussels *looks* abroad", "2017-02-07", "ABC News", "")],
    )
    html = render.render_answer(refused, "k", {})
    assert "Not in the articles" in html and "Sources" not in html
    assert "<h2" in html and "Closest articles in the archive" in html
    assert '<a class="rag-open" href="#article=a2">Brussels *looks* abroad</a>' in html


def test_draft_is_marked_unchecked_and_escaped() -> None:
    html = render.render_draft("Unverified <b>claim</b> [1]")
    assert "Draft" in html and "&lt;b&gt;claim&lt;/b&gt;" in html


# --- The article view and the archive ---------------------------------------------------------


def test_article_text_is_rebuilt_from_passages_by_offset() -> None:
    assert render.article_text(CATALOG.passages("a1")) == STRATEGY_TEXT


def test_article_view_highlights_the_cited_sentences() -> None:
    info = CATALOG.articles["a1"]
    html = render.render_article(info, STRATEGY_TEXT, [DIGITAL_STRATEGY.quote, "not in it"])
    assert html.count('<mark class="rag-quote">') == 1
    assert '<mark class="rag-quote">The Commission published the proposals' in html
    assert html.count("<p>") >= 3 and "1 cited passage highlighted" in html


def test_long_paragraphs_are_cut_to_the_quotes_context() -> None:
    filler = "Other news happened that day. " * 60
    text = filler + "The key sentence is here. " + filler
    start = text.index("The key sentence")
    low, high = render.paragraph_around(text, start, start + len("The key sentence is here."))
    assert low > 0 and high < len(text)
    assert high - low <= 2 * render.CONTEXT_CHARS + 30
    assert text[low:].startswith("Other news")  # starts at a sentence


def test_archive_stats_count_dates_and_outlets() -> None:
    html = render.render_archive_stats(list(CATALOG.articles.values()))
    assert "<strong>2</strong> articles" in html
    assert "7 February 2017 to 5 June 2025" in html
    assert "ABC News (1)" in html and "Euro Desk (1)" in html


def test_filters_are_the_apis_and_the_list_applies_them() -> None:
    articles = list(CATALOG.articles.values())
    filters = app.make_filters("2017-01-01", "2017-12-31", ["ABC News"], [], [])
    assert filters == SearchFilters(
        publishers=("ABC News",), date_from="2017-01-01", date_to="2017-12-31"
    )
    assert [a.article_id for a in app.filter_articles(articles, filters)] == ["a2"]
    assert app.describe_filters(filters) == (
        "articles from ABC News, dated 1 January 2017 to 31 December 2017"
    )
    with pytest.raises(Exception, match="date_from must be an ISO date"):
        app.make_filters("June", "", [], [], [])


def test_undated_articles_fail_a_date_bound() -> None:
    undated = ArticleInfo("u", "Undated", "", "", "", "")
    filters = app.make_filters("2000-01-01", "", [], [], [])
    assert app.filter_articles([undated], filters) == []


# --- Markdown helpers (the /respond reply) ----------------------------------------------------


def test_markdown_reply_escapes_quotes() -> None:
    answer = make_answer(
        DATE_QUESTION, "Published [1], with partners [2].", [PARTNERS, DIGITAL_STRATEGY]
    )
    rendered = app.render_answer(answer)
    assert rendered.index("**[1]**") < rendered.index("**[2]**")
    assert (
        "> **[2]** \\# Partners \\* Japan, India and \\[Canada\\](x) are named\\_first\\_"
        in rendered
    )


def test_article_markup_in_the_markdown_answer_text_is_shown_as_text() -> None:
    quote = 'The wall <img src="http://127.0.0.1:9/p.png"> costs <b>4m</b> <script>x()</script>.'
    rendered = app.render_answer(make_answer("q", f"{quote} [1]", [PARTNERS]))
    text = rendered.split("\n\n#### Sources", 1)[0]
    assert text == (
        'The wall \\<img src="http\\://127.0.0.1:9/p.png"\\> costs \\<b\\>4m\\</b\\>'
        " \\<script\\>x()\\</script\\>. [1]"
    )
    # A marker the article text dresses as a link stays escaped.
    assert app.escape_answer("[1](http://x) [2]") == "\\[1\\](http\\://x) [2]"


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
    assert escape_markdown(text) == expected


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
    assert format_date(value) == expected


def test_previous_questions_reads_every_history_shape() -> None:
    history = [
        {"role": "user", "content": "First?"},
        {"role": "assistant", "content": "An answer [1]."},
        {"role": "user", "content": [{"type": "text", "text": "Second?"}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/x"}}]},
        {"role": "user", "content": "   "},
        "Third?",
    ]
    assert app.previous_questions(history) == ["First?", "Second?", "Third?"]


def test_stopping_removes_an_unchecked_draft() -> None:
    draft = {"role": "assistant", "content": [{"type": "text", "text": render.render_draft("x")}]}
    shown, _ = app.stopped([{"role": "user", "content": "q"}, draft])
    assert "rag-draft" not in str(shown) and "Stopped" in str(shown[-1])
    final = {"role": "assistant", "content": "<div class='rag-answer' id='k'>A [1].</div>"}
    assert app.stopped([final])[0] == [final]


def test_a_quote_that_is_its_whole_paragraph_gets_the_neighbouring_ones() -> None:
    text = "First paragraph of the piece.\n\nThe quote itself.\n\nThe paragraph after it."
    start = text.index("The quote")
    low, high = render.paragraph_around(text, start, start + len("The quote itself."))
    assert text[low:high] == text
    cited = Citation(1, "x", "T", "", "2020-01-01", "", "The quote itself.", "c", 1.0)
    card = render.render_card([cited], "k", text, {})
    assert "First paragraph of the piece.<br><mark" in card
    assert "</mark><br>The paragraph after it." in card


def test_notices_say_what_was_searched_for() -> None:
    answer = make_answer(
        FOLLOW_UP, "She said so [1].", [DIGITAL_STRATEGY], notices=["Searched for: “Kallas”."]
    )
    html = render.render_answer(answer, "k", {})
    assert '<p class="rag-notice">Searched for: “Kallas”.</p>' in html
