"""Plain text (``.txt``): the first line is the title. A page copied from a website is
cleaned of its navigation, a ``Name / Jun 5, 2025`` byline becomes author and date, and
trailers that start with a line such as ``Authors``, ``Related`` or ``Topics`` are dropped; lines
inside the article are never dropped. A ``.txt`` that starts with front matter is read like
Markdown metadata, with its text kept as written (no Markdown is stripped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.readers.base import (
    ARTICLE_LIMIT,
    BLANK_LINES,
    MAX_ARTICLE_MB,
    MB,
    Document,
    ReadOutcome,
    decode_text,
    one_line,
)
from rag.readers.fields import (
    article_fields,
    article_from_front_matter,
    build_article,
    file_article_id,
    normalise_date,
    split_front_matter,
)
from rag.schema import Article

_CHROME_LINES = frozenset(
    {
        "home", "donate", "perspective", "analysis", "opinion", "commentary", "news", "menu",
        "search", "topics", "tags", "related", "related articles", "related stories",
        "related content", "authors", "author", "share", "share this", "share this article",
        "share on facebook", "share on twitter", "share on linkedin", "subscribe",
        "subscribe now", "newsletter", "sign up", "sign in", "log in", "log out",
        "skip to content", "skip to main content", "advertisement", "print", "email",
        "read more", "more", "close", "back to top", "about", "about us", "contact",
        "contact us", "privacy policy", "terms of use", "cookie settings", "accept",
        "accept all", "follow us", "podcasts", "events",
    }
)  # fmt: skip
# A line like these after the article starts a trailer: it and everything after go.
_TRAILER_LINES = frozenset(
    {
        "authors", "author", "about the author", "about the authors", "related",
        "related articles", "related stories", "related content", "related reading",
        "read next", "more from", "topics", "tags", "filed under",
    }
)  # fmt: skip
_COOKIE_LINE = re.compile(r"\bcookies?\b", re.IGNORECASE)
_COPYRIGHT_LINE = re.compile(r"^(©|\(c\)|copyright\b)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_SENTENCE_PUNCTUATION = re.compile(r"[.!?;:,\"“”]")
_BYLINE = re.compile(
    r"^(?:by\s+)?(?P<author>[^/|·•\d]{2,120}?)\s+[/|·•]\s+(?P<date>[^/|·•]{6,40})$",
    re.IGNORECASE,
)
_BYLINE_SEARCH_LINES = 15
_PROSE_MIN_WORDS = 8
_LABEL_MAX_WORDS = 3


class PlainTextReader:
    name: str = "text"
    suffixes: tuple[str, ...] = (".txt",)
    max_bytes: int | None = MAX_ARTICLE_MB * MB
    limit: str = ARTICLE_LIMIT

    def read(self, document: Document) -> ReadOutcome:
        return [_read_plain_text(decode_text(document), document)], []


def _read_plain_text(text: str, document: Document) -> Article:
    split = split_front_matter(text, document.source)
    if split:
        record, body = split
        meta = article_fields(record, document.source)
        title, body = (meta.title, body) if meta.title else _split_first_line(body)
        return article_from_front_matter(meta, title, body, document)
    page = _strip_web_furniture(text)
    return build_article(
        article_id=file_article_id(None, document, ""),
        title=page.title or document.stem,
        text="\n\n".join(page.paragraphs),
        source=document.source,
        author=page.author,
        date_text=page.date_text,
    )


def _split_first_line(text: str) -> tuple[str, str]:
    stripped = text.strip()
    first, _, rest = stripped.partition("\n")
    return one_line(first), rest


@dataclass(frozen=True, slots=True)
class _Line:
    """One non-empty line of a plain-text page, with the paragraph (block) it belongs to."""

    block: int
    text: str


@dataclass(frozen=True, slots=True)
class _Byline:
    author: str
    date_text: str


@dataclass(frozen=True, slots=True)
class _PlainTextPage:
    title: str
    paragraphs: list[str]
    author: str
    date_text: str


def _strip_web_furniture(text: str) -> _PlainTextPage:
    """The article inside a page copied from a website as plain text.

    Navigation labels before the title and trailers after the article (``Authors``,
    ``Related``, ``Topics`` and what follows them) are dropped; a ``Name / Jun 5, 2025``
    byline becomes metadata. Lines inside the article are never dropped.
    """
    lines = _page_lines(text)
    byline_at, byline = _find_byline(lines)
    if byline_at is not None:
        head, body = lines[:byline_at], lines[byline_at + 1 :]
    else:
        body_start = _first_prose_index(lines)
        head, body = lines[:body_start], lines[body_start:]
    body = _drop_trailing_chrome(body[: _trailer_index(body)])
    title, head_rest = _pick_title(head)
    if title is None and body:
        title, body = body[0], body[1:]
    return _PlainTextPage(
        title=one_line(title.text) if title else "",
        paragraphs=_group_into_paragraphs(head_rest + body),
        author=byline.author if byline else "",
        date_text=byline.date_text if byline else "",
    )


def _page_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    for block_number, block in enumerate(BLANK_LINES.split(text.strip())):
        lines.extend(
            _Line(block_number, line.strip()) for line in block.split("\n") if line.strip()
        )
    return lines


def _group_into_paragraphs(lines: Iterable[_Line]) -> list[str]:
    paragraphs: list[list[str]] = []
    last_block = None
    for line in lines:
        if line.block != last_block:
            paragraphs.append([])
            last_block = line.block
        paragraphs[-1].append(line.text)
    return ["\n".join(paragraph) for paragraph in paragraphs]


def _find_byline(lines: Sequence[_Line]) -> tuple[int | None, _Byline | None]:
    for index, line in enumerate(lines[:_BYLINE_SEARCH_LINES]):
        byline = _parse_byline(line.text)
        if byline:
            return index, byline
    return None, None


def _parse_byline(text: str) -> _Byline | None:
    """``Name / Jun 5, 2025`` (also ``By Name | 2025-06-05``) as author and ISO date."""
    match = _BYLINE.match(text)
    if not match or _SENTENCE_END.search(match["author"]):
        return None
    author = one_line(match["author"])
    if len(author.split()) > 12:
        return None
    try:
        date_text = normalise_date(match["date"])
    except ValueError:
        return None
    return _Byline(author=author, date_text=date_text)


def _looks_like_prose(text: str) -> bool:
    return len(text.split()) >= _PROSE_MIN_WORDS and bool(_SENTENCE_END.search(text))


def _first_prose_index(lines: Sequence[_Line]) -> int:
    """Where the article body starts: the first sentence-like line, else after the title."""
    for index, line in enumerate(lines):
        if _looks_like_prose(line.text):
            return index
    for index, line in enumerate(lines):
        if not _is_chrome(line.text):
            return index + 1
    return len(lines)


def _is_label(text: str) -> bool:
    """1-3 words without sentence punctuation: a menu entry, section label or name."""
    return len(text.split()) <= _LABEL_MAX_WORDS and not _SENTENCE_PUNCTUATION.search(text)


def _is_chrome(text: str) -> bool:
    key = text.strip().rstrip(":").strip().lower()
    return (
        key in _CHROME_LINES
        or bool(_COPYRIGHT_LINE.match(key))
        or (bool(_COOKIE_LINE.search(key)) and len(key.split()) <= 40)
    )


def _pick_title(head: Sequence[_Line]) -> tuple[_Line | None, list[_Line]]:
    """The title among the lines before the body, and the longer lines after it (a dek).

    Short labels (1-3 words) count as navigation when a longer line is there to be the title;
    when every line is short, the title is the last one, nearest the article.
    """
    candidates = [line for line in head if not _is_chrome(line.text)]
    longer = [line for line in candidates if not _is_label(line.text)]
    if longer:
        return longer[0], longer[1:]
    return (candidates[-1], []) if candidates else (None, [])


def _trailer_index(body: Sequence[_Line]) -> int:
    for index, line in enumerate(body):
        if line.text.rstrip(":").strip().lower() in _TRAILER_LINES:
            return index
    return len(body)


def _drop_trailing_chrome(body: list[_Line]) -> list[_Line]:
    end = len(body)
    while end > 0 and (_is_chrome(body[end - 1].text) or _is_label(body[end - 1].text)):
        end -= 1
    return body[:end]
