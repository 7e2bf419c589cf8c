"""The Gradio chat UI: a thin shell over an answering object it is handed.

``build_app(assistant)`` returns a ``gr.Blocks`` with three tabs:

- **Chat**: a question box and the answers. An answer streams in as a draft, then the final,
  verified answer replaces it: its text with each ``[n]`` linking to its quote, its notices
  (what was searched for, a corrected name), then one card per cited article holding its
  quotes in their paragraphs, or, on a refusal, the nearest headlines. "Copy answer" copies it
  as plain text with its citations.
- **Archive**: what the archive holds (article count, date range, outlets), filters applied to
  every question (date range, outlet, author, article: the API's ``filters``), and a
  searchable list of its articles.
- **Article**: one article's full text with the cited sentences highlighted, opened from any
  source card, headline on a refusal or archive list.

Programs get ``/respond`` (``message`` in, the answer as Markdown out, the conversation's
earlier questions kept per client session), as gradio_client's ``Client.predict(question,
api_name="/respond")``. ``launch(app, host, port)`` serves the app on its own, with analytics,
share links and other outside look-ups off; ``rag serve`` mounts it in the API instead.

What it deliberately does not do: retrieve, rank, validate or answer anything itself (the
assistant does; a test can hand it a fake), read settings or the environment, or build the
assistant (``rag serve`` in ``rag/cli.py`` wires settings -> assistant -> ``build_app``).
User errors (``RagError``) become a one-line reply; anything else is logged and answered with
a generic message, so the app stays up.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import gradio as gr

from rag.errors import RagError
from rag.retrieve import SearchFilters
from rag.schema import Answer, AnswerDelta, AnswerEvent
from rag.ui import render
from rag.ui.assets import ARTICLE_JS, CSS, JS, OPENER_JS
from rag.ui.markdown import (
    ERROR_PREFIX,
    REFUSAL_PREFIX,
    UNEXPECTED_ERROR_MESSAGE,
    escape_answer,
    escape_markdown,
    format_date,
    parse_date,
    render_answer,
    render_error,
)

if TYPE_CHECKING:
    from rag.catalog import ArticleInfo, Catalog

__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_TITLE",
    "ERROR_PREFIX",
    "REFUSAL_PREFIX",
    "UNEXPECTED_ERROR_MESSAGE",
    "Answering",
    "build_app",
    "escape_answer",
    "escape_markdown",
    "format_date",
    "launch",
    "render_answer",
    "render_error",
]

logger = logging.getLogger(__name__)

DEFAULT_TITLE = "Ask the news articles"

DEFAULT_EXAMPLES: tuple[str, ...] = (
    "On what date were the International Digital Strategy proposals published?",
    "Which countries does Brussels want to reinforce relationships with?",
    "What did Kaja Kallas say?",
    "Why does the author argue against a 'Europe first' approach?",
)

DESCRIPTION = (
    "Answers quote the indexed articles only, each claim with a numbered source; when the "
    "articles do not hold the answer, the assistant says so."
)
# Where the API's documentation is, from the chat's page (/chat/ under rag serve).
API_DOCS_URL = "../docs"


class Answering(Protocol):
    """What the UI needs from the core: a length limit, a streaming answer, the catalogue."""

    @property
    def max_question_chars(self) -> int: ...

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        filters: SearchFilters | None = None,
    ) -> Iterator[AnswerEvent]:
        """Yield zero or more ``AnswerDelta`` then exactly one ``Answer``.

        Raises ``QuestionError`` for an empty or over-long question; other ``RagError``s are
        possible (no index yet, a provider failed, bad filters).
        """
        ...

    def catalog(self) -> Catalog:
        """The archive's articles (``articles``) and their passages (``passages(id)``)."""
        ...


# --- Chat history -----------------------------------------------------------------------------


def message_text(content: Any) -> str:
    """The text of a chat message ``content``: a string, or a list of parts (text parts kept)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, Sequence):
        return " ".join(t for t in (message_text(part) for part in content) if t)
    return ""


def previous_questions(history: Sequence[Any]) -> list[str]:
    """The user's earlier questions in a chat history, oldest first, as plain strings: Gradio
    messages (dicts or message objects) with role "user", or plain strings."""
    questions = []
    for message in history or ():
        role: Any
        content: Any
        if isinstance(message, str):
            role, content = "user", message
        elif isinstance(message, Mapping):
            role, content = message.get("role"), message.get("content")
        else:  # a gr.ChatMessage or similar object
            role, content = getattr(message, "role", None), getattr(message, "content", None)
        if role == "user":
            text = message_text(content).strip()
            if text:
                questions.append(text)
    return questions


# --- Filters ----------------------------------------------------------------------------------


def make_filters(
    date_from: str | None,
    date_to: str | None,
    outlets: Sequence[str] | None,
    authors: Sequence[str] | None,
    article_ids: Sequence[str] | None,
) -> SearchFilters:
    """The archive panel's choices as the API's filters; a bad date raises ``RagError``."""
    return SearchFilters(
        article_ids=tuple(article_ids or ()),
        authors=tuple(authors or ()),
        publishers=tuple(outlets or ()),
        date_from=(date_from or "").strip(),
        date_to=(date_to or "").strip(),
    )


def describe_filters(filters: SearchFilters) -> str:
    """``filters`` in words ("articles from ABC News, dated from 1 February 2017"), or ""."""
    if filters.empty:
        return ""
    n = len(filters.article_ids)
    subject = f"{n} chosen article{'s' if n != 1 else ''}" if n else "articles"
    parts = []
    if filters.publishers:
        parts.append("from " + " or ".join(filters.publishers))
    if filters.authors:
        parts.append("by " + " or ".join(filters.authors))
    if filters.date_from and filters.date_to:
        parts.append(f"dated {format_date(filters.date_from)} to {format_date(filters.date_to)}")
    elif filters.date_from:
        parts.append(f"dated from {format_date(filters.date_from)}")
    elif filters.date_to:
        parts.append(f"dated up to {format_date(filters.date_to)}")
    return f"{subject} {', '.join(parts)}".strip()


def filter_articles(articles: Sequence[ArticleInfo], filters: SearchFilters) -> list[ArticleInfo]:
    """The articles ``filters`` lets through, as retrieval applies them (undated articles
    fail a date bound)."""
    kept = []
    for a in articles:
        if filters.article_ids and a.article_id not in filters.article_ids:
            continue
        if filters.authors and a.author not in filters.authors:
            continue
        if filters.publishers and a.publisher not in filters.publishers:
            continue
        day = a.date[:10]
        if filters.date_from and not (parse_date(day) and day >= filters.date_from):
            continue
        if filters.date_to and not (parse_date(day) and day <= filters.date_to):
            continue
        kept.append(a)
    return kept


# --- The app ----------------------------------------------------------------------------------


def _articles(assistant: Answering) -> list[ArticleInfo]:
    """The archive's articles, newest first (undated last); none when there is no index."""
    try:
        catalog = assistant.catalog()
    except RagError:
        return []
    return sorted(catalog.articles.values(), key=lambda a: (a.date or "", a.title), reverse=True)


def _article_texts(assistant: Answering, answer: Answer) -> dict[str, str]:
    """The full text of each article ``answer`` cites, by id (empty when it cannot be read)."""
    ids = {c.article_id for c in answer.citations}
    if not ids:
        return {}
    try:
        catalog = assistant.catalog()
    except RagError:
        return {}
    return {aid: render.article_text(catalog.passages(aid)) for aid in ids}


def build_app(
    assistant: Answering,
    *,
    examples: Sequence[str] = DEFAULT_EXAMPLES,
    title: str = DEFAULT_TITLE,
    api_docs_url: str | None = API_DOCS_URL,
    answer_concurrency: int | None = 1,
) -> gr.Blocks:
    """Build the chat UI around ``assistant``; nothing runs until the app is launched.

    The catalogue is read when a page loads (not at build time), so the archive panel shows
    the index as it is then. ``api_docs_url`` is where "API" in the footer leads (the ``/v1``
    documentation); None leaves the link out. ``answer_concurrency`` is how many answers
    Gradio's own queue runs at once; None when ``assistant`` admits answers itself (``rag
    serve`` hands it one held to the API's question admission, which then sheds a chat turn
    beyond capacity with a one-line "try again" message).
    """

    def respond(message: str, history: list[Any] | None) -> Iterator[tuple[str, list[Any]]]:
        """Answer a question about the articles; returns the answer as Markdown, with
        numbered citations and a Sources section quoting each cited article."""
        question = message_text(message)
        earlier = list(history or [])
        streamed = ""
        try:
            for event in assistant.stream(question, previous_questions(earlier)):
                if isinstance(event, AnswerDelta):
                    streamed += event.text
                    yield escape_answer(streamed), earlier  # never markup
                elif isinstance(event, Answer):
                    reply = render_answer(event)
                    turn = [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": reply},
                    ]
                    yield reply, [*earlier, *turn]
                    return
            logger.error("The assistant's stream ended without an answer for %r", question)
            yield render_error(UNEXPECTED_ERROR_MESSAGE), earlier
        except RagError as error:
            yield render_error(str(error)), earlier
        except Exception:
            logger.exception("Answering %r failed", question)
            yield render_error(UNEXPECTED_ERROR_MESSAGE), earlier

    def chat(
        question: str,
        messages: list[dict[str, Any]] | None,
        asked: list[str] | None,
        date_from: str | None,
        date_to: str | None,
        outlets: list[str] | None,
        authors: list[str] | None,
        article_ids: list[str] | None,
    ) -> Iterator[tuple[Any, ...]]:
        """The browser's chat: the question, then the streamed draft, then the answer."""
        question = message_text(question)
        earlier = list(asked or [])
        shown = [
            *(messages or []),
            {"role": "user", "content": f'<div class="rag-question">{render.esc(question)}</div>'},
        ]
        # The box is emptied once, when asked: later updates leave what the reader types.
        asking = gr.update(value="", submit_btn=False, stop_btn="Stop")
        busy = gr.update()
        idle = gr.update(submit_btn="Ask", stop_btn=False)

        def reply(html: str) -> list[dict[str, Any]]:
            return [*shown, {"role": "assistant", "content": html}]

        yield reply(render.render_draft("…")), asking, earlier
        try:
            filters = make_filters(date_from, date_to, outlets, authors, article_ids)
            streamed = ""
            for event in assistant.stream(question, earlier, None if filters.empty else filters):
                if isinstance(event, AnswerDelta):
                    streamed += event.text
                    yield reply(render.render_draft(streamed)), busy, earlier
                elif isinstance(event, Answer):
                    key = "a" + uuid.uuid4().hex[:10]
                    html = render.render_answer(event, key, _article_texts(assistant, event))
                    yield reply(html), idle, [*earlier, question.strip()]
                    return
            logger.error("The assistant's stream ended without an answer for %r", question)
            yield reply(render.render_error_html(UNEXPECTED_ERROR_MESSAGE)), idle, earlier
        except RagError as error:
            message = render_error(str(error)).removeprefix(ERROR_PREFIX).strip()
            yield reply(render.render_error_html(message)), idle, earlier
        except Exception:
            logger.exception("Answering %r failed", question)
            yield reply(render.render_error_html(UNEXPECTED_ERROR_MESSAGE)), idle, earlier

    def load_archive() -> tuple[Any, ...]:
        articles = _articles(assistant)
        outlets = sorted({a.publisher for a in articles if a.publisher})
        authors = sorted({a.author for a in articles if a.author})
        choices = [
            (
                " — ".join(
                    p
                    for p in (a.title or "Untitled article", format_date(a.date), a.publisher)
                    if p
                ),
                a.article_id,
            )
            for a in articles
        ]
        return (
            render.render_archive_stats(articles),
            gr.update(choices=outlets),
            gr.update(choices=authors),
            gr.update(choices=choices),
            render.render_article_list(articles, len(articles)),
        )

    def update_filters(
        date_from: str | None,
        date_to: str | None,
        outlets: list[str] | None,
        authors: list[str] | None,
        article_ids: list[str] | None,
        search: str | None,
    ) -> tuple[Any, str]:
        """The note above the chat and the archive list, for the filters as they are now."""
        try:
            filters = make_filters(date_from, date_to, outlets, authors, article_ids)
        except RagError as error:
            note = f'<p class="rag-filters-note" role="alert">⚠️ {render.esc(str(error))}</p>'
            return gr.update(value=note, visible=True), ""
        articles = _articles(assistant)
        words = (search or "").lower().split()
        kept = [a for a in filter_articles(articles, filters) if render.matches(a, words)]
        note = render.render_filters_note(describe_filters(filters))
        listed = render.render_article_list(kept, len(articles), search or "")
        return gr.update(value=note, visible=bool(note)), listed

    def open_article(request: str | None) -> tuple[str, Any]:
        """The article view for ``{"article_id", "quotes"}`` sent by the page's script."""
        try:
            asked = json.loads(request or "{}")
            article_id = str(asked.get("article_id", ""))
            quotes = [str(q) for q in asked.get("quotes", [])][:50]
        except (ValueError, AttributeError):
            return render.render_no_article(), gr.update()
        try:
            catalog = assistant.catalog()
        except RagError as error:
            return render.render_error_html(str(error)), gr.Tabs(selected="article")
        info = catalog.articles.get(article_id)
        if info is None:
            return render.render_no_article(), gr.Tabs(selected="article")
        text = render.article_text(catalog.passages(article_id))
        return render.render_article(info, text, quotes), gr.Tabs(selected="article")

    footer_links = (
        f'<a href="{render.esc(api_docs_url)}">API documentation (/v1)</a> · '
        if api_docs_url
        else ""
    )
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.HTML(
            f"{CSS}<h1>{render.esc(title)}</h1><p>{render.esc(DESCRIPTION)}</p>",
            elem_id="rag-header",
            js_on_load=JS,
        )
        opener = gr.HTML(
            "", html_template="<span></span>", js_on_load=OPENER_JS, elem_id="rag-glue"
        )
        with gr.Tabs(selected="chat") as tabs:
            with gr.Tab("Chat", id="chat"):
                filters_note = gr.HTML("", elem_id="rag-filters-note", visible=False)
                chatbot = gr.Chatbot(
                    label="Answers",
                    show_label=False,
                    elem_id="rag-chatbot",
                    height="70vh",
                    autoscroll=False,
                    # News text is full of "$": no LaTeX, so prices are never typeset as maths.
                    latex_delimiters=[],
                    sanitize_html=True,
                    buttons=[],
                    feedback_options=None,
                    layout="panel",
                    examples=[{"text": e} for e in examples] or None,
                    placeholder="Ask about the archive; try one of these questions:",
                )
                question = gr.Textbox(
                    label="Question",
                    show_label=False,
                    placeholder="Ask about the articles",
                    lines=1,
                    max_lines=5,
                    autofocus=True,
                    elem_id="rag-question",
                    submit_btn="Ask",
                    stop_btn="Stop",
                    # No max_length: the browser would cut a long question silently; the
                    # assistant rejects it with a message saying why instead.
                )
            with gr.Tab("Archive", id="archive"), gr.Row():
                with gr.Column(scale=2, min_width=300):
                    stats = gr.HTML(render.render_archive_stats([]))
                    gr.HTML(
                        "<h2>Filters for the answers</h2><p>Every question asked in the chat "
                        "searches only the articles these let through.</p>"
                    )
                    with gr.Row():
                        date_from = gr.Textbox(
                            label="From date (YYYY-MM-DD)", max_lines=1, min_width=140
                        )
                        date_to = gr.Textbox(
                            label="To date (YYYY-MM-DD)", max_lines=1, min_width=140
                        )
                    outlets = gr.Dropdown(label="Outlets", choices=[], multiselect=True)
                    authors = gr.Dropdown(label="Authors", choices=[], multiselect=True)
                    articles = gr.Dropdown(label="Articles", choices=[], multiselect=True)
                    clear = gr.Button("Clear filters", variant="secondary")
                with gr.Column(scale=3, min_width=300):
                    gr.HTML('<h2 class="rag-list-title">Articles</h2>')
                    search = gr.Textbox(
                        label="Search the archive's headlines, outlets and authors", max_lines=1
                    )
                    listing = gr.HTML("")
            with gr.Tab("Article", id="article"):
                article_view = gr.HTML(render.render_no_article(), js_on_load=ARTICLE_JS)
                back = gr.Button("Back to the chat", variant="secondary")
        gr.HTML(
            f'<footer class="rag-footer">{footer_links}Answers quote the archive: check each '
            "source before you use it.</footer>"
        )
        asked = gr.State([])

        # The program endpoint: /respond, its conversation held per client session.
        api_message = gr.Textbox(visible=False, label="message")
        api_reply = gr.Markdown(visible=False)
        api_history = gr.State([])
        gr.Button(visible=False).click(
            respond,
            [api_message, api_history],
            [api_reply, api_history],
            api_name="respond",
            concurrency_limit=answer_concurrency,
            api_description="Ask a question; returns the answer as Markdown with a Sources "
            "section. Earlier questions of the same client session are its history.",
        )

        filter_inputs = [date_from, date_to, outlets, authors, articles]
        chat_io: dict[str, Any] = {
            "fn": chat,
            "inputs": [question, chatbot, asked, *filter_inputs],
            "outputs": [chatbot, question, asked],
            "api_visibility": "undocumented",
            "concurrency_limit": answer_concurrency,
        }
        submitted = [question.submit(**chat_io)]
        picked = chatbot.example_select(
            _example_text, None, question, api_visibility="undocumented"
        ).then(**chat_io)
        question.stop(
            stopped,
            [chatbot],
            [chatbot, question],
            cancels=[*submitted, picked],
            api_visibility="undocumented",
        )
        chatbot.clear(lambda: [], None, asked, api_visibility="undocumented")
        app.load(
            load_archive,
            None,
            [stats, outlets, authors, articles, listing],
            api_visibility="undocumented",
        )
        changing: list[Any] = [*filter_inputs, search]
        for component in changing:
            component.change(
                update_filters,
                [*filter_inputs, search],
                [filters_note, listing],
                api_visibility="undocumented",
            )
        clear.click(
            lambda: ("", "", [], [], []),
            None,
            filter_inputs,
            api_visibility="undocumented",
        )
        opener.click(open_article, [opener], [article_view, tabs], api_visibility="undocumented")
        back.click(lambda: gr.Tabs(selected="chat"), None, tabs, api_visibility="undocumented")
    return app  # type: ignore[no-any-return]


def stopped(messages: list[Any] | None) -> tuple[list[Any], Any]:
    """After Stop: a draft left on screen is unchecked text, so it is replaced by a note."""
    shown = list(messages or [])
    last = shown[-1] if shown else None
    if (
        isinstance(last, Mapping)
        and last.get("role") == "assistant"
        and "rag-draft" in message_text(last.get("content"))
    ):
        shown[-1] = {"role": "assistant", "content": render.render_stopped()}
    return shown, gr.update(submit_btn="Ask", stop_btn=False)


def _example_text(selected: gr.SelectData) -> str:
    value = selected.value
    return str(value.get("text", "")) if isinstance(value, Mapping) else str(value)


def launch(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    block: bool = True,
) -> str:
    """Serve ``app`` on ``host:port`` and return its local URL.

    No share link, no analytics or version check, no MCP server, no server-side rendering (it
    needs a newer Node), no run history, and no Gradio footer links (the app has its own). With
    ``block=False`` it returns at once and the caller stops the server with ``app.close()``;
    otherwise it serves until interrupted.
    """
    app.analytics_enabled = False  # also for a Blocks built elsewhere
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=not block,
        quiet=not block,
        show_error=False,
        footer_links=[],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
    )
    return str(local_url)
