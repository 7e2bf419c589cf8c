"""Articles from records of fields: a JSON Lines line, a CSV row, an HTTP request body.
Every record is built the same way: the same aliases, id rule, date and text normalisation,
and an outlet from the URL's host when the record names none (``publisher_from_url``).
It reads no bytes (``rag.readers.jsonl`` and ``rag.readers.csv`` do).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence

from rag.readers.base import MAX_ARTICLE_MB, MB, UnreadableSource, megabytes, one_line, text_size
from rag.readers.fields import (
    article_fields,
    build_article,
    field_value,
    lower_keys,
    row_article_id,
)
from rag.schema import Article


def article_from_record(fields: Mapping[object, object], source: str) -> Article:
    """One article from a record of fields; raises ``CorpusError`` (``UnreadableSource``)
    whose message names ``source`` and the bad field."""
    record = lower_keys(fields)
    meta = article_fields(record, source)
    text = as_text_block(field_value(record, "text"), source)
    title = meta.title or _title_from_text(text)
    return build_article(
        article_id=row_article_id(meta.given_id, meta.url, title, meta.date_text, source),
        title=title,
        text=text,
        source=source,
        author=meta.author,
        date_text=meta.date_text,
        publisher=meta.publisher or publisher_from_url(meta.url),
        url=meta.url,
    )


# Registered domains of well-known news outlets (a host matches itself and its subdomains).
_NEWS_HOSTS: dict[str, str] = {
    "bbc.co.uk": "BBC", "bbc.com": "BBC", "cnn.com": "CNN", "aljazeera.com": "Al Jazeera",
    "aljazeera.net": "Al Jazeera", "abcnews.go.com": "ABC News", "abcnews.com": "ABC News",
    "rte.ie": "RTÉ", "huffingtonpost.com": "HuffPost", "huffingtonpost.co.uk": "HuffPost",
    "huffingtonpost.ca": "HuffPost", "huffingtonpost.com.au": "HuffPost",
    "huffingtonpost.in": "HuffPost", "huffingtonpost.fr": "HuffPost",
    "huffpost.com": "HuffPost", "dw.com": "DW", "chinadaily.com.cn": "China Daily",
    "tass.com": "TASS", "tass.ru": "TASS", "reuters.com": "Reuters",
    "apnews.com": "Associated Press",
    "nytimes.com": "The New York Times", "theguardian.com": "The Guardian",
    "washingtonpost.com": "The Washington Post", "wsj.com": "The Wall Street Journal",
    "ft.com": "Financial Times", "bloomberg.com": "Bloomberg", "npr.org": "NPR",
    "foxnews.com": "Fox News", "nbcnews.com": "NBC News", "cbsnews.com": "CBS News",
    "politico.com": "Politico", "politico.eu": "Politico Europe", "euronews.com": "Euronews",
    "france24.com": "France 24", "lemonde.fr": "Le Monde", "spiegel.de": "Der Spiegel",
    "independent.co.uk": "The Independent", "telegraph.co.uk": "The Telegraph",
    "economist.com": "The Economist", "afp.com": "AFP", "usatoday.com": "USA Today",
    "latimes.com": "Los Angeles Times", "irishtimes.com": "The Irish Times",
    "techpolicy.press": "Tech Policy Press",
}  # fmt: skip
# RFC 2606 / 6761 names: placeholders, never a publisher.
_RESERVED_HOST = re.compile(
    r"(^|\.)(example|test|invalid|localhost)$|(^|\.)example\.(com|net|org)$"
)


def publisher_from_url(url: str) -> str:
    """The outlet behind ``url``: a well-known news host's name, else the host without
    ``www.``; "" for no URL, a bad one, or a reserved placeholder host (``news.example``)."""
    try:
        host = (urllib.parse.urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""
    if not host or _RESERVED_HOST.search(host):
        return ""
    labels = host.split(".")
    for start in range(len(labels) - 1):
        name = _NEWS_HOSTS.get(".".join(labels[start:]))
        if name:
            return name
    return host.removeprefix("www.")


def as_text_block(value: object, source: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UnreadableSource(source, "no article text")
    if not isinstance(value, str):
        raise UnreadableSource(source, f"text must be a string, got {type(value).__name__}")
    return value


def _title_from_text(text: str, limit: int = 80) -> str:
    """A stand-in title for a row without one: the start of its first line."""
    first = one_line(text.strip().split("\n", 1)[0])
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


def check_row_size(row: str | Sequence[str], what: str, source: str) -> None:
    """One export row is one article: the same limit as an article file."""
    size = text_size(row) if isinstance(row, str) else sum(text_size(cell) for cell in row)
    if size > MAX_ARTICLE_MB * MB:
        raise UnreadableSource(
            source,
            f"{what} is {megabytes(size)}; the limit for one article is {MAX_ARTICLE_MB} MB",
        )
