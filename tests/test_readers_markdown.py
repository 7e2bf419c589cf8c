"""Tests for Markdown (``rag.readers.markdown``), and the front matter and dates it shares with
other formats (``rag.readers.fields``).

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import CorpusError
from rag.ingest import (
    SkippedFile,
    read_articles,
    read_file,
)
from rag.schema import Article
from tests.test_ingest import (
    ARTICLES,
    only_article,
    write,
)

# --- Markdown --------------------------------------------------------------------------------


def test_markdown_front_matter_round_trip() -> None:
    article = only_article(ARTICLES / "solar-farm.md")

    assert article == Article(
        article_id="solar-farm-2025",
        title="Valley Solar Farm Opens After Two-Year Delay",
        text=(
            "The Valley Solar Farm began feeding power into the regional grid on Monday, two"
            " years later than planned, after a dispute over its grid connection was settled."
            "\n\nWhat it supplies"
            "\n\nIts 48,000 panels are expected to supply about 9,000 homes a year, the operator"
            " said. “It was worth the wait,” said site manager Lena Ortiz."
            "\n\ncapacity: 21 MW"
        ),
        author="Priya Nair, Tom Becker",
        date="2025-06-03",
        publisher="Midland Courier",
        url="https://courier.example/2025/06/valley-solar-farm",
        source=str(ARTICLES / "solar-farm.md"),
    )


def test_markdown_title_from_first_heading_else_file_stem(tmp_path: Path) -> None:
    with_heading = write(
        tmp_path / "a.md", "Intro line.\n\n# The Real Title\n\nBody with *emphasis* and `code`."
    )
    without_heading = write(tmp_path / "quiet-news-day.md", "Nothing much happened today.")

    article = only_article(with_heading)
    assert article.title == "The Real Title"
    assert article.text == "Intro line.\n\nBody with emphasis and code."
    assert only_article(without_heading).title == "quiet-news-day"


def test_markdown_structure_is_reduced_to_prose(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.md",
        "Setext Title\n============\n\nA *soft*\nwrapped line.\n\n- item one\n- item two\n\n"
        "> quoted [link][r] text\n\n[r]: http://x.example\n\n---\n\nSub\n---\n\nEnd.\n",
    )

    article = only_article(path)
    assert article.title == "Setext Title"
    assert article.text == (
        "A soft wrapped line.\n\n- item one\n- item two\n\nquoted link text\n\nSub\n\nEnd."
    )


def test_markdown_keeps_snake_case_and_escaped_marks(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "# T\n\nThe file_name_here costs 5 \\* 3 __units__.")

    assert only_article(path).text == "The file_name_here costs 5 * 3 units."


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2025-06-05", "2025-06-05"),
        ("'2025-06-05'", "2025-06-05"),
        ("June 5, 2025", "2025-06-05"),
        ("Jun 5, 2025", "2025-06-05"),
        ("Jun. 5, 2025", "2025-06-05"),
        ("5 June 2025", "2025-06-05"),
        ("Thursday, June 5th, 2025", "2025-06-05"),
        ("2025-06-05T10:30:00+02:00", "2025-06-05"),
        ("2016-12-01 16:35:00", "2016-12-01"),
        ("2017/2/7", "2017-02-07"),
    ],
)
def test_dates_are_normalised_to_iso(tmp_path: Path, written: str, expected: str) -> None:
    path = write(tmp_path / "a.md", f"---\ntitle: T\ndate: {written}\n---\nBody text.")

    assert only_article(path).date == expected


def test_bad_date_skips_the_file_with_a_reason_naming_it(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad-date.md", "---\ntitle: T\ndate: sometime in June\n---\nBody.")
    good = write(tmp_path / "good.md", "---\ntitle: G\n---\nBody.")

    result = read_articles([tmp_path])

    assert [a.source for a in result.articles] == [str(good)]
    assert result.skipped == (
        SkippedFile(str(bad), "bad date 'sometime in June' (use YYYY-MM-DD, or e.g. June 5, 2025)"),
    )
    with pytest.raises(CorpusError, match=r"bad-date\.md: bad date 'sometime in June'"):
        read_file(bad)


def test_front_matter_id_must_be_a_plain_token(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "---\nid: has spaces/and slashes\n---\nBody.")

    result = read_articles([path])

    assert result.articles == ()
    assert result.skipped[0].reason.startswith("bad id 'has spaces/and slashes'")


def test_numbers_in_front_matter_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "---\nid: 0123\ntitle: No\n---\nBody.")

    article = only_article(path)
    assert (article.article_id, article.title) == ("0123", "No")
