"""Readers: one module per article format, behind one small interface (``Reader``), chosen by
suffix from one registry (``register_reader``, ``reader_for``).

- ``.md`` / ``.markdown``: ``rag.readers.markdown``; ``.txt``: ``rag.readers.plain_text``;
  ``.html`` / ``.htm``: ``rag.readers.html`` (trafilatura, imported only there);
- ``.jsonl``: ``rag.readers.jsonl``; ``.csv``: ``rag.readers.csv``: exports of many articles,
  read a row at a time, their fields as ``rag.readers.records`` says (also used for the
  API's JSON bodies).

A reader is handed a ``Document``: a file's path, or bytes with a name (``read_bytes``, for an
upload, which so needs no temporary file). ``read_document`` checks the reader's size limit
first, then reads; bad rows come back as ``SkippedFile``, and a document that cannot be read at
all raises ``CorpusError`` naming its source and why.

What it leaves out: walking folders, symlinks, duplicates across files and pruning
(``rag.ingest`` does), and anything over the network: nothing is fetched, a page is parsed as
given.
"""

from __future__ import annotations

from rag.readers.base import (
    MAX_ARTICLE_MB,
    MAX_PAGE_MB,
    Document,
    Reader,
    ReadOutcome,
    ReadResult,
    SkippedFile,
    UnreadableSource,
    megabytes,
    os_reason,
)
from rag.readers.csv import CsvReader
from rag.readers.html import HtmlReader
from rag.readers.jsonl import JsonLinesReader
from rag.readers.markdown import MarkdownReader
from rag.readers.plain_text import PlainTextReader
from rag.readers.records import article_from_record, publisher_from_url
from rag.schema import Article

__all__ = [
    "MAX_ARTICLE_MB",
    "MAX_PAGE_MB",
    "Document",
    "ReadOutcome",
    "ReadResult",
    "Reader",
    "SkippedFile",
    "UnreadableSource",
    "article_from_record",
    "drop_duplicates",
    "publisher_from_url",
    "read_bytes",
    "read_document",
    "reader_for",
    "register_reader",
    "supported_suffixes",
    "unsupported_reason",
]

_READERS: dict[str, Reader] = {}


def register_reader(reader: Reader) -> None:
    """Read files whose suffix is one of ``reader.suffixes`` (lower case, with the dot) with
    ``reader``; a later registration of a suffix replaces the earlier one."""
    for suffix in reader.suffixes:
        _READERS[suffix.lower()] = reader


def supported_suffixes() -> tuple[str, ...]:
    """Every registered suffix, in registration order."""
    return tuple(_READERS)


def reader_for(name: str) -> Reader | None:
    """The reader for a file called ``name`` (by its suffix), or None when none reads it."""
    return _READERS.get(Document.from_bytes(name, b"").suffix)


def unsupported_reason(name: str) -> str:
    suffix = Document.from_bytes(name, b"").suffix or "(none)"
    return f"unsupported file type {suffix} (supported: {', '.join(supported_suffixes())})"


def read_document(document: Document) -> ReadOutcome:
    """The articles in ``document`` and the rows skipped; raises ``UnreadableSource`` (a
    ``CorpusError``) when it is over its reader's size limit, of no registered format, or
    cannot be read at all."""
    reader = reader_for(document.name)
    if reader is None:
        raise UnreadableSource(document.source, unsupported_reason(document.name))
    if reader.max_bytes is not None:
        try:
            size = document.size()
        except OSError as error:
            raise UnreadableSource(document.source, f"cannot read: {os_reason(error)}") from error
        if size > reader.max_bytes:
            raise UnreadableSource(document.source, f"file is {megabytes(size)}; {reader.limit}")
    return reader.read(document)


def drop_duplicates(
    articles: list[Article], first_seen: dict[str, str], skipped: list[SkippedFile]
) -> list[Article]:
    """``articles`` less those whose id was seen before (in ``first_seen``, which is updated);
    each one left out goes to ``skipped``, naming where the id was first seen."""
    kept = []
    for article in articles:
        if article.article_id in first_seen:
            reason = (
                f"duplicate article id {article.article_id}"
                f" (first seen in {first_seen[article.article_id]})"
            )
            skipped.append(SkippedFile(article.source, reason))
            continue
        first_seen[article.article_id] = article.source
        kept.append(article)
    return kept


def read_bytes(name: str, data: bytes, source: str = "") -> ReadResult:
    """The articles in ``data``, a file called ``name`` (its suffix picks the reader, its stem
    may give the id), each once; ``source`` (default ``name``) names it in messages and in each
    article's ``source``. Bad rows and repeated ids go to ``skipped``; raises ``CorpusError``
    when the bytes cannot be read at all."""
    skipped: list[SkippedFile] = []
    found, bad_rows = read_document(Document.from_bytes(name, data, source))
    skipped.extend(bad_rows)
    articles = drop_duplicates(found, {}, skipped)
    return ReadResult(articles=tuple(articles), skipped=tuple(skipped))


for _reader in (
    MarkdownReader(),
    PlainTextReader(),
    HtmlReader(),
    JsonLinesReader(),
    CsvReader(),
):
    register_reader(_reader)
