"""Tests for the readers' seam (``rag.readers``): one reader per format chosen by suffix from
a registry, and the bytes entry point, which reads exactly what the same file reads.

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from rag.api.articles import read_upload
from rag.errors import CorpusError
from rag.ingest import SUPPORTED_SUFFIXES, read_articles
from rag.readers import (
    MAX_ARTICLE_MB,
    Document,
    ReadOutcome,
    UnreadableSource,
    read_bytes,
    read_document,
    reader_for,
    register_reader,
    supported_suffixes,
)
from rag.readers.markdown import MarkdownReader
from rag.schema import Article
from tests.test_ingest import ARTICLES


def test_each_suffix_has_one_reader_and_the_ingest_list_is_the_registry() -> None:
    assert supported_suffixes() == SUPPORTED_SUFFIXES
    assert set(supported_suffixes()) == {
        ".md",
        ".markdown",
        ".txt",
        ".html",
        ".htm",
        ".jsonl",
        ".csv",
    }
    assert {reader_for(f"a{s.upper()}").name for s in supported_suffixes()} == {  # type: ignore[union-attr]
        "markdown",
        "text",
        "html",
        "jsonl",
        "csv",
    }
    assert reader_for("notes.docx") is None
    with pytest.raises(UnreadableSource, match=r"unsupported file type \.docx \(supported: \.md,"):
        read_bytes("notes.docx", b"text")


@pytest.mark.parametrize("path", sorted(ARTICLES.iterdir()), ids=lambda p: p.name)
def test_bytes_read_as_the_same_file_does(path: Path) -> None:
    if reader_for(path.name) is None:
        pytest.skip("not an article format")
    from_file = read_articles([path])
    from_bytes = read_bytes(path.name, path.read_bytes(), source=str(path))
    assert from_bytes == from_file


def test_a_document_over_its_readers_limit_is_refused_before_it_is_read() -> None:
    big = b"x" * (MAX_ARTICLE_MB * 1_000_000 + 1)
    with pytest.raises(
        UnreadableSource, match=r"file is 5\.0 MB; the limit for one article is 5 MB"
    ):
        read_bytes("big.md", big)


def test_a_registered_reader_reads_its_suffix(tmp_path: Path) -> None:
    class Shouting(MarkdownReader):
        name = "shouting"
        suffixes = (".shout",)

        def read(self, document: Document) -> ReadOutcome:
            articles, skipped = super().read(document)
            return [dataclasses.replace(a, text=a.text.upper()) for a in articles], skipped

    register_reader(Shouting())
    try:
        articles, _ = read_document(Document.from_bytes("n.shout", b"# Title\n\nquiet words"))
        assert [a.text for a in articles] == ["QUIET WORDS"]
    finally:
        from rag import readers

        del readers._READERS[".shout"]
    assert reader_for("n.shout") is None


def test_an_upload_is_read_from_its_bytes_with_no_temporary_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_temporary_files(*args: object, **kwargs: object) -> object:
        raise AssertionError("an upload must not be written to a temporary file")

    for name in ("TemporaryDirectory", "NamedTemporaryFile", "mkdtemp", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_temporary_files)
    data = (ARTICLES / "wire.jsonl").read_bytes()
    articles, skipped = read_upload("wire.jsonl", data)
    assert [a.article_id for a in articles] == ["wire-001", "wire-002"]
    assert all(isinstance(a, Article) and a.source == "upload:wire.jsonl" for a in articles)
    assert [source for source, _ in skipped] == ["wire.jsonl#line 3"]
    with pytest.raises(
        CorpusError, match=r"no article could be read from the upload \(x\.md: empty\)"
    ):
        read_upload("x.md", b"   ")
