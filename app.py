"""The Gradio chat UI: a thin shell over an answering object it is handed.

``build_app(assistant)`` returns a ``gr.Blocks`` whose chat function, ``respond`` (API endpoint
``/respond``), streams the assistant's answer text as it is produced and then replaces it with
the final, verified answer rendered as Markdown: the answer with its ``[n]`` markers, its
notices in italics, and a "Sources" section quoting each cited article.
``launch(app, host, port)`` serves it on the given address with analytics, share links and
other outside look-ups off.

What it deliberately does not do: retrieve, rank, validate or answer anything itself (the
assistant does; a test can hand it a fake), read settings or the environment, or build the
assistant (``rag serve`` in ``rag/cli.py`` wires settings -> assistant -> ``build_app``).
User errors (``RagError``) become a one-line chat reply; anything else is logged and answered
with a generic message, so the app stays up.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

import gradio as gr

from rag.errors import RagError
from rag.schema import Answer, AnswerDelta, AnswerEvent, Citation

logger = logging.getLogger(__name__)

DEFAULT_TITLE = "Ask the news articles"

DEFAULT_EXAMPLES: tuple[str, ...] = (
    "On what date were the International Digital Strategy proposals published?",
    "Which countries does Brussels want to reinforce relationships with?",
    "What did Kaja Kallas say?",
    "Why does the author argue against a 'Europe first' approach?",
)

DESCRIPTION = (
    "Answers come only from the indexed news articles. Every claim carries a numbered "
    "citation such as [1] that points to a quoted passage under **Sources**; when the "
    "articles do not hold the answer, the assistant says so instead of guessing."
)

REFUSAL_PREFIX = "ℹ️ **Not in the articles**"
ERROR_PREFIX = "⚠️"
UNEXPECTED_ERROR_MESSAGE = "Something went wrong answering this question; the error was logged."


class Answering(Protocol):
    """What the UI needs from the core: a length limit and a streaming answer."""

    @property
    def max_question_chars(self) -> int: ...

    def stream(self, question: str, history: Sequence[str] = ()) -> Iterator[AnswerEvent]:
        """Yield zero or more ``AnswerDelta`` then exactly one ``Answer``.

        Raises ``QuestionError`` for an empty or over-long question; other ``RagError``s are
        possible (no index yet, a provider failed).
        """
        ...


# --- Rendering --------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.+\-Z]*)?")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# Inline Markdown (and HTML) syntax that article text must not trigger anywhere in a line.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|www)([:.])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d{1,3})\\\](?![(\[:])")
# Block syntax that only matters at the start of a line: lists, headings' cousins, rules.
_LINE_START_SPECIAL = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")


def format_date(value: str) -> str:
    """``"2025-06-05"`` -> ``"5 June 2025"``; anything that is not an ISO date is kept as is."""
    match = _ISO_DATE.fullmatch(value.strip())
    if match is None:
        return value
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:  # e.g. 2025-02-30: not a date, so not ours to reformat
        return value
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def escape_markdown(text: str) -> str:
    """Escape ``text`` so that it renders literally in Markdown, one line at a time.

    Backslash escapes are used (CommonMark allows one before any ASCII punctuation), so the
    rendered text reads exactly like the article. Line-start syntax (``- item``, ``1. item``,
    ``+``, ``=``) is escaped too, so a quoted line cannot turn into a list or a heading rule.
    """
    escaped = _INLINE_SPECIAL.sub(r"\\\1", text)
    # GFM turns a bare "http://..." or "www...." into a link (and then shows the escapes
    # inside it as typed); an escaped ":" or "." keeps it text.
    escaped = _AUTOLINK.sub(r"\1\\\2", escaped)
    lines = []
    for line in escaped.split("\n"):
        match = _LINE_START_SPECIAL.match(line)
        if match is not None:
            marker = match[2]
            if marker.isdigit():  # "1." -> "1\." (the dot/paren is what makes the list)
                cut = match.end()
                line = line[:cut] + "\\" + line[cut:]
            else:
                line = line[: match.start(2)] + "\\" + line[match.start(2) :]
        lines.append(line)
    return "\n".join(lines)


def escape_answer(text: str) -> str:
    """An answer's text escaped like article text (``escape_markdown``), with its own ``[n]``
    citation markers left readable as they are: a marker followed by ``(``, ``[`` or ``:``
    stays escaped, since unescaped it could become a link or a link definition."""
    return _ESCAPED_MARKER.sub(r"[\1]", escape_markdown(text))


def _safe_url(url: str) -> str | None:
    """The URL made safe for a Markdown link target, or ``None`` when it is not http(s)."""
    url = url.strip()
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    # Percent-encode what could end or break the link target: spaces, brackets, parentheses.
    return urllib.parse.quote(url, safe=":/?#@!$&'*+,;=%~-._")


def render_citation(citation: Citation) -> str:
    """One source: ``**[n]** *Title* — Author, 5 June 2025`` then the quote as a blockquote."""
    title = escape_markdown(" ".join(citation.title.split())) or "Untitled article"
    heading = f"*{title}*"
    url = _safe_url(citation.url) if citation.url else None
    if url is not None:
        heading = f"[{heading}]({url})"
    byline = ", ".join(
        escape_markdown(" ".join(part.split()))
        for part in (citation.author, format_date(citation.date))
        if part.strip()
    )
    lines = [f"**[{citation.n}]** {heading}" + (f" — {byline}" if byline else "")]
    quote = citation.quote.strip()
    if quote:
        lines.append("")
        lines.extend(
            f"> {escape_markdown(line.strip())}" if line.strip() else ">"
            for line in quote.splitlines()
        )
    return "\n".join(lines)


def render_notices(notices: Sequence[str]) -> str:
    """Each notice (the language model was unreachable, sentences were removed) as an italic
    line, escaped."""
    return "\n\n".join(f"*{escape_markdown(' '.join(n.split()))}*" for n in notices if n.strip())


def render_nearest(answer: Answer) -> str:
    """The closest articles the archive holds, listed under a refusal (escaped)."""
    if not answer.nearest:
        return ""
    lines = ["Closest articles in the archive:"]
    for headline in answer.nearest:
        title = escape_markdown(" ".join(headline.title.split())) or "Untitled article"
        details = ", ".join(
            escape_markdown(part)
            for part in (headline.publisher, format_date(headline.date))
            if part.strip()
        )
        lines.append(f"- *{title}*" + (f" ({details})" if details else ""))
    return "\n".join(lines)


def render_answer(answer: Answer) -> str:
    """The final chat message for ``answer``, as Markdown.

    A refusal shows the assistant's own text under a distinct prefix and no sources. The
    answer text is escaped like everything else: its quotes are article text, which may hold
    markup (``<img src=...>`` would make every reader's browser fetch that address), and
    every string shown must read exactly as quoted. Its ``[n]`` markers read the same
    escaped. Notices follow the text as italic lines.
    """
    text = escape_answer(answer.answer.strip())
    notes = render_notices(answer.notices)
    if notes:
        text = f"{text}\n\n{notes}"
    if answer.refused:
        nearest = render_nearest(answer)
        return f"{REFUSAL_PREFIX}\n\n{text}" + (f"\n\n{nearest}" if nearest else "")
    if not answer.citations:
        return text
    sources = "\n\n".join(render_citation(c) for c in sorted(answer.citations, key=lambda c: c.n))
    return f"{text}\n\n#### Sources\n\n{sources}"


def render_error(message: str) -> str:
    """A one-line error reply: the first line of ``message``, marked as a warning."""
    first_line = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return f"{ERROR_PREFIX} {first_line or UNEXPECTED_ERROR_MESSAGE}"


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
    """The user's earlier questions in a Gradio chat history, oldest first, as plain strings."""
    questions = []
    for message in history:
        if isinstance(message, Mapping):
            role, content = message.get("role"), message.get("content")
        else:  # a gr.ChatMessage or similar object
            role, content = getattr(message, "role", None), getattr(message, "content", None)
        if role == "user":
            text = message_text(content).strip()
            if text:
                questions.append(text)
    return questions


# --- The app ----------------------------------------------------------------------------------


def build_app(
    assistant: Answering,
    *,
    examples: Sequence[str] = DEFAULT_EXAMPLES,
    title: str = DEFAULT_TITLE,
) -> gr.Blocks:
    """Build the chat UI around ``assistant``; nothing runs until the app is launched.

    Examples are not cached (that would run the assistant at build time); clicking one asks it.
    """

    def respond(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        """Answer a question about the articles, with numbered citations and quoted sources."""
        question = message_text(message)
        streamed = ""
        try:
            for event in assistant.stream(question, previous_questions(history)):
                if isinstance(event, AnswerDelta):
                    streamed += event.text
                    yield escape_answer(streamed)  # quotes and model text: never markup
                elif isinstance(event, Answer):
                    yield render_answer(event)
                    return
            logger.error("The assistant's stream ended without an answer for %r", question)
            yield render_error(UNEXPECTED_ERROR_MESSAGE)
        except RagError as error:
            yield render_error(str(error))
        except Exception:
            logger.exception("Answering %r failed", question)
            yield render_error(UNEXPECTED_ERROR_MESSAGE)

    limit = assistant.max_question_chars
    return gr.ChatInterface(
        respond,
        api_name="respond",
        api_description="Ask a question; returns the answer as Markdown with a Sources section.",
        chatbot=gr.Chatbot(
            label="Answers",
            scale=1,
            # News text is full of "$": no LaTeX, so prices are never typeset as maths.
            latex_delimiters=[],
            sanitize_html=True,
            buttons=["copy"],
        ),
        # No max_length: the browser would cut a long question silently; the assistant
        # rejects it with a message saying why instead.
        textbox=gr.Textbox(
            placeholder=f"Ask a question about the articles (up to {limit} characters)",
            show_label=False,
            scale=7,
            autofocus=True,
            submit_btn=True,
            stop_btn=True,
        ),
        examples=list(examples) or None,
        cache_examples=False,
        run_examples_on_click=True,
        title=title,
        description=DESCRIPTION,
        flagging_mode="never",
        analytics_enabled=False,
    )


def launch(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    block: bool = True,
) -> str:
    """Serve ``app`` on ``host:port`` and return its local URL.

    No share link, no analytics or version check, no MCP server, no server-side rendering (it
    needs a newer Node), no run history. With ``block=False`` it returns at once and the
    caller stops the server with ``app.close()``; otherwise it serves until interrupted.
    """
    app.analytics_enabled = False  # also for a Blocks built elsewhere
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=not block,
        quiet=not block,
        show_error=False,
        footer_links=["api", "settings"],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
    )
    return str(local_url)
