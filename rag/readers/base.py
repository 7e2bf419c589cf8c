"""What every reader shares: the ``Document`` a reader is handed (a file's path, or bytes
with a name), what it returns (articles and the rows it skipped), the ``Reader`` protocol, and
the decoding and whitespace rules every format follows.

Decoding: UTF-8 (with or without a byte-order mark), and UTF-16 or UTF-32 when the bytes start
with their byte-order mark; NUL bytes without a mark are binary (or UTF-16 without its mark,
named as such). Text is NFC with ``\\n`` newlines. It does not know any format's syntax.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO, Protocol

from rag.errors import CorpusError
from rag.schema import Article

# A long news feature is about 0.3 MB of text; 5 MB leaves room for transcripts and reports
# while one article still embeds in well under a minute. Pages carry markup, scripts and styles
# besides their text, and trafilatura reads a page's text at about 4 s per MB.
MAX_ARTICLE_MB = 5
MAX_PAGE_MB = 10
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Document:
    """One file as a reader sees it: its ``name`` (the stem may give the article's id and
    title), ``source`` (where it came from, in messages and ``Article.source``), and its bytes,
    on disk at ``path`` or in memory as ``data`` (an upload: no temporary file)."""

    name: str
    source: str
    path: Path | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("a Document has either a path or data")

    @classmethod
    def from_path(cls, path: Path) -> Document:
        return cls(path.name, str(path), path=path)

    @classmethod
    def from_bytes(cls, name: str, data: bytes, source: str = "") -> Document:
        return cls(name, source or name, data=data)

    @property
    def stem(self) -> str:
        return PurePath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePath(self.name).suffix.lower()

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")


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


class UnreadableSource(CorpusError):
    """A file or row that cannot be read; keeps the reason apart from where it happened."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


ReadOutcome = tuple[list[Article], list[SkippedFile]]


class Reader(Protocol):
    """One format: the suffixes it reads, the most bytes one document of it may have (None:
    read row by row, any size), and ``read``, which returns the articles and the rows it
    skipped, or raises ``UnreadableSource`` when the document as a whole cannot be read."""

    name: str
    suffixes: tuple[str, ...]
    max_bytes: int | None
    limit: str  # the limit in words, for the message about a document over it

    def read(self, document: Document) -> ReadOutcome: ...


ARTICLE_LIMIT = (
    f"the limit for one article is {MAX_ARTICLE_MB} MB (a .jsonl or .csv export may hold many)"
)


def os_reason(error: OSError) -> str:
    """``permission denied`` rather than ``[Errno 13] Permission denied: '/x'``."""
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB"


def text_size(text: str) -> int:
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


def encoding_of(head: bytes) -> tuple[str, str, int]:
    """(codec, name, length of the byte-order mark) for a file starting with ``head``:
    the encoding its byte-order mark names, else UTF-8."""
    for mark, codec, name in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec, name, len(mark)
    return "utf-8", "UTF-8", 0


def nul_reason(head: bytes) -> str:
    """Why bytes with NULs and no byte-order mark are not read: UTF-16 without its mark
    (ASCII letters alternate with zero bytes) is named, anything else is binary."""
    sample = head[: 4096 - 4096 % 2]
    low, high = sample[0::2], sample[1::2]
    pairs = len(high)
    for name, zeros, letters in (("LE", high, low), ("BE", low, high)):
        if pairs >= 2 and zeros.count(0) >= 0.9 * pairs and letters.count(0) <= 0.1 * pairs:
            return f"UTF-16 {name} text without a byte-order mark: save it as UTF-8"
    return "binary file"


def decode_text(document: Document) -> str:
    """The document decoded (UTF-8, or the UTF-16/UTF-32 its byte-order mark names),
    newlines as ``\\n``, Unicode NFC."""
    source = document.source
    try:
        raw = document.read()
    except OSError as error:
        raise UnreadableSource(source, f"cannot read: {error.strerror or error}") from error
    codec, name, offset = encoding_of(raw[:4])
    if codec == "utf-8" and b"\x00" in raw:
        raise UnreadableSource(source, nul_reason(raw))
    try:
        text = raw[offset:].decode(codec)
    except UnicodeDecodeError as error:
        position = offset + error.start
        if codec == "utf-8":
            reason = f"not UTF-8 text (byte 0x{raw[position]:02x} at position {position})"
        else:
            reason = f"starts with a {name} byte-order mark but is not {name} text"
            reason += f" (at position {position})"
        raise UnreadableSource(source, reason) from error
    if "\x00" in text:
        raise UnreadableSource(source, "binary file")
    if not text.strip():
        raise UnreadableSource(source, "empty")
    return unify_newlines_nfc(text)


def export_lines(document: Document, bad_lines: list[SkippedFile] | None = None) -> Iterator[str]:
    """An export's lines, each ending in ``\\n`` (the last may not), decoded as ``decode_text``
    decodes, newlines unified and NFC. One line is held at a time, so an export of any size
    can be read.

    A UTF-8 line that cannot be decoded goes to ``bad_lines`` and reads as a blank line, or
    raises ``UnreadableSource`` without ``bad_lines``; in UTF-16/UTF-32 it always raises, as
    what follows cannot be decoded either. A raise ends the lines.
    """
    source = document.source
    try:
        with document.open() as binary:
            head = binary.read(8192)
            codec, name, offset = encoding_of(head[:4])
            if codec == "utf-8" and b"\x00" in head:
                raise UnreadableSource(source, nul_reason(head))
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
                            raise UnreadableSource(bad.source, bad.reason) from None
                        bad_lines.append(bad)
                        line = "\n"
                    yield from split_lines(line)
            else:
                lines_read = 0
                try:
                    for line in io.TextIOWrapper(binary, encoding=codec, newline=None):
                        lines_read += 1
                        yield unify_newlines_nfc(line)
                except UnicodeDecodeError:
                    raise UnreadableSource(
                        f"{source}#line {lines_read + 1}",
                        f"starts with a {name} byte-order mark but is not {name} text",
                    ) from None
    except OSError as error:
        raise UnreadableSource(source, f"cannot read: {error.strerror or error}") from error


def split_lines(text: str) -> Iterator[str]:
    """``text`` (one line read up to ``\\n``) split at any old-style ``\\r`` newline too."""
    unified = unify_newlines_nfc(text)
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
BLANK_LINES = re.compile(r"\n\s*\n")


def unify_newlines_nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def normalise_text(text: str) -> str:
    """Paragraphs separated by one blank line; spaces collapsed and each line stripped.

    Only ASCII spaces and tabs are collapsed: no-break spaces are the article's own characters.
    """
    paragraphs = []
    for block in BLANK_LINES.split(unify_newlines_nfc(text)):
        lines = (_SPACES.sub(" ", line).strip() for line in block.split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def one_line(value: str) -> str:
    """Metadata text on one line: NFC, all whitespace runs as one space."""
    return " ".join(unicodedata.normalize("NFC", value).split())
