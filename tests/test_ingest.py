"""Tests for rag.ingest: walking files and folders, bad files and paths, encodings, sizes and
stable ids, over every format (each format's own tests: tests/test_readers_*.py).

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from rag.cli import main
from rag.config import Settings
from rag.errors import CorpusError
from rag.ingest import (
    SUPPORTED_SUFFIXES,
    ReadResult,
    SkippedFile,
    article_from_record,
    read_articles,
    read_file,
)
from rag.schema import Article
from rag.stores.chroma import ChromaStore

TESTS = Path(__file__).parent
ARTICLES = TESTS / "fixtures" / "articles"
RAW_SEED = TESTS / "fixtures" / "raw" / "000_46ce722664604c9f.txt"
CORPUS_ARTICLE = (
    TESTS.parent
    / "corpus"
    / "46ce722664604c9f-why-europe-should-double-down-on-its-global-tech-ties.md"
)
# The author's note opens the article: it is the article's own text, not site furniture.
SEED_FIRST_PARAGRAPH = "Mark Scott is a contributing editor at Tech Policy Press."
SEED_LAST_PARAGRAPH = (
    "But Europe can not mimic China or the US if it wants to maintain its global position on"
    " tech. Only by doubling down on existing international partnerships — at a time when such"
    " structures are fraying worldwide — can Brussels demonstrate why it deserves a seat at the"
    " top diplomatic table."
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def only_article(path: Path) -> Article:
    articles = read_file(path)
    assert len(articles) == 1
    return articles[0]


def reasons_by_source(result: ReadResult) -> dict[str, str]:
    return {skipped.source: skipped.reason for skipped in result.skipped}


# --- the bundled corpus ----------------------------------------------------------------------


def test_corpus_article_reads_to_the_seed_article_paragraphs() -> None:
    corpus_article = only_article(CORPUS_ARTICLE)
    seed_article = only_article(RAW_SEED)

    assert corpus_article.text == seed_article.text
    assert corpus_article.article_id == seed_article.article_id == "46ce722664604c9f"
    assert (corpus_article.author, corpus_article.date, corpus_article.publisher) == (
        "Mark Scott",
        "2025-06-05",
        "Tech Policy Press",
    )
    assert corpus_article.url.startswith("https://www.techpolicy.press/")


def test_corpus_body_is_byte_for_byte_the_seed_wording() -> None:
    seed = RAW_SEED.read_text(encoding="utf-8")
    start = seed.index(SEED_FIRST_PARAGRAPH)
    end = seed.index(SEED_LAST_PARAGRAPH) + len(SEED_LAST_PARAGRAPH)

    corpus_body = CORPUS_ARTICLE.read_text(encoding="utf-8").split("\n---\n", 1)[1].strip()

    assert corpus_body == seed[start:end]


def test_corpus_folder_holds_only_articles() -> None:
    result = read_articles([CORPUS_ARTICLE.parent])

    assert result.skipped == ()
    assert [a.article_id for a in result.articles] == ["46ce722664604c9f"]


# --- bad files and paths ---------------------------------------------------------------------


def test_bad_files_are_skipped_with_reasons_and_good_files_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write(folder / "a-good.md", "---\ntitle: Good\n---\nA good article.")
    empty = write(folder / "empty.md", "")
    blank = write(folder / "blank.txt", "  \n\t\n")
    binary = write(folder / "binary.txt", b"PK\x03\x04\x00\x00binary")
    latin1 = write(folder / "latin1.txt", "Caf\u00e9 culture".encode("latin-1"))
    broken = write(folder / "broken.md", "---\ntitle: [unclosed\n---\nBody.")
    unclosed = write(folder / "unclosed.md", "---\ntitle: Never closed\nBody.")
    no_text = write(folder / "only-title.md", "# Just A Heading\n")
    write(folder / "nested" / "z-good.txt", "Nested Title\n\nNested body.")
    write(folder / "notes.pdf", b"%PDF-1.4")  # unsupported suffix: ignored when walking
    write(folder / ".hidden.md", "Hidden drafts are not read.")
    write(folder / ".git" / "x.md", "Nor are hidden folders.")

    result = read_articles([folder])

    assert [a.title for a in result.articles] == ["Good", "Nested Title"]
    assert reasons_by_source(result) == {
        str(empty): "empty",
        str(blank): "empty",
        str(binary): "binary file",
        str(latin1): "not UTF-8 text (byte 0xe9 at position 3)",
        str(broken): "broken front matter: while parsing a flow sequence",
        str(unclosed): "broken front matter: no closing '---' line",
        str(no_text): "no article text",
    }
    for path, reason in reasons_by_source(result).items():
        with pytest.raises(CorpusError) as raised:
            read_file(Path(path))
        assert str(raised.value) == f"{path}: {reason}"


def deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` unlistable as ``chmod 000`` does for anyone but root."""
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(os.fsdecode(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # what os.walk lists folders with


def test_a_folder_that_cannot_be_read_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "articles"
    write(folder / "a.md", "---\ntitle: Readable\n---\nA readable article.")
    write(folder / "locked" / "b.md", "---\ntitle: Locked\n---\nAn article out of reach.")
    write(folder / "locked" / "deeper" / "c.md", "---\ntitle: Deeper\n---\nAlso out of reach.")
    deny_listing(monkeypatch, folder / "locked")

    result = read_articles([folder])

    assert [a.title for a in result.articles] == ["Readable"]
    assert result.skipped == (
        SkippedFile(str(folder / "locked"), "cannot read folder: permission denied"),
    )


def test_a_given_folder_that_cannot_be_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "articles" / "a.md", "A title\n\nA body.").parent
    deny_listing(monkeypatch, folder)

    result = read_articles([folder])

    assert result.articles == ()
    assert reasons_by_source(result) == {str(folder): "cannot read folder: permission denied"}


def test_prune_keeps_the_articles_of_a_folder_that_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The red-team case: ``rag ingest --prune`` with a subfolder made unreadable."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.setenv("RAG_JUDGE", "fake-overlap")
    folder = tmp_path / "articles"
    write(folder / "a.md", "---\nid: kept-a\ntitle: Readable\n---\nA readable article.")
    write(folder / "sub" / "b.md", "---\nid: under-b\ntitle: Locked\n---\nOut of reach.")
    write(folder / "sub" / "deeper" / "c.md", "---\nid: under-c\ntitle: C\n---\nDeeper.")
    write(folder / "subway.md", "---\nid: subway\ntitle: Subway\n---\nA sibling, not under.")
    assert main(["ingest", "--quiet", str(folder)]) == 0
    (folder / "subway.md").unlink()
    capsys.readouterr()

    deny_listing(monkeypatch, folder / "sub")
    assert main(["ingest", "--quiet", "--json", "--prune", str(folder)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["skipped"] == [
        {"source": str(folder / "sub"), "reason": "cannot read folder: permission denied"}
    ]
    assert f"skipped {folder / 'sub'}: cannot read folder: permission denied" in err
    assert report["articles_removed"] == 1  # only subway.md, which is gone
    monkeypatch.undo()
    store = ChromaStore.open(
        Settings(data_dir=tmp_path / "index", embedding_provider="fake-hash"), "fake/hash-64"
    )
    assert set(store.chunks_by_article()) == {"kept-a", "under-b", "under-c"}


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read a chmod 000 folder"
)
def test_a_chmod_000_folder_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write(folder / "a.md", "---\ntitle: Readable\n---\nA readable article.")
    locked = write(folder / "locked" / "b.md", "---\ntitle: Locked\n---\nOut of reach.").parent
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("chmod 000 does not stop this user from reading")
        result = read_articles([folder])
    finally:
        locked.chmod(0o755)
    assert [a.title for a in result.articles] == ["Readable"]
    assert reasons_by_source(result) == {str(locked): "cannot read folder: permission denied"}


def test_utf8_bom_crlf_tabs_and_nfc_are_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.md",
        "\ufeff---\r\ntitle: Cafe\u0301 Opens\r\n---\r\n\r\nLine\tone  here.\r\n\r\n\r\n\r\n"
        "  Caf\u00e9 two.  \r\n",
    )

    article = only_article(path)
    assert article.title == "Caf\u00e9 Opens"
    assert article.text == "Line one here.\n\nCaf\u00e9 two."


def test_missing_path_raises() -> None:
    missing = Path("/no/such/articles")

    with pytest.raises(CorpusError, match=r"^no such file or directory: /no/such/articles$"):
        read_articles([ARTICLES, missing])
    with pytest.raises(CorpusError, match="no such file or directory"):
        read_file(missing)


def test_explicit_unsupported_file_is_skipped_with_a_reason(tmp_path: Path) -> None:
    pdf = write(tmp_path / "report.pdf", b"%PDF-1.4")

    result = read_articles([pdf])

    assert result.articles == ()
    assert result.skipped == (
        SkippedFile(
            str(pdf), f"unsupported file type .pdf (supported: {', '.join(SUPPORTED_SUFFIXES)})"
        ),
    )


def test_fixture_folder_reads_every_format() -> None:
    result = read_articles([ARTICLES])

    assert sorted(a.article_id for a in result.articles) == sorted(
        ["1", "3", "0b9dd859ce7f7f2d", "solar-farm-2025", "wire-001", "wire-002"]
    )
    assert len(result.skipped) == 2


# --- ids -------------------------------------------------------------------------------------


def test_duplicate_ids_keep_the_first_and_report_later_ones(tmp_path: Path) -> None:
    first = write(tmp_path / "a.md", "---\nid: same\ntitle: First\n---\nOne.")
    second = write(tmp_path / "b.md", "---\nid: same\ntitle: Second\n---\nTwo.")

    result = read_articles([tmp_path, first])  # naming a file twice reads it once

    assert [a.title for a in result.articles] == ["First"]
    assert result.skipped == (
        SkippedFile(str(second), f"duplicate article id same (first seen in {first})"),
    )


def test_ids_are_stable_when_only_the_text_changes(tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, body in ((before, "Original wording."), (after, "Edited wording, longer now.")):
        write(folder / "plain-slug.md", f"# Title\n\n{body}")
        write(folder / "with-url.md", f"---\nurl: https://x.example/a\n---\n{body}")
        write(folder / "007_0123456789abcdef.txt", f"Title\n\n{body}")
        write(folder / "rows.jsonl", f'{{"title": "T", "date": "2025-01-02", "text": "{body}"}}\n')
        write(folder / "rows.csv", f'title,date,url,text\nT2,2025-01-03,,"{body}"\n')
        shutil.copy(ARTICLES / "harbour-flood-wall.html", folder / "page.html")
        page = (folder / "page.html").read_text(encoding="utf-8")
        (folder / "page.html").write_text(page.replace("seven to two", body), encoding="utf-8")

    ids_before = [a.article_id for a in read_articles([before]).articles]
    ids_after = [a.article_id for a in read_articles([after]).articles]

    assert len(ids_before) == 6
    assert ids_before == ids_after
    assert "plain-slug" in ids_before and "0123456789abcdef" in ids_before


# --- red-team inputs (issue 9, item 8) -------------------------------------------------------

GOOD_MD = "---\nid: good\ntitle: Good\n---\nA good article.\n"


def test_a_symlink_loop_is_skipped_with_a_reason_and_the_rest_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write(folder / "a.md", GOOD_MD)
    write(folder / "sub" / "b.txt", "Sub Title\n\nAn article in a subfolder.")
    (folder / "self.md").symlink_to("self.md")
    (folder / "ping.txt").symlink_to("pong.txt")
    (folder / "pong.txt").symlink_to("ping.txt")
    (folder / "sub" / "up").symlink_to("..")  # a folder cycle: not followed
    (folder / "gone.md").symlink_to("missing.md")

    result = read_articles([folder])

    assert [a.title for a in result.articles] == ["Good", "Sub Title"]
    loop = "symlink loop: following the link never reaches a file"
    assert reasons_by_source(result) == {
        str(folder / "gone.md"): "broken symlink: its target missing.md does not exist",
        str(folder / "ping.txt"): loop,
        str(folder / "pong.txt"): loop,
        str(folder / "self.md"): loop,
    }
    named = read_articles([folder / "self.md", folder / "a.md"])
    assert [a.title for a in named.articles] == ["Good"]
    assert named.skipped == (SkippedFile(str(folder / "self.md"), loop),)
    with pytest.raises(CorpusError, match=f"self.md: {loop}$"):
        read_file(folder / "self.md")


MD_WITH_ACCENTS = "---\ntitle: Café Opens\n---\nThe café opened on Monday — “at last”, 日本.\n"


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (b"", "utf-8"),
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
    ],
)
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(
    tmp_path: Path, bom: bytes, codec: str
) -> None:
    path = write(tmp_path / "a.md", bom + MD_WITH_ACCENTS.replace("\n", "\r\n").encode(codec))
    rows = write(
        tmp_path / "rows.jsonl",
        bom + '{"id": "r1", "title": "Café", "text": "Row one — “yes”."}\n'.encode(codec),
    )
    table = write(
        tmp_path / "rows.csv",
        bom + 'id,title,text\r\nc1,Café,"Line one,\r\nline two"\r\n'.encode(codec),
    )

    article = only_article(path)
    assert (article.title, article.text) == (
        "Café Opens",
        "The café opened on Monday — “at last”, 日本.",
    )
    assert only_article(rows).text == "Row one — “yes”."
    assert only_article(table).text == "Line one,\nline two"


def test_utf16_without_a_byte_order_mark_or_broken_after_one_is_named(tmp_path: Path) -> None:
    text = "Title\n\nSome text that is UTF-16 without its mark."
    no_bom_le = write(tmp_path / "le.txt", text.encode("utf-16-le"))
    no_bom_be = write(tmp_path / "be.jsonl", '{"text": "x"}\n'.encode("utf-16-be"))
    broken = write(tmp_path / "broken.txt", b"\xff\xfe" + "Title\n\nBody".encode("utf-16-le")[:-1])

    result = read_articles([tmp_path])

    assert result.articles == ()
    assert reasons_by_source(result) == {
        str(no_bom_be): "UTF-16 BE text without a byte-order mark: save it as UTF-8",
        str(broken): "starts with a UTF-16 byte-order mark but is not UTF-16 text (at position 22)",
        str(no_bom_le): "UTF-16 LE text without a byte-order mark: save it as UTF-8",
    }


def test_a_bad_utf8_line_in_an_export_skips_that_line_only(tmp_path: Path) -> None:
    rows = write(
        tmp_path / "rows.jsonl",
        b'{"id": "a", "title": "A", "text": "First."}\n'
        b'{"id": "b", "title": "B", "text": "Caf\xe9."}\n'
        b'{"id": "c", "title": "C", "text": "Third."}\n',
    )

    result = read_articles([rows])

    assert [a.article_id for a in result.articles] == ["a", "c"]
    assert result.skipped == (
        SkippedFile(f"{rows}#line 2", "not UTF-8 text (byte 0xe9 at position 38)"),
    )


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (and would read as binary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def test_files_over_the_size_limit_are_skipped_before_they_are_read(tmp_path: Path) -> None:
    from rag.ingest import MAX_ARTICLE_MB, MAX_PAGE_MB

    assert (MAX_ARTICLE_MB, MAX_PAGE_MB) == (5, 10)
    big_text = sparse_file(tmp_path / "big.txt", 50_000_000)
    big_page = sparse_file(tmp_path / "big.html", 10_000_001)
    write(tmp_path / "good.md", GOOD_MD)

    result = read_articles([tmp_path])

    assert [a.article_id for a in result.articles] == ["good"]
    assert reasons_by_source(result) == {
        str(big_page): "file is 10.0 MB; the limit for one HTML page is 10 MB",
        str(big_text): "file is 50.0 MB; the limit for one article is 5 MB"
        " (a .jsonl or .csv export may hold many)",
    }


def test_an_export_is_read_row_by_row_with_a_limit_for_each_row(tmp_path: Path) -> None:
    three_mb = "Word " * 600_000
    rows = [
        {"id": "big-1", "title": "Big one", "text": three_mb},
        {"id": "too-big", "title": "Too big", "text": three_mb * 2},
        {"id": "big-2", "title": "Big two", "text": three_mb},
    ]
    export = write(tmp_path / "rows.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    table = write(tmp_path / "rows.csv", f"id,title,text\nc1,C,{three_mb}\nc2,D,{three_mb * 2}\n")

    result = read_articles([export, table])

    assert export.stat().st_size > 10_000_000  # bigger than any one article may be
    assert [a.article_id for a in result.articles] == ["big-1", "big-2", "c1"]
    assert result.skipped == (
        SkippedFile(f"{export}#line 2", "line is 6.0 MB; the limit for one article is 5 MB"),
        SkippedFile(f"{table}#row 2", "row is 6.0 MB; the limit for one article is 5 MB"),
    )
    too_long = r"article text is 6\.0 MB; the limit for one article is 5 MB$"
    with pytest.raises(CorpusError, match=too_long):
        article_from_record({"id": "x", "title": "X", "text": three_mb * 2}, "POST body")


@pytest.mark.parametrize("bad_id", [".", "..", "...", "a/b", "a?b", "a#b", "a%2Fb", "a b", ""])
def test_ids_that_cannot_be_a_url_path_segment_are_refused(tmp_path: Path, bad_id: str) -> None:
    md = write(tmp_path / "a.md", f"---\nid: '{bad_id}'\ntitle: T\n---\nBody.")
    rows = write(tmp_path / "rows.jsonl", json.dumps({"id": bad_id, "title": "T", "text": "B"}))

    result = read_articles([md, rows])

    if bad_id == "":  # no id given: one is made up from the file name and the row
        assert len(result.articles) == 2
        return
    assert result.articles == ()
    for skipped in result.skipped:
        assert skipped.reason.startswith(f"bad id {bad_id!r} (")
    with pytest.raises(CorpusError, match="bad id"):
        article_from_record({"id": bad_id, "title": "T", "text": "Body."}, "POST body")


@pytest.mark.parametrize("good_id", ["a.b", ".hidden", "v1..2", "-", "_"])
def test_ids_with_dots_among_other_characters_are_kept(tmp_path: Path, good_id: str) -> None:
    article = article_from_record({"id": good_id, "title": "T", "text": "Body."}, "POST body")
    assert article.article_id == good_id
