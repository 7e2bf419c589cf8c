"""Read news articles from files and exports into ``Article`` records.

What it does: walks files and folders, reads each supported format, cleans the text down to the
article's own paragraphs, normalises metadata (dates to ISO ``YYYY-MM-DD``), gives every article
a stable id, and reports each file or row it could not read instead of stopping.

What it does not do: chunk, embed or index text, fetch anything from the network (HTML is
parsed as given, never downloaded), guess languages, or fix the article's wording. Text is
quoted verbatim as citations, so apart from whitespace and Unicode NFC it is left as written.

Corpus format (what ``corpus/`` and any folder handed to ``read_articles`` may hold):

- ``.md`` / ``.markdown``: optional YAML front matter between ``---`` lines with ``id``,
  ``title``, ``author`` (text or list), ``date``, ``publisher``, ``url`` (alias ``link``); other
  keys are ignored. Without ``title`` the first ``# heading`` is the title, else the file stem.
  Markdown syntax that is not prose (heading marks, emphasis, link targets, images) is removed.
- ``.txt``: plain text; the first line is the title. A page copied from a website is cleaned of
  its navigation, a ``Name / Jun 5, 2025`` byline becomes author and date, and trailers that
  start with a line such as ``Authors``, ``Related`` or ``Topics`` are dropped. A ``.txt`` that
  starts with front matter is read like Markdown metadata, with its text kept as written.
- ``.html`` / ``.htm``: the main text and metadata are found by trafilatura; navigation,
  footers, related links and share buttons are left out.
- ``.jsonl``: one JSON object per line; ``.csv``: a header row, then one article per row.
  Columns: ``text`` (or ``body``/``content``), and optionally ``id`` (``article_id``),
  ``title``, ``author``, ``date`` (``publish_date``), ``publisher``, ``url`` (``link``,
  ``article_source_link``); others (such as ``subtitle``) are ignored. A bad line or row is
  reported as ``path#line N`` / ``path#row N`` (data rows counted from 1) and the rest is read.
  A row without ``publisher`` gets one from its URL's host (``publisher_from_url``): a
  well-known news host gives the outlet's name (``www.bbc.co.uk`` -> "BBC",
  ``europe.chinadaily.com.cn`` -> "China Daily"), any other host itself without ``www.``;
  reserved example/test hosts (``news.example``, ``localhost``) give none.

Ids: an ``id`` given in the file (1-128 of ``A-Za-z0-9._-``, not only dots: ``.`` and ``..``
cannot name an article in a URL path); else the hex part of a file stem like
``000_46ce722664604c9f``; else a hash of the URL; else a slug of the file stem (rows: a hash of
title and date). None depends on the text, so editing an article keeps its id.
Files and folders whose names start with ``.`` are skipped when walking a folder. A folder that
cannot be listed (no permission, an I/O error) is reported as skipped like a bad file, with the
folder as its source, so that a prune keeps every article stored from under it. A symlink that
loops or points nowhere is reported as skipped too; symlinked folders inside a folder are
not walked.

Encodings: UTF-8 (with or without a byte-order mark), and UTF-16 or UTF-32 when the file starts
with their byte-order mark. Sizes: one article is at most ``MAX_ARTICLE_MB`` (a ``.md``/``.txt``
file, one export row, the text found in a page) and an HTML page at most ``MAX_PAGE_MB``; bigger
ones are skipped with their size in the reason, before anything is embedded. Exports have no
file limit: they are read row by row.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import trafilatura
import yaml
from frontmatter.default_handlers import YAMLHandler
from trafilatura.settings import Document

from rag.errors import CorpusError
from rag.schema import Article, content_hash

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".jsonl", ".csv")
_EXPORT_SUFFIXES = (".jsonl", ".csv")

# A long news feature is about 0.3 MB of text; 5 MB leaves room for transcripts and reports
# while one article still embeds in well under a minute. Pages carry markup, scripts and styles
# besides their text, and trafilatura reads a page's text at about 4 s per MB.
MAX_ARTICLE_MB = 5
MAX_PAGE_MB = 10
_MB = 1_000_000


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file, line or row that was not read, and why (one line)."""

    source: str  # path, or path#line N / path#row N for export rows
    reason: str


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Everything read from a set of paths: the articles, and what was skipped."""

    articles: tuple[Article, ...]
    skipped: tuple[SkippedFile, ...]


class _UnreadableSource(CorpusError):
    """A file or row that cannot be read; keeps the reason apart from where it happened."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


# --- public entry points -----------------------------------------------------------------


def read_articles(paths: Sequence[Path]) -> ReadResult:
    """Read every supported file under ``paths``; bad files and rows go to ``skipped``.

    Raises ``CorpusError`` only when a path does not exist, before anything is read.
    """
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    first_seen: dict[str, str] = {}
    files, unreadable_folders = _files_to_read(paths)
    skipped.extend(unreadable_folders)
    for file_path in files:
        if not _is_supported_file(file_path):
            skipped.append(SkippedFile(str(file_path), _unsupported_reason(file_path)))
            continue
        try:
            found, bad_rows = _read_file_and_bad_rows(file_path)
        except _UnreadableSource as error:
            skipped.append(SkippedFile(error.source, error.reason))
            continue
        skipped.extend(bad_rows)
        for article in found:
            if article.article_id in first_seen:
                reason = (
                    f"duplicate article id {article.article_id}"
                    f" (first seen in {first_seen[article.article_id]})"
                )
                skipped.append(SkippedFile(article.source, reason))
                continue
            first_seen[article.article_id] = article.source
            articles.append(article)
    return ReadResult(articles=tuple(articles), skipped=tuple(skipped))


def article_from_record(fields: Mapping[object, object], source: str) -> Article:
    """One article from a record of fields (a JSONL line, a CSV row, an HTTP request body),
    built exactly as ``read_articles`` builds export rows: same aliases, id rule, date and
    text normalisation.

    Raises ``CorpusError`` whose message names ``source`` and the bad field.
    """
    return _article_from_record(fields, source)


def read_file(path: Path) -> list[Article]:
    """The articles in one file; raises ``CorpusError`` naming the file if it cannot be read.

    For ``.jsonl``/``.csv`` exports, bad rows are left out (``read_articles`` reports them);
    an export with no readable row at all is an error.
    """
    if not path.exists() and not _is_symlink_loop(path):
        raise CorpusError(f"no such file or directory: {path}")
    problem = _unresolvable_reason(path)
    if problem:
        raise _UnreadableSource(str(path), problem)
    if not _is_supported_file(path):
        raise _UnreadableSource(str(path), _unsupported_reason(path))
    articles, bad_rows = _read_file_and_bad_rows(path)
    if not articles and bad_rows:
        first = bad_rows[0]
        raise _UnreadableSource(
            str(path), f"no readable rows (first: {first.source}: {first.reason})"
        )
    return articles


# --- finding files ---------------------------------------------------------------------------


def _files_to_read(paths: Sequence[Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Files named or found under ``paths``, in order, each once, and what could not be
    followed (folders that could not be listed, looping or broken symlinks); raises for a
    missing path."""
    for path in paths:
        if not path.exists() and not _is_symlink_loop(path):
            raise CorpusError(f"no such file or directory: {path}")
    files: list[Path] = []
    unreadable: list[SkippedFile] = []
    seen: set[Path] = set()
    for path in paths:
        found = _walk_folder(path, unreadable) if path.is_dir() else iter([path])
        for file_path in found:
            try:
                resolved = file_path.resolve(strict=True)
            except (OSError, RuntimeError) as error:
                reason = _unresolvable_reason(file_path) or f"cannot read: {error}"
                unreadable.append(SkippedFile(str(file_path), reason))
                continue
            if resolved not in seen:
                seen.add(resolved)
                files.append(file_path)
    return files, unreadable


def _is_symlink_loop(path: Path) -> bool:
    return _unresolvable_reason(path) == _SYMLINK_LOOP


_SYMLINK_LOOP = "symlink loop: following the link never reaches a file"


def _unresolvable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be followed to a file or folder (a looping or broken symlink, an
    unreadable parent), or None when it can."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # how Python 3.11 and 3.12 report a loop
        return _SYMLINK_LOOP
    except OSError as error:
        if error.errno == errno.ELOOP:
            return _SYMLINK_LOOP
        if isinstance(error, FileNotFoundError) and path.is_symlink():
            return f"broken symlink: its target {os.readlink(path)} does not exist"
        return f"cannot read: {_os_reason(error)}"
    return None


def _walk_folder(folder: Path, unreadable: list[SkippedFile]) -> Iterator[Path]:
    """Supported, non-hidden files under ``folder``, sorted, recursively; each folder that
    cannot be listed is added to ``unreadable`` (and what is under it is not read)."""

    def cannot_list(error: OSError) -> None:
        where = str(error.filename) if error.filename is not None else str(folder)
        unreadable.append(SkippedFile(where, f"cannot read folder: {_os_reason(error)}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=cannot_list):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                yield Path(dirpath) / name


def _os_reason(error: OSError) -> str:
    """``permission denied`` rather than ``[Errno 13] Permission denied: '/x'``."""
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()


def _is_supported_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES


def _unsupported_reason(path: Path) -> str:
    if not path.is_file():
        return "not a regular file"
    suffix = path.suffix or "(none)"
    return f"unsupported file type {suffix} (supported: {', '.join(SUPPORTED_SUFFIXES)})"


# --- reading one file ------------------------------------------------------------------------

_ReadOutcome = tuple[list[Article], list[SkippedFile]]


def _read_file_and_bad_rows(path: Path) -> _ReadOutcome:
    suffix = path.suffix.lower()
    if suffix in _EXPORT_SUFFIXES:
        return _EXPORT_READERS[suffix](path)
    _check_file_size(path, suffix)
    return [_ARTICLE_READERS[suffix](_read_text(path), path)], []


def _check_file_size(path: Path, suffix: str) -> None:
    """Refuses a one-article file over its limit before it is read (exports have none)."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise _UnreadableSource(str(path), f"cannot read: {_os_reason(error)}") from error
    if suffix in (".html", ".htm"):
        limit_mb, what, note = MAX_PAGE_MB, "one HTML page", ""
    else:
        limit_mb, what = MAX_ARTICLE_MB, "one article"
        note = " (a .jsonl or .csv export may hold many)"
    if size > limit_mb * _MB:
        raise _UnreadableSource(
            str(path), f"file is {_megabytes(size)}; the limit for {what} is {limit_mb} MB{note}"
        )


def _megabytes(size: int) -> str:
    return f"{size / _MB:.1f} MB"


def _text_size(text: str) -> int:
    """Bytes of ``text`` as UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# Byte-order marks, longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BYTE_ORDER_MARKS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def _encoding(head: bytes) -> tuple[str, str, int]:
    """(codec, name, length of the byte-order mark) for a file starting with ``head``:
    the encoding its byte-order mark names, else UTF-8."""
    for mark, codec, name in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec, name, len(mark)
    return "utf-8", "UTF-8", 0


def _nul_reason(head: bytes) -> str:
    """Why bytes with NULs and no byte-order mark are not read: UTF-16 without its mark
    (ASCII letters alternate with zero bytes) is named, anything else is binary."""
    sample = head[: 4096 - 4096 % 2]
    low, high = sample[0::2], sample[1::2]
    pairs = len(high)
    for name, zeros, letters in (("LE", high, low), ("BE", low, high)):
        if pairs >= 2 and zeros.count(0) >= 0.9 * pairs and letters.count(0) <= 0.1 * pairs:
            return f"UTF-16 {name} text without a byte-order mark: save it as UTF-8"
    return "binary file"


def _read_text(path: Path) -> str:
    """The file decoded (UTF-8, or the UTF-16/UTF-32 its byte-order mark names), newlines
    as ``\\n``, Unicode NFC."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise _UnreadableSource(source, f"cannot read: {error.strerror or error}") from error
    codec, name, offset = _encoding(raw[:4])
    if codec == "utf-8" and b"\x00" in raw:
        raise _UnreadableSource(source, _nul_reason(raw))
    try:
        text = raw[offset:].decode(codec)
    except UnicodeDecodeError as error:
        position = offset + error.start
        if codec == "utf-8":
            reason = f"not UTF-8 text (byte 0x{raw[position]:02x} at position {position})"
        else:
            reason = f"starts with a {name} byte-order mark but is not {name} text"
            reason += f" (at position {position})"
        raise _UnreadableSource(source, reason) from error
    if "\x00" in text:
        raise _UnreadableSource(source, "binary file")
    if not text.strip():
        raise _UnreadableSource(source, "empty")
    return _unify_newlines_nfc(text)


def _export_lines(path: Path, bad_lines: list[SkippedFile] | None = None) -> Iterator[str]:
    """An export's lines, each ending in ``\\n`` (the last may not), decoded as ``_read_text``
    decodes, newlines unified and NFC. One line is held at a time, so an export of any size
    can be read.

    A UTF-8 line that cannot be decoded goes to ``bad_lines`` and reads as a blank line, or
    raises ``_UnreadableSource`` without ``bad_lines``; in UTF-16/UTF-32 it always raises, as
    what follows cannot be decoded either. A raise ends the lines.
    """
    source = str(path)
    try:
        with path.open("rb") as binary:
            head = binary.read(8192)
            codec, name, offset = _encoding(head[:4])
            if codec == "utf-8" and b"\x00" in head:
                raise _UnreadableSource(source, _nul_reason(head))
            binary.seek(offset)
            if codec == "utf-8":
                for number, raw in enumerate(binary, start=1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as error:
                        bad = SkippedFile(
                            f"{source}#line {number}",
                            f"not UTF-8 text (byte 0x{raw[error.start]:02x} at position"
                            f" {error.start})",
                        )
                        if bad_lines is None:
                            raise _UnreadableSource(bad.source, bad.reason) from None
                        bad_lines.append(bad)
                        line = "\n"
                    yield from _split_lines(line)
            else:
                lines_read = 0
                try:
                    for line in io.TextIOWrapper(binary, encoding=codec, newline=None):
                        lines_read += 1
                        yield _unify_newlines_nfc(line)
                except UnicodeDecodeError:
                    raise _UnreadableSource(
                        f"{source}#line {lines_read + 1}",
                        f"starts with a {name} byte-order mark but is not {name} text",
                    ) from None
    except OSError as error:
        raise _UnreadableSource(source, f"cannot read: {error.strerror or error}") from error


def _split_lines(text: str) -> Iterator[str]:
    """``text`` (one line read up to ``\\n``) split at any old-style ``\\r`` newline too."""
    unified = _unify_newlines_nfc(text)
    if "\n" not in unified[:-1]:
        yield unified
        return
    pieces = unified.split("\n")
    last = pieces.pop()
    yield from (piece + "\n" for piece in pieces)
    if last:
        yield last


# --- text normalisation ----------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n")


def _unify_newlines_nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def _normalise_text(text: str) -> str:
    """Paragraphs separated by one blank line; spaces collapsed and each line stripped.

    Only ASCII spaces and tabs are collapsed: no-break spaces are the article's own characters.
    """
    paragraphs = []
    for block in _BLANK_LINES.split(_unify_newlines_nfc(text)):
        lines = (_SPACES.sub(" ", line).strip() for line in block.split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _one_line(value: str) -> str:
    """Metadata text on one line: NFC, all whitespace runs as one space."""
    return " ".join(unicodedata.normalize("NFC", value).split())


# --- metadata values -------------------------------------------------------------------------

_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NUMBERED_HEX_STEM = re.compile(r"\d+_([0-9a-f]{8,64})")

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "article_id"),
    "title": ("title", "headline"),
    "text": ("text", "body", "content"),
    "author": ("author", "authors"),
    "date": ("date", "publish_date", "published", "published_at"),
    "publisher": ("publisher", "sitename", "site_name"),
    "url": ("url", "link", "article_source_link"),
}


def _lower_keys(record: Mapping[object, object]) -> dict[str, object]:
    return {str(key).strip().lower(): value for key, value in record.items()}


def _field(record: Mapping[str, object], name: str) -> object:
    """The first non-empty value among ``name``'s aliases; keys must be lower case."""
    for alias in _FIELD_ALIASES[name]:
        value = record.get(alias)
        if value is not None and value != "":
            return value
    return None


def _as_text(value: object, name: str, source: str) -> str:
    """A metadata value as one line of text; lists (several authors) are joined with ", "."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(part for part in (_as_text(v, name, source) for v in value) if part)
    if isinstance(value, str | int | float | date):
        return _one_line(str(value))
    raise _UnreadableSource(source, f"{name} must be text, got {type(value).__name__}")


def _as_article_id(value: object, source: str) -> str:
    """A given id, usable as one URL path segment (``/v1/articles/{id}``): only unreserved
    URL characters, and not only dots, which a client resolves away (``.``, ``..``)."""
    article_id = _as_text(value, "id", source)
    if not _ID_PATTERN.fullmatch(article_id):
        raise _UnreadableSource(
            source, f"bad id {article_id!r} (use 1-128 characters of A-Z a-z 0-9 . _ -)"
        )
    if not article_id.strip("."):
        raise _UnreadableSource(
            source, f"bad id {article_id!r} (an id of only dots cannot be used in a URL)"
        )
    return article_id


def _as_date(value: object, source: str) -> str:
    try:
        return _normalise_date(value)
    except ValueError:
        raise _UnreadableSource(
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


def _normalise_date(value: object) -> str:
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


def _file_article_id(given: object, path: Path, url: str) -> str:
    """Given id, else hex part of a ``NNN_<hex>`` stem, else URL hash, else stem slug."""
    if given is not None and given != "":
        return _as_article_id(given, str(path))
    numbered = _NUMBERED_HEX_STEM.fullmatch(path.stem)
    if numbered:
        return numbered[1]
    if url:
        return content_hash(url)
    return _slug(path.stem)


def _row_article_id(given: object, url: str, title: str, date_text: str, source: str) -> str:
    if given is not None and given != "":
        return _as_article_id(given, source)
    return content_hash(url) if url else content_hash(title, date_text)


def _build_article(
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
    paragraphs = _normalise_text(text).split("\n\n")
    if paragraphs and _one_line(paragraphs[0]) == title:
        paragraphs = paragraphs[1:]
    body = "\n\n".join(paragraphs).strip()
    if not body:
        raise _UnreadableSource(source, "no article text")
    if _text_size(body) > MAX_ARTICLE_MB * _MB:
        raise _UnreadableSource(
            source,
            f"article text is {_megabytes(_text_size(body))}; the limit for one article is"
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


def _split_front_matter(text: str, source: str) -> tuple[dict[str, object], str] | None:
    """(metadata, body) when ``text`` opens with ``---`` front matter, else None."""
    if not _YAML_FRONT_MATTER.detect(text):
        return None
    try:
        header, body = _YAML_FRONT_MATTER.split(text)
    except ValueError:
        raise _UnreadableSource(source, "broken front matter: no closing '---' line") from None
    try:
        metadata = yaml.load(header, Loader=_TextValuesLoader)
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "bad YAML"
        raise _UnreadableSource(source, f"broken front matter: {first_line}") from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        kind = type(metadata).__name__
        raise _UnreadableSource(
            source, f"broken front matter: expected key: value lines, got {kind}"
        )
    return _lower_keys(metadata), body


@dataclass(frozen=True, slots=True)
class _Metadata:
    """Front matter or export-row fields, cleaned; ``given_id`` is validated later."""

    given_id: object
    title: str
    author: str
    date_text: str
    publisher: str
    url: str


def _metadata(record: Mapping[str, object], source: str) -> _Metadata:
    return _Metadata(
        given_id=_field(record, "id"),
        title=_as_text(_field(record, "title"), "title", source),
        author=_as_text(_field(record, "author"), "author", source),
        date_text=_as_date(_field(record, "date"), source),
        publisher=_as_text(_field(record, "publisher"), "publisher", source),
        url=_as_text(_field(record, "url"), "url", source),
    )


def _article_from_front_matter(meta: _Metadata, title: str, body: str, path: Path) -> Article:
    return _build_article(
        article_id=_file_article_id(meta.given_id, path, meta.url),
        title=title or path.stem,
        text=body,
        source=str(path),
        author=meta.author,
        date_text=meta.date_text,
        publisher=meta.publisher,
        url=meta.url,
    )


# --- Markdown --------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_THEMATIC_BREAK = re.compile(r"^([-*_])(\s*\1){2,}$")
_SETEXT_UNDERLINE = re.compile(r"^(=+|-+)$")
_REFERENCE_DEFINITION = re.compile(r"^\[[^\]]+\]:\s*\S+")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?$")
_EMPTY_HEADING = re.compile(r"^#{1,6}$")
_LIST_ITEM = re.compile(r"^([-*+]|\d{1,9}[.)])\s+")
_BLOCKQUOTE = re.compile(r"^(>\s?)+")
_INLINE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"!\[[^\]]*\]\[[^\]]*\]"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<((?:https?|mailto):[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"\1"),
)
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")
# Private-use stand-ins for escaped characters while Markdown syntax is stripped.
_ESCAPE_BASE = 0xE000


def _read_markdown(text: str, path: Path) -> Article:
    split = _split_front_matter(text, str(path))
    record, body = split if split else ({}, text)
    meta = _metadata(record, str(path))
    heading_title, paragraphs = _markdown_paragraphs(body, take_title=not meta.title)
    return _article_from_front_matter(
        meta, meta.title or heading_title, "\n\n".join(paragraphs), path
    )


@dataclass
class _MarkdownScan:
    """State while turning Markdown lines into prose paragraphs."""

    take_title: bool
    title: str = ""
    in_code: bool = False
    paragraphs: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)

    def finish_paragraph(self) -> None:
        if self.current:
            self.paragraphs.append("\n".join(self.current))
        self.current = []


def _markdown_paragraphs(markdown: str, *, take_title: bool) -> tuple[str, list[str]]:
    """(first ``#`` heading if ``take_title``, else "", paragraphs of prose).

    Soft-wrapped lines are joined with a space; list items and code lines keep their own line.
    """
    scan = _MarkdownScan(take_title=take_title)
    for raw_line in markdown.split("\n"):
        _scan_markdown_line(scan, raw_line)
    scan.finish_paragraph()
    return scan.title, scan.paragraphs


def _scan_markdown_line(scan: _MarkdownScan, raw_line: str) -> None:
    if _FENCE.match(raw_line):
        scan.finish_paragraph()
        scan.in_code = not scan.in_code
        return
    if scan.in_code:
        scan.current.append(raw_line)
        return
    line = _BLOCKQUOTE.sub("", raw_line.strip()).strip()
    if not line or _REFERENCE_DEFINITION.match(line) or _EMPTY_HEADING.match(line):
        scan.finish_paragraph()
        return
    if _SETEXT_UNDERLINE.match(line) and scan.current:
        # The line above was a heading ("=" underline: level 1, so it may be the title).
        if line.startswith("=") and scan.take_title and not scan.title and len(scan.current) == 1:
            scan.title, scan.current = _one_line(scan.current[0]), []
        scan.finish_paragraph()
        return
    if _THEMATIC_BREAK.match(line):
        scan.finish_paragraph()
        return
    heading = _ATX_HEADING.match(line)
    if heading:
        scan.finish_paragraph()
        text = _strip_inline_markdown(heading[2])
        if scan.take_title and not scan.title and len(heading[1]) == 1:
            scan.title = _one_line(text)
        else:
            scan.paragraphs.append(text)
        return
    text = _strip_inline_markdown(line)
    if scan.current and not _LIST_ITEM.match(line):
        scan.current[-1] = f"{scan.current[-1]} {text}"
    else:
        scan.current.append(text)


def _strip_inline_markdown(line: str) -> str:
    """Link text without targets, no images, no emphasis or code marks; escapes resolved."""
    protected = _MARKDOWN_ESCAPE.sub(lambda m: chr(_ESCAPE_BASE + ord(m[1])), line)
    for pattern, replacement in _INLINE_PATTERNS:
        protected = pattern.sub(replacement, protected)
    return "".join(
        chr(ord(ch) - _ESCAPE_BASE) if _ESCAPE_BASE <= ord(ch) < _ESCAPE_BASE + 128 else ch
        for ch in protected
    )


# --- plain text ------------------------------------------------------------------------------

# Lines that are site navigation or labels when they stand alone before or after an article.
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


def _read_plain_text(text: str, path: Path) -> Article:
    split = _split_front_matter(text, str(path))
    if split:
        record, body = split
        meta = _metadata(record, str(path))
        title, body = (meta.title, body) if meta.title else _split_first_line(body)
        return _article_from_front_matter(meta, title, body, path)
    page = _strip_web_furniture(text)
    return _build_article(
        article_id=_file_article_id(None, path, ""),
        title=page.title or path.stem,
        text="\n\n".join(page.paragraphs),
        source=str(path),
        author=page.author,
        date_text=page.date_text,
    )


def _split_first_line(text: str) -> tuple[str, str]:
    stripped = text.strip()
    first, _, rest = stripped.partition("\n")
    return _one_line(first), rest


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
        title=_one_line(title.text) if title else "",
        paragraphs=_group_into_paragraphs(head_rest + body),
        author=byline.author if byline else "",
        date_text=byline.date_text if byline else "",
    )


def _page_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    for block_number, block in enumerate(_BLANK_LINES.split(text.strip())):
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
    author = _one_line(match["author"])
    if len(author.split()) > 12:
        return None
    try:
        date_text = _normalise_date(match["date"])
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


# --- HTML ------------------------------------------------------------------------------------


# libxml2, which parses pages for trafilatura, stops at 256 nested elements and loses what is
# deeper; the tags of a page nested deeper than this are removed below it, keeping its text.
_HTML_MAX_DEPTH = 200
_VOID_ELEMENTS = frozenset(
    {
        "area", "base", "basefont", "br", "col", "embed", "frame", "hr", "img", "input",
        "isindex", "keygen", "link", "meta", "param", "source", "track", "wbr",
    }
)  # fmt: skip
# An element of these opened right inside one of the same name closes it (<p>a<p>b).
_SIBLING_CLOSED = frozenset({"p", "li", "option", "tr", "td", "th", "dt", "dd"})


class _TagNesting:
    """How deep elements nest, roughly as an HTML parser nests them: void elements hold
    nothing, an end tag closes whatever is open inside its element, a stray one is ignored,
    and ``<p>``/``<li>``... opened inside the same closes it. ``<div/>`` opens a ``div``."""

    def __init__(self) -> None:
        self._open: list[str] = []
        self.deepest = 0

    def start(self, tag: str) -> int:
        """The depth of the element ``tag`` starts (1 for the outermost)."""
        if tag in _VOID_ELEMENTS:
            return len(self._open) + 1
        if tag in _SIBLING_CLOSED and self._open and self._open[-1] == tag:
            self._open.pop()
        self._open.append(tag)
        self.deepest = max(self.deepest, len(self._open))
        return len(self._open)

    def end(self, tag: str) -> int | None:
        """The depth of the element ``tag`` ends, or None when none is open."""
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index] == tag:
                del self._open[index:]
                return index + 1
        return None


class _DeepTagRemover(HTMLParser):
    """The page as written, less the start and end tags of elements nested deeper than
    ``max_depth``; their text, comments and everything shallower are kept verbatim."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(convert_charrefs=False)
        self._max_depth = max_depth
        self._nesting = _TagNesting()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._nesting.start(tag) <= self._max_depth:
            self.parts.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        depth = self._nesting.end(tag)
        if depth is None or depth <= self._max_depth:
            self.parts.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        self.parts.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.parts.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.parts.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.parts.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.parts.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.parts.append(f"<![{data}]>")


def _without_deep_tags(html: str, max_depth: int = _HTML_MAX_DEPTH) -> str:
    remover = _DeepTagRemover(max_depth)
    remover.feed(html)
    remover.close()
    return "".join(remover.parts)


class _MetaTagReader(HTMLParser):
    """Collects ``<title>``, ``<meta>`` and ``<link rel=canonical>`` values as fallbacks,
    and how deep the page's elements nest."""

    _KEYS: ClassVar[dict[str, str]] = {
        "og:title": "title",
        "twitter:title": "title",
        "author": "author",
        "article:author": "author",
        "og:site_name": "publisher",
        "application-name": "publisher",
        "article:published_time": "date",
        "date": "date",
        "datepublished": "date",
        "og:url": "url",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self.nesting = _TagNesting()
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # an HTML parser ignores the "/" of <div/>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.nesting.start(tag)
        attributes = {name.lower(): value or "" for name, value in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = attributes.get("property") or attributes.get("name") or attributes.get("itemprop")
            target = self._KEYS.get((key or "").lower())
            if target:
                self._remember(target, attributes.get("content", ""))
        elif tag == "link" and "canonical" in attributes.get("rel", "").lower().split():
            self._remember("url", attributes.get("href", ""))

    def _remember(self, name: str, value: str) -> None:
        if value.strip():
            self.values.setdefault(name, _one_line(value))

    def handle_endtag(self, tag: str) -> None:
        self.nesting.end(tag)
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def page_title(self) -> str:
        return _one_line("".join(self._title_parts))


def _html_meta_fallbacks(html: str) -> tuple[dict[str, str], int]:
    """Metadata from the page's tags, and how deep its elements nest."""
    reader = _MetaTagReader()
    reader.feed(html)
    reader.close()
    values = dict(reader.values)
    if "title" not in values and reader.page_title():
        values["title"] = reader.page_title()
    return values, reader.nesting.deepest


def _read_html(text: str, path: Path) -> Article:
    """Main text and metadata via trafilatura, which parses the string and fetches nothing."""
    fallback, depth = _html_meta_fallbacks(text)
    if depth > _HTML_MAX_DEPTH:
        text = _without_deep_tags(text)
    document = trafilatura.bare_extraction(
        text,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        with_metadata=True,
    )
    extracted = document if isinstance(document, Document) else None

    def value(name: str) -> str:
        found = getattr(extracted, name, None)
        return _one_line(found) if isinstance(found, str) else ""

    url = value("url") or fallback.get("url", "")
    title = value("title") or fallback.get("title", "") or path.stem
    # trafilatura puts each paragraph on its own line.
    paragraphs = (extracted.text or "").split("\n") if extracted else []
    return _build_article(
        article_id=_file_article_id(None, path, url),
        title=title,
        text="\n\n".join(paragraphs),
        source=str(path),
        author=(value("author") or fallback.get("author", "")).replace("; ", ", "),
        date_text=_lenient_date(value("date")) or _lenient_date(fallback.get("date", "")),
        publisher=value("sitename") or fallback.get("publisher", ""),
        url=url,
    )


def _lenient_date(text: str) -> str:
    """A page's own date metadata, or "" when it is not a recognisable date."""
    try:
        return _normalise_date(text)
    except ValueError:
        return ""


# --- exports: JSON Lines and CSV -------------------------------------------------------------


def _article_from_record(fields: Mapping[object, object], source: str) -> Article:
    record = _lower_keys(fields)
    meta = _metadata(record, source)
    text = _as_text_block(_field(record, "text"), source)
    title = meta.title or _title_from_text(text)
    return _build_article(
        article_id=_row_article_id(meta.given_id, meta.url, title, meta.date_text, source),
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


def _as_text_block(value: object, source: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _UnreadableSource(source, "no article text")
    if not isinstance(value, str):
        raise _UnreadableSource(source, f"text must be a string, got {type(value).__name__}")
    return value


def _title_from_text(text: str, limit: int = 80) -> str:
    """A stand-in title for a row without one: the start of its first line."""
    first = _one_line(text.strip().split("\n", 1)[0])
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


def _read_jsonl(path: Path) -> _ReadOutcome:
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    try:
        for number, line in enumerate(_export_lines(path, skipped), start=1):
            if not line.strip():
                continue
            source = f"{path}#line {number}"
            try:
                _check_row_size(line, "line", source)
                articles.append(_article_from_record(_json_object(line, source), source))
            except _UnreadableSource as error:
                skipped.append(SkippedFile(source, error.reason))
    except _UnreadableSource as error:
        if not articles and not skipped and error.source == str(path):
            raise  # nothing read: the file itself is bad
        skipped.append(SkippedFile(error.source, f"{error.reason}; the rest was not read"))
    if not articles and not skipped:
        raise _UnreadableSource(str(path), "empty")
    return articles, skipped


def _check_row_size(row: str | Sequence[str], what: str, source: str) -> None:
    """One export row is one article: the same limit as an article file."""
    size = _text_size(row) if isinstance(row, str) else sum(_text_size(cell) for cell in row)
    if size > MAX_ARTICLE_MB * _MB:
        raise _UnreadableSource(
            source,
            f"{what} is {_megabytes(size)}; the limit for one article is {MAX_ARTICLE_MB} MB",
        )


def _json_object(line: str, source: str) -> Mapping[object, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise _UnreadableSource(
            source, f"invalid JSON: {error.msg} (column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise _UnreadableSource(source, f"not a JSON object but {type(record).__name__}")
    return record


_CSV_FIELD_LIMIT = 2**31 - 1  # whole articles sit in one field; the default limit is 128 KiB


def _read_csv(path: Path) -> _ReadOutcome:
    # The limit is process-wide; it is only ever raised (restoring it could race another read).
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    rows = csv.reader(_export_lines(path))
    header = _csv_header(rows, path)
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    number = 0
    try:
        for number, row in enumerate(rows, start=1):
            if not any(cell.strip() for cell in row):
                continue
            source = f"{path}#row {number}"
            try:
                _check_row_size(row, "row", source)
                if any("\x00" in cell for cell in row):
                    raise _UnreadableSource(source, "binary data (a NUL character)")
                articles.append(_article_from_record(_csv_record(header, row, source), source))
            except _UnreadableSource as error:
                skipped.append(SkippedFile(source, error.reason))
    except csv.Error as error:
        raise _UnreadableSource(str(path), f"bad CSV after row {number}: {error}") from None
    except _UnreadableSource as error:
        skipped.append(
            SkippedFile(error.source, f"{error.reason}; rows after row {number} were not read")
        )
    return articles, skipped


def _csv_header(rows: Iterator[list[str]], path: Path) -> list[str]:
    """The first row that is not blank, lower case."""
    try:
        first = next(row for row in rows if any(cell.strip() for cell in row))
    except StopIteration:
        raise _UnreadableSource(str(path), "empty") from None
    except csv.Error as error:
        raise _UnreadableSource(str(path), f"no CSV header row ({error})") from None
    header = [unicodedata.normalize("NFC", name.strip().lower()) for name in first]
    if not set(header) & set(_FIELD_ALIASES["text"]):
        names = ", ".join(_FIELD_ALIASES["text"])
        raise _UnreadableSource(str(path), f"no text column (expected one of {names})")
    return header


def _csv_record(header: list[str], row: list[str], source: str) -> dict[object, object]:
    if len(row) != len(header):
        raise _UnreadableSource(source, f"{len(row)} fields, but the header has {len(header)}")
    return dict(zip(header, row, strict=True))


_ARTICLE_READERS: dict[str, Callable[[str, Path], Article]] = {
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".txt": _read_plain_text,
    ".html": _read_html,
    ".htm": _read_html,
}
# Exports are read from the file a line at a time, never whole.
_EXPORT_READERS: dict[str, Callable[[Path], _ReadOutcome]] = {
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
}
