"""What the browser shows: answers with source cards, the article view and the archive, as HTML.

An answer is its text, each ``[n]`` a link to its quote, then one card per cited article
(headline, outlet, author, date, a link to the original and one to read it in the app) holding
that article's quotes, each inside its paragraph with the quoted words highlighted. A relative
date in a quote ("on Tuesday", "last month") gets the article's date beside it. The article
view is the whole text with the cited sentences highlighted; the archive panel says what the
archive holds and lists its articles.

Every article-derived string goes through ``html.escape`` and nothing else: the browser shows it
exactly as quoted, and markup in an article (``<img src=...>``) stays text and fetches nothing.
Chat messages are rendered by Gradio as Markdown; what is built here has no blank line and
starts with ``<div``, so it is one raw HTML block and no Markdown syntax inside it applies.

What it deliberately does not do: choose, rank or check anything (the assistant does), read the
store (it is handed article text), or lay out the page (``app.py``).
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.catalog import ArticleInfo
from rag.chunk import reassemble
from rag.schema import Answer, Citation, Passage
from rag.ui.markdown import format_date, group_by_article, parse_date, safe_url

# Longest paragraph shown whole around a quote; longer ones are cut to this much context.
MAX_PARAGRAPH_CHARS = 900
CONTEXT_CHARS = 280
# A paragraph with fewer characters than this besides its quote gets its neighbours as context.
MIN_CONTEXT_CHARS = 60
LISTED_ARTICLES = 50

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBER = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|a few|several|\d{1,3})"
_PERIOD = r"(?:week|weekend|month|year|summer|winter|spring|autumn|fall|quarter|season)"
# Words whose day depends on when the article was written. Weekdays only capitalised, so
# "may" or "sun" never match; the rest either case.
RELATIVE_DATE = re.compile(
    r"\b(?:" + "|".join(_WEEKDAYS) + r")(?:\s+(?:morning|afternoon|evening|night))?\b"
    r"|(?i:\b(?:yesterday|today|tonight|tomorrow|this\s+(?:morning|afternoon|evening)"
    r"|(?:last|this|next|past|coming|earlier\s+this|later\s+this)\s+" + _PERIOD + r"s?"
    r"|" + _NUMBER + r"\s+(?:days?|weeks?|months?|years?)\s+(?:ago|earlier|later)"
    r"|(?:last|next)\s+(?:night|" + "|".join(w.lower() for w in _WEEKDAYS) + r"))\b)"
)
_MARKER_GROUP = re.compile(r"((?:\s*\[\d{1,3}\])+)")
_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+")


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def long_date(value: str) -> str:
    """``"2025-06-05"`` -> ``"Thursday 5 June 2025"``; other values as ``format_date``."""
    day = parse_date(value)
    return f"{_WEEKDAYS[day.weekday()]} {format_date(value)}" if day else format_date(value)


def article_href(article_id: str) -> str:
    """The in-app address of an article: the page's script opens it in the article view."""
    return "#article=" + urllib.parse.quote(article_id, safe="")


def with_dates(text: str, article_date: str) -> str:
    """``text`` escaped, each relative date in it followed by the article's date, e.g.
    ``on Tuesday`` -> ``on Tuesday (article of Thursday 5 June 2025)``."""
    if not article_date.strip():
        return esc(text)
    note = f'<span class="rag-when"> (article of {esc(long_date(article_date))})</span>'
    parts: list[str] = []
    position = 0
    for match in RELATIVE_DATE.finditer(text):
        parts.append(esc(text[position : match.end()]))
        parts.append(note)
        position = match.end()
    parts.append(esc(text[position:]))
    return "".join(parts)


def _paragraphs_html(text: str) -> str:
    """Escaped text with its paragraph breaks as ``</p><p>`` and line breaks as ``<br>``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(esc(line) for line in p.strip().split("\n")) + "</p>"
        for p in paragraphs
    )


# --- article text -----------------------------------------------------------------------------


def article_text(passages: Sequence[Passage]) -> str:
    """An article's text rebuilt from its passages (``rag.chunk.reassemble``)."""
    return reassemble((p.start, p.end, p.text) for p in passages)


def find_quote(text: str, quote: str, near: int = 0) -> tuple[int, int] | None:
    """Where ``quote`` is in ``text`` (its first occurrence from ``near``, else anywhere), with
    runs of whitespace matching any whitespace; None when it is not there."""
    quote = quote.strip()
    if not quote:
        return None
    for start_at in (max(0, near), 0):
        found = text.find(quote, start_at)
        if found >= 0:
            return found, found + len(quote)
    pattern = r"\s+".join(re.escape(word) for word in quote.split())
    match = re.compile(pattern).search(text)
    return (match.start(), match.end()) if match else None


def _clip_low(text: str, floor: int, start: int) -> int:
    """Where context before ``start`` begins: at most ``CONTEXT_CHARS`` back, not before
    ``floor``, at a sentence start (else a word start)."""
    low = max(floor, start - CONTEXT_CHARS)
    if low > floor:
        ends = [m.end() for m in _SENTENCE_END.finditer(text, low, start)]
        if ends:
            return ends[0]
        space = text.find(" ", low, start)
        return space + 1 if space >= 0 else low
    return low


def _clip_high(text: str, end: int, ceiling: int) -> int:
    """Where context after ``end`` stops: at most ``CONTEXT_CHARS`` on, not past ``ceiling``,
    at a sentence end (else a word end)."""
    high = min(ceiling, end + CONTEXT_CHARS)
    if high < ceiling:
        ends = [m.end() for m in _SENTENCE_END.finditer(text, end, high)]
        if ends:
            return ends[-1]
        space = text.rfind(" ", end, high)
        return space if space > end else high
    return high


def paragraph_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The paragraph (line) holding ``text[start:end]``, cut to some sentences of context on
    each side when it is long (a news CSV often has the whole article on one line). When the
    paragraph is little more than the quote, the paragraphs before and after it (cut the same
    way) are the context instead, so that a reader sees what surrounds the quote."""
    para_start = text.rfind("\n", 0, start) + 1
    para_end = text.find("\n", end)
    para_end = len(text) if para_end < 0 else para_end
    if para_end - para_start > MAX_PARAGRAPH_CHARS:
        return _clip_low(text, para_start, start), _clip_high(text, end, para_end)
    if (para_end - para_start) - (end - start) >= MIN_CONTEXT_CHARS:
        return para_start, para_end
    low, high = para_start, para_end
    before = text[:para_start].rstrip()
    if before:  # the previous paragraph, its end
        low = _clip_low(text, before.rfind("\n") + 1, len(before))
    rest = text[para_end:]
    after = para_end + len(rest) - len(rest.lstrip())
    if after < len(text):  # the next paragraph, its beginning
        next_end = text.find("\n", after)
        high = _clip_high(text, after, len(text) if next_end < 0 else next_end)
    return low, high


def _text_html(text: str) -> str:
    """Escaped context text on one line, a paragraph break in it shown as a line break."""
    pieces = [_one_line(p) for p in re.split(r"\n\s*\n|\n", text)]
    return "<br>".join(esc(p) for p in pieces if p) if text.strip() else ""


# --- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Excerpt:
    """A stretch of an article shown on a card, and the quotes highlighted in it."""

    start: int
    end: int
    quotes: tuple[tuple[int, int, Citation], ...]


def quote_id(key: str, n: int) -> str:
    return f"{key}-q{n}"


def _excerpts(
    text: str, citations: Sequence[Citation], starts: Mapping[str, int]
) -> list[_Excerpt | Citation]:
    """The quotes of one article placed in ``text``, grouped by the paragraph they are in;
    a quote that is not in ``text`` (an article changed since) is an excerpt of its own."""
    placed: list[tuple[int, int, Citation]] = []
    alone: list[Citation] = []
    for citation in citations:
        where = find_quote(text, citation.quote, starts.get(citation.chunk_id, 0))
        if where is None:
            alone.append(citation)
        else:
            placed.append((where[0], where[1], citation))
    excerpts: list[_Excerpt] = []
    for start, end, citation in sorted(placed, key=lambda p: (p[0], p[1])):
        low, high = paragraph_around(text, start, end)
        last = excerpts[-1] if excerpts else None
        if last is not None and low < last.end:  # the same paragraph, or overlapping context
            excerpts[-1] = _Excerpt(
                last.start, max(last.end, high), (*last.quotes, (start, end, citation))
            )
        else:
            excerpts.append(_Excerpt(low, high, ((start, end, citation),)))
    return [*excerpts, *alone]


def _excerpt_html(text: str, excerpt: _Excerpt, key: str, article_date: str) -> str:
    parts: list[str] = []
    if excerpt.start > 0 and text[excerpt.start - 1] != "\n":
        parts.append("… ")
    position = excerpt.start
    for start, end, citation in excerpt.quotes:
        if start < position:  # overlaps the previous quote: its number points there too
            parts.append(f'<span class="rag-n" id="{esc(quote_id(key, citation.n))}"></span>')
            continue
        before = text[position:start]
        if before.strip():
            parts.append(_text_html(before) + ("<br>" if "\n" in before[-3:] else " "))
        elif parts:
            parts.append(" ")
        parts.append(_quote_html(text[start:end], citation, key, article_date))
        position = end
    rest = text[position : excerpt.end]
    if rest.strip():
        parts.append(("<br>" if "\n" in rest[:3] else " ") + _text_html(rest))
    if excerpt.end < len(text) and text[excerpt.end : excerpt.end + 1] != "\n":
        parts.append(" …")
    return '<blockquote class="rag-excerpt">' + "".join(parts).strip() + "</blockquote>"


def _quote_html(quote: str, citation: Citation, key: str, article_date: str) -> str:
    return (
        f'<mark class="rag-quote" id="{esc(quote_id(key, citation.n))}" tabindex="-1">'
        f'<span class="rag-n">[{citation.n}]</span> {with_dates(_one_line(quote), article_date)}'
        "</mark>"
    )


def _byline(info: Citation | ArticleInfo, *, with_links: bool = True) -> str:
    parts = [
        f'<span class="rag-outlet">{esc(_one_line(info.publisher))}</span>'
        if info.publisher.strip()
        else "",
        f'<span class="rag-author">{esc(_one_line(info.author))}</span>'
        if info.author.strip()
        else "",
        f'<time datetime="{esc(info.date)}">{esc(format_date(info.date))}</time>'
        if info.date.strip()
        else '<span class="rag-undated">undated</span>',
    ]
    if with_links:
        url = safe_url(info.url) if info.url else None
        if url is not None:
            parts.append(
                f'<a class="rag-link" href="{esc(url)}" target="_blank" '
                'rel="noopener noreferrer">Original</a>'
            )
    return '<p class="rag-meta">' + " · ".join(p for p in parts if p) + "</p>"


def render_card(
    citations: Sequence[Citation], key: str, text: str, starts: Mapping[str, int]
) -> str:
    """One cited article: its record, a "Read in the app" link, and its quotes in context."""
    first = citations[0]
    title = esc(_one_line(first.title)) or "Untitled article"
    quotes = [c for c in citations if c.kind != "metadata" and c.quote.strip()]
    record = [c for c in citations if c not in quotes]
    body: list[str] = []
    for item in _excerpts(text, quotes, starts) if text else [*quotes]:
        if isinstance(item, _Excerpt):
            body.append(_excerpt_html(text, item, key, first.date))
        else:
            body.append(
                '<blockquote class="rag-excerpt">'
                + _quote_html(item.quote, item, key, first.date)
                + "</blockquote>"
            )
    for citation in record:
        body.append(
            f'<p class="rag-record" id="{esc(quote_id(key, citation.n))}" tabindex="-1">'
            f'<span class="rag-n">[{citation.n}]</span> The article’s record: its headline, '
            "byline, outlet and date above.</p>"
        )
    read = (
        f'<a class="rag-open" href="{esc(article_href(first.article_id))}">'
        f'Read the article<span class="rag-sr"> “{title}”</span> in the app</a>'
    )
    return (
        '<article class="rag-card">'
        f'<h3 class="rag-headline">{title}</h3>'
        f"{_byline(first)}{''.join(body)}"
        f'<p class="rag-actions">{read}</p></article>'
    )


def _prose_html(answer: Answer, key: str) -> str:
    """The answer's text, escaped, each known ``[n]`` a link to its quote and each relative
    date followed by the date of the article that the next marker cites."""
    by_n = {c.n: c for c in answer.citations}
    pieces = _MARKER_GROUP.split(answer.answer.strip())
    out: list[str] = []
    for i in range(0, len(pieces), 2):
        sentence = pieces[i]
        markers = pieces[i + 1] if i + 1 < len(pieces) else ""
        numbers = [int(n) for n in _MARKER.findall(markers)]
        cited = next((by_n[n] for n in numbers if n in by_n), None)
        out.append(with_dates(sentence, cited.date if cited else ""))
        for n in numbers:
            if n in by_n:
                out.append(
                    f' <a class="rag-ref" href="#{esc(quote_id(key, n))}" '
                    f'aria-label="source {n}">[{n}]</a>'
                )
            else:
                out.append(f" [{n}]")
    joined = "".join(out)
    paragraphs = [p for p in re.split(r"\n\s*\n", joined) if p.strip()]
    return "".join(
        '<p class="rag-text">' + "<br>".join(p.strip().split("\n")) + "</p>" for p in paragraphs
    )


def _notices_html(notices: Iterable[str]) -> str:
    return "".join(f'<p class="rag-notice">{esc(_one_line(n))}</p>' for n in notices if n.strip())


def render_answer(answer: Answer, key: str, texts: Mapping[str, str]) -> str:
    """The chat message for a final ``answer``; ``key`` makes its element ids unique on the
    page and ``texts`` holds the full text of each cited article (by id) for the paragraphs."""
    notices = _notices_html(answer.notices)
    if answer.refused:
        nearest = ""
        if answer.nearest:
            items = "".join(
                "<li>"
                f'<a class="rag-open" href="{esc(article_href(h.article_id))}">'
                f"{esc(_one_line(h.title)) or 'Untitled article'}</a> "
                + _byline(ArticleInfo(h.article_id, h.title, "", h.date, h.publisher, h.url))
                + "</li>"
                for h in answer.nearest
            )
            nearest = (
                '<h2 class="rag-sources-title">Closest articles in the archive</h2>'
                f'<ul class="rag-nearest">{items}</ul>'
            )
        return (
            f'<div class="rag-answer rag-refusal" id="{esc(key)}">'
            '<p class="rag-label">Not in the articles</p>'
            f"{_prose_html(answer, key)}{notices}{nearest}{_copy_button()}</div>"
        )
    cards = ""
    if answer.citations:
        starts = {p.chunk_id: p.start for p in answer.passages}
        cards = '<h2 class="rag-sources-title">Sources</h2>' + "".join(
            render_card(group, key, texts.get(group[0].article_id, ""), starts)
            for group in group_by_article(answer.citations)
        )
    return (
        f'<div class="rag-answer" id="{esc(key)}">'
        f"{_prose_html(answer, key)}{notices}{cards}{_copy_button()}</div>"
    )


def _copy_button() -> str:
    return '<p class="rag-actions"><button type="button" class="rag-copy">Copy answer</button></p>'


def render_draft(text: str) -> str:
    """Answer text as it streams in: unchecked, so marked as a draft; the final answer
    replaces it (and a sentence the verifier removes is gone with it)."""
    return (
        '<div class="rag-answer rag-draft" aria-busy="true">'
        '<p class="rag-label">Draft, being checked against the articles…</p>'
        f'<p class="rag-text">{esc(_one_line(text))}</p></div>'
    )


def render_stopped() -> str:
    """What replaces a draft when the reader stops an answer: no unchecked text stays."""
    return (
        '<div class="rag-answer rag-error"><p>Stopped. The unchecked draft was removed; ask'
        " again for a checked answer.</p></div>"
    )


def render_error_html(message: str) -> str:
    """A one-line error reply."""
    return (
        f'<div class="rag-answer rag-error"><p role="alert">⚠️ {esc(_one_line(message))}</p></div>'
    )


# --- the article view -------------------------------------------------------------------------


def render_article(info: ArticleInfo, text: str, quotes: Sequence[str] = ()) -> str:
    """The whole article, with each of ``quotes`` that it holds highlighted."""
    spans: list[tuple[int, int]] = []
    for quote in quotes:
        where = find_quote(text, quote)
        if where is not None and not any(s < where[1] and where[0] < e for s, e in spans):
            spans.append(where)
    spans.sort()
    body: list[str] = []
    position = 0
    for start, end in spans:
        body.append(esc(text[position:start]))
        body.append('<mark class="rag-quote">' + with_dates(text[start:end], info.date) + "</mark>")
        position = end
    body.append(esc(text[position:]))
    # Paragraph breaks after escaping: marks never span one (quotes are sentences).
    joined = "".join(body).strip()
    paragraphs = [p for p in re.split(r"\n\s*\n", joined) if p.strip()]
    rendered = "".join("<p>" + "<br>".join(p.strip().split("\n")) + "</p>" for p in paragraphs)
    title = esc(_one_line(info.title)) or "Untitled article"
    cited = (
        f'<p class="rag-notice">{len(spans)} cited passage{"s" if len(spans) != 1 else ""} '
        "highlighted.</p>"
        if spans
        else ""
    )
    return (
        f'<article class="rag-article"><h2>{title}</h2>{_byline(info)}{cited}'
        f'<div class="rag-article-body">{rendered}</div></article>'
    )


def render_no_article() -> str:
    return (
        '<div class="rag-article"><h2>No article open</h2><p>Open one from a source card in'
        " the chat (“Read the article in the app”) or from the list in the Archive tab.</p>"
        "</div>"
    )


# --- the archive ------------------------------------------------------------------------------


def render_archive_stats(articles: Sequence[ArticleInfo]) -> str:
    """How many articles, their date range and their outlets (with counts)."""
    if not articles:
        return (
            '<section class="rag-stats"><h2>The archive</h2>'
            "<p>No articles are indexed yet.</p></section>"
        )
    dates = sorted(a.date for a in articles if parse_date(a.date))
    undated = len(articles) - len(dates)
    outlets: dict[str, int] = {}
    for a in articles:
        name = _one_line(a.publisher) or "no outlet given"
        outlets[name] = outlets.get(name, 0) + 1
    span = f"dated {esc(format_date(dates[0]))} to {esc(format_date(dates[-1]))}" if dates else ""
    extra = f" ({undated} undated)" if undated and dates else (" (all undated)" if undated else "")
    listed = ", ".join(
        f"{esc(name)} ({count})"
        for name, count in sorted(outlets.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        '<section class="rag-stats"><h2>The archive</h2>'
        f"<p><strong>{len(articles)}</strong> article{'s' if len(articles) != 1 else ''}"
        f"{', ' + span if span else ''}{extra}.</p>"
        f"<p>Outlets: {listed}.</p></section>"
    )


def matches(info: ArticleInfo, words: Sequence[str]) -> bool:
    haystack = f"{info.title} {info.author} {info.publisher} {info.date}".lower()
    return all(w in haystack for w in words)


def render_article_list(articles: Sequence[ArticleInfo], total: int, query: str = "") -> str:
    """The articles that match the filters and the search words, newest first (some)."""
    shown = articles[:LISTED_ARTICLES]
    what = f" for “{esc(query.strip())}”" if query.strip() else ""
    if not articles:
        summary = f"No article matches the filters{what}."
    else:
        summary = f"{len(articles)} of {total} articles match the filters{what}" + (
            f"; the newest {len(shown)} are listed." if len(shown) < len(articles) else "."
        )
    items = "".join(
        "<li>"
        f'<a class="rag-open" href="{esc(article_href(a.article_id))}">'
        f"{esc(_one_line(a.title)) or 'Untitled article'}</a>"
        f"{_byline(a, with_links=False)}</li>"
        for a in shown
    )
    return (
        '<section class="rag-list">'
        f'<p class="rag-summary" role="status">{summary}</p>'
        f"<ul>{items}</ul></section>"
    )


def render_filters_note(description: str) -> str:
    """The line above the chat saying which filters the next answer uses."""
    if not description:
        return ""
    return f'<p class="rag-filters-note" role="status">Answers use only {esc(description)}.</p>'
