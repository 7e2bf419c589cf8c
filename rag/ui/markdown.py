"""The chat's programmatic reply: an ``Answer`` as Markdown, for the ``/respond`` endpoint.

Programs that call the chat with gradio_client (``examples/ask_gradio_client.py``) get the
answer with its ``[n]`` markers, its notices in italics and a "Sources" section that lists each
cited article once, its quotes under it. Every article-derived string is escaped, so that it
reads exactly as quoted wherever the Markdown is shown.

What it deliberately does not do: the browser's view (``rag.ui.render`` builds that as HTML,
with paragraphs and links), or anything but formatting.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from datetime import date

from rag.schema import Answer, Citation

REFUSAL_PREFIX = "ℹ️ **Not in the articles**"
ERROR_PREFIX = "⚠️"
UNEXPECTED_ERROR_MESSAGE = "Something went wrong answering this question; the error was logged."

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


def parse_date(value: str) -> date | None:
    """The day an ISO date (``"2025-06-05"``, ``"2024-12-31T08:00:00Z"``) names, else None."""
    match = _ISO_DATE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:  # e.g. 2025-02-30: not a date
        return None


def format_date(value: str) -> str:
    """``"2025-06-05"`` -> ``"5 June 2025"``; anything that is not an ISO date is kept as is."""
    day = parse_date(value)
    if day is None:
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


def safe_url(url: str) -> str | None:
    """The URL made safe for a link target, or ``None`` when it is not http(s)."""
    url = url.strip()
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    # Percent-encode what could end or break the link target: spaces, brackets, parentheses.
    return urllib.parse.quote(url, safe=":/?#@!$&'*+,;=%~-._")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def group_by_article(citations: Sequence[Citation]) -> list[list[Citation]]:
    """The citations grouped per article, articles in the order of their first ``[n]``, each
    group in ``n`` order."""
    groups: dict[str, list[Citation]] = {}
    for citation in sorted(citations, key=lambda c: c.n):
        groups.setdefault(citation.article_id or f"#{citation.n}", []).append(citation)
    return list(groups.values())


def render_source(citations: Sequence[Citation]) -> str:
    """One cited article: ``*Title* — Author, Outlet, 5 June 2025`` (linked when it has an
    http(s) URL), then each of its quotes as a blockquote line led by its ``**[n]**``."""
    first = citations[0]
    title = escape_markdown(_one_line(first.title)) or "Untitled article"
    heading = f"*{title}*"
    url = safe_url(first.url) if first.url else None
    if url is not None:
        heading = f"[{heading}]({url})"
    byline = ", ".join(
        escape_markdown(_one_line(part))
        for part in (first.author, first.publisher, format_date(first.date))
        if part.strip()
    )
    numbers = " ".join(f"**[{c.n}]**" for c in citations)
    lines = [f"{numbers} {heading}" + (f" — {byline}" if byline else "")]
    for citation in citations:
        quote = _one_line(citation.quote)
        if not quote:
            continue
        if citation.kind == "metadata":
            quote = "(the article's byline, date and outlet)"
            lines.extend(["", f"> **[{citation.n}]** {quote}"])
        else:
            lines.extend(["", f"> **[{citation.n}]** {escape_markdown(quote)}"])
    return "\n".join(lines)


def render_notices(notices: Sequence[str]) -> str:
    """Each notice (what was searched for, sentences were removed) as an italic line."""
    return "\n\n".join(f"*{escape_markdown(_one_line(n))}*" for n in notices if n.strip())


def render_nearest(answer: Answer) -> str:
    """The closest articles the archive holds, listed under a refusal (escaped)."""
    if not answer.nearest:
        return ""
    lines = ["Closest articles in the archive:"]
    for headline in answer.nearest:
        title = escape_markdown(_one_line(headline.title)) or "Untitled article"
        details = ", ".join(
            escape_markdown(part)
            for part in (headline.publisher, format_date(headline.date))
            if part.strip()
        )
        lines.append(f"- *{title}*" + (f" ({details})" if details else ""))
    return "\n".join(lines)


def render_answer(answer: Answer) -> str:
    """The reply for ``answer`` as Markdown.

    A refusal shows the assistant's own text under a distinct prefix, then the nearest
    headlines, and no sources. The answer text is escaped like everything else: its quotes are
    article text, which may hold markup (``<img src=...>`` would make every reader's browser
    fetch that address), and every string shown must read exactly as quoted. Its ``[n]``
    markers read the same escaped. Notices follow the text as italic lines.
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
    sources = "\n\n".join(render_source(group) for group in group_by_article(answer.citations))
    return f"{text}\n\n#### Sources\n\n{sources}"


def render_error(message: str) -> str:
    """A one-line error reply: the first line of ``message``, marked as a warning."""
    first_line = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return f"{ERROR_PREFIX} {first_line or UNEXPECTED_ERROR_MESSAGE}"
