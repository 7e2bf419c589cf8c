"""CSV exports (``.csv``): a header row naming the fields (``rag.readers.records``), then
one article per row. A bad row is reported as ``source#row N`` (data rows counted from 1) and
the rest is read; the file is read a row at a time, so it has no size limit.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator

from rag.readers.base import (
    Document,
    ReadOutcome,
    SkippedFile,
    UnreadableSource,
    export_lines,
)
from rag.readers.fields import FIELD_ALIASES
from rag.readers.records import article_from_record, check_row_size
from rag.schema import Article


class CsvReader:
    name: str = "csv"
    suffixes: tuple[str, ...] = (".csv",)
    max_bytes: int | None = None
    limit: str = ""

    def read(self, document: Document) -> ReadOutcome:
        return _read_csv(document)


_CSV_FIELD_LIMIT = 2**31 - 1  # whole articles sit in one field; the default limit is 128 KiB


def _read_csv(document: Document) -> ReadOutcome:
    # The limit is process-wide; it is only ever raised (restoring it could race another read).
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    rows = csv.reader(export_lines(document))
    header = _csv_header(rows, document.source)
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    number = 0
    try:
        for number, row in enumerate(rows, start=1):
            if not any(cell.strip() for cell in row):
                continue
            source = f"{document.source}#row {number}"
            try:
                check_row_size(row, "row", source)
                if any("\x00" in cell for cell in row):
                    raise UnreadableSource(source, "binary data (a NUL character)")
                articles.append(article_from_record(_csv_record(header, row, source), source))
            except UnreadableSource as error:
                skipped.append(SkippedFile(source, error.reason))
    except csv.Error as error:
        raise UnreadableSource(document.source, f"bad CSV after row {number}: {error}") from None
    except UnreadableSource as error:
        skipped.append(
            SkippedFile(error.source, f"{error.reason}; rows after row {number} were not read")
        )
    return articles, skipped


def _csv_header(rows: Iterator[list[str]], source: str) -> list[str]:
    """The first row that is not blank, lower case."""
    try:
        first = next(row for row in rows if any(cell.strip() for cell in row))
    except StopIteration:
        raise UnreadableSource(source, "empty") from None
    except csv.Error as error:
        raise UnreadableSource(source, f"no CSV header row ({error})") from None
    header = [unicodedata.normalize("NFC", name.strip().lower()) for name in first]
    if not set(header) & set(FIELD_ALIASES["text"]):
        names = ", ".join(FIELD_ALIASES["text"])
        raise UnreadableSource(source, f"no text column (expected one of {names})")
    return header


def _csv_record(header: list[str], row: list[str], source: str) -> dict[object, object]:
    if len(row) != len(header):
        raise UnreadableSource(source, f"{len(row)} fields, but the header has {len(header)}")
    return dict(zip(header, row, strict=True))
