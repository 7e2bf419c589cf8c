"""Article fields as every format gives them: aliases of field names, ids, dates, one-line
metadata text, front matter, and ``build_article``, which makes the ``Article`` (normalised
paragraphs, the size limit, a repeated title dropped). It reads no bytes and knows no format.

Ids: an ``id`` given in the document (1-128 of ``A-Za-z0-9._-``, not only dots: ``.`` and ``..``
cannot name an article in a URL path); else the hex part of a file stem like
``000_46ce722664604c9f``; else a hash of the URL; else a slug of the file stem (rows: a hash of
title and date). None depends on the text, so editing an article keeps its id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import yaml
from frontmatter.default_handlers import YAMLHandler

from rag.readers.base import (
    MAX_ARTICLE_MB,
    MB,
    Document,
    UnreadableSource,
    megabytes,
    normalise_text,
    one_line,
    text_size,
)
from rag.schema import Article, content_hash

_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NUMBERED_HEX_STEM = re.compile(r"\d+_([0-9a-f]{8,64})")

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "article_id"),
    "title": ("title", "headline"),
    "text": ("text", "body", "content"),
    "author": ("author", "authors"),
    "date": ("date", "publish_date", "published", "published_at"),
    "publisher": ("publisher", "sitename", "site_name"),
    "url": ("url", "link", "article_source_link"),
}


def lower_keys(record: Mapping[object, object]) -> dict[str, object]:
    return {str(key).strip().lower(): value for key, value in record.items()}


def field_value(record: Mapping[str, object], name: str) -> object:
    """The first non-empty value among ``name``'s aliases; keys must be lower case."""
    for alias in FIELD_ALIASES[name]:
        value = record.get(alias)
        if value is not None and value != "":
            return value
    return None


def as_text(value: object, name: str, source: str) -> str:
    """A metadata value as one line of text; lists (several authors) are joined with ", "."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(part for part in (as_text(v, name, source) for v in value) if part)
    if isinstance(value, str | int | float | date):
        return one_line(str(value))
    raise UnreadableSource(source, f"{name} must be text, got {type(value).__name__}")


def as_article_id(value: object, source: str) -> str:
    """A given id, usable as one URL path segment (``/v1/articles/{id}``): only unreserved
    URL characters, and not only dots, which a client resolves away (``.``, ``..``)."""
    article_id = as_text(value, "id", source)
    if not _ID_PATTERN.fullmatch(article_id):
        raise UnreadableSource(
            source, f"bad id {article_id!r} (use 1-128 characters of A-Z a-z 0-9 . _ -)"
        )
    if not article_id.strip("."):
        raise UnreadableSource(
            source, f"bad id {article_id!r} (an id of only dots cannot be used in a URL)"
        )
    return article_id


def as_date(value: object, source: str) -> str:
    try:
        return normalise_date(value)
    except ValueError:
        raise UnreadableSource(
            source, f"bad date {value!r} (use YYYY-MM-DD, or e.g. June 5, 2025)"
        ) from None


_ISO_DATE_PREFIX = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d.*)?")
_WEEKDAY_PREFIX = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+", re.IGNORECASE)
_ORDINAL_SUFFIX = re.compile(r"(\d)(st|nd|rd|th)\b", re.IGNORECASE)
_ABBREVIATION_DOT = re.compile(r"\b([A-Za-z]{3,4})\.")
_SEPT = re.compile(r"\bsept\b", re.IGNORECASE)
_WRITTEN_DATE_FORMATS = (
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%d %B, %Y",
    "%d %b, %Y",
)


def normalise_date(value: object) -> str:
    """``value`` as ``YYYY-MM-DD`` ("" for no date); raises ``ValueError`` if unrecognised.

    Accepts ``date``/``datetime`` objects, ISO dates and timestamps (``2025-06-05``,
    ``2016/12/1 16:35``) and written dates (``June 5, 2025``, ``Jun. 5 2025``, ``5 June 2025``).
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    text = " ".join(value.split())
    if not text:
        return ""
    iso = _ISO_DATE_PREFIX.fullmatch(text)
    if iso:
        return date(int(iso[1]), int(iso[2]), int(iso[3])).isoformat()
    return _parse_written_date(text)


def _parse_written_date(text: str) -> str:
    cleaned = _WEEKDAY_PREFIX.sub("", text)
    cleaned = _ORDINAL_SUFFIX.sub(r"\1", cleaned)
    cleaned = _SEPT.sub("Sep", _ABBREVIATION_DOT.sub(r"\1", cleaned))
    for date_format in _WRITTEN_DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, date_format).date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:128].strip("-")
    return slug or content_hash(text)


def file_article_id(given: object, document: Document, url: str) -> str:
    """Given id, else hex part of a ``NNN_<hex>`` stem, else URL hash, else stem slug."""
    if given is not None and given != "":
        return as_article_id(given, document.source)
    numbered = _NUMBERED_HEX_STEM.fullmatch(document.stem)
    if numbered:
        return numbered[1]
    if url:
        return content_hash(url)
    return _slug(document.stem)


def row_article_id(given: object, url: str, title: str, date_text: str, source: str) -> str:
    if given is not None and given != "":
        return as_article_id(given, source)
    return content_hash(url) if url else content_hash(title, date_text)


def build_article(
    *,
    article_id: str,
    title: str,
    text: str,
    source: str,
    author: str = "",
    date_text: str = "",
    publisher: str = "",
    url: str = "",
) -> Article:
    """An ``Article`` with normalised text; a leading paragraph repeating the title is dropped."""
    paragraphs = normalise_text(text).split("\n\n")
    if paragraphs and one_line(paragraphs[0]) == title:
        paragraphs = paragraphs[1:]
    body = "\n\n".join(paragraphs).strip()
    if not body:
        raise UnreadableSource(source, "no article text")
    if text_size(body) > MAX_ARTICLE_MB * MB:
        raise UnreadableSource(
            source,
            f"article text is {megabytes(text_size(body))}; the limit for one article is"
            f" {MAX_ARTICLE_MB} MB",
        )
    return Article(
        article_id=article_id,
        title=title,
        text=body,
        author=author,
        date=date_text,
        publisher=publisher,
        url=url,
        source=source,
    )


# --- front matter ----------------------------------------------------------------------------


class _TextValuesLoader(yaml.SafeLoader):
    """YAML that keeps numbers and yes/no as text: ``id: 0123`` stays "0123", not 83."""


_TEXT_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"}
_TextValuesLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _TEXT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YAML_FRONT_MATTER = YAMLHandler()


def split_front_matter(text: str, source: str) -> tuple[dict[str, object], str] | None:
    """(metadata, body) when ``text`` opens with ``---`` front matter, else None."""
    if not _YAML_FRONT_MATTER.detect(text):
        return None
    try:
        header, body = _YAML_FRONT_MATTER.split(text)
    except ValueError:
        raise UnreadableSource(source, "broken front matter: no closing '---' line") from None
    try:
        metadata = yaml.load(header, Loader=_TextValuesLoader)
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "bad YAML"
        raise UnreadableSource(source, f"broken front matter: {first_line}") from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        kind = type(metadata).__name__
        raise UnreadableSource(
            source, f"broken front matter: expected key: value lines, got {kind}"
        )
    return lower_keys(metadata), body


@dataclass(frozen=True, slots=True)
class ArticleFields:
    """Front matter or export-row fields, cleaned; ``given_id`` is validated later."""

    given_id: object
    title: str
    author: str
    date_text: str
    publisher: str
    url: str


def article_fields(record: Mapping[str, object], source: str) -> ArticleFields:
    return ArticleFields(
        given_id=field_value(record, "id"),
        title=as_text(field_value(record, "title"), "title", source),
        author=as_text(field_value(record, "author"), "author", source),
        date_text=as_date(field_value(record, "date"), source),
        publisher=as_text(field_value(record, "publisher"), "publisher", source),
        url=as_text(field_value(record, "url"), "url", source),
    )


def article_from_front_matter(
    meta: ArticleFields, title: str, body: str, document: Document
) -> Article:
    return build_article(
        article_id=file_article_id(meta.given_id, document, meta.url),
        title=title or document.stem,
        text=body,
        source=document.source,
        author=meta.author,
        date_text=meta.date_text,
        publisher=meta.publisher,
        url=meta.url,
    )


def lenient_date(text: str) -> str:
    """A page's own date metadata, or "" when it is not a recognisable date."""
    try:
        return normalise_date(text)
    except ValueError:
        return ""
