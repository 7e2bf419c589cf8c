"""JSON Lines exports (``.jsonl``): one JSON object per line, each an article record
(``rag.readers.records`` says which fields). A bad line is reported as ``source#line N`` and
the rest is read; the file is read a line at a time, so it has no size limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from rag.readers.base import (
    Document,
    ReadOutcome,
    SkippedFile,
    UnreadableSource,
    export_lines,
)
from rag.readers.records import article_from_record, check_row_size
from rag.schema import Article


class JsonLinesReader:
    name: str = "jsonl"
    suffixes: tuple[str, ...] = (".jsonl",)
    max_bytes: int | None = None
    limit: str = ""

    def read(self, document: Document) -> ReadOutcome:
        return _read_jsonl(document)


def _read_jsonl(document: Document) -> ReadOutcome:
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    try:
        for number, line in enumerate(export_lines(document, skipped), start=1):
            if not line.strip():
                continue
            source = f"{document.source}#line {number}"
            try:
                check_row_size(line, "line", source)
                articles.append(article_from_record(_json_object(line, source), source))
            except UnreadableSource as error:
                skipped.append(SkippedFile(source, error.reason))
    except UnreadableSource as error:
        if not articles and not skipped and error.source == document.source:
            raise  # nothing read: the file itself is bad
        skipped.append(SkippedFile(error.source, f"{error.reason}; the rest was not read"))
    if not articles and not skipped:
        raise UnreadableSource(document.source, "empty")
    return articles, skipped


def _json_object(line: str, source: str) -> Mapping[object, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UnreadableSource(
            source, f"invalid JSON: {error.msg} (column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise UnreadableSource(source, f"not a JSON object but {type(record).__name__}")
    return record
