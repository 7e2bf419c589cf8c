"""Tests for Plain text and pages copied from the web (``rag.readers.plain_text``).

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_ingest import (
    RAW_SEED,
    SEED_FIRST_PARAGRAPH,
    SEED_LAST_PARAGRAPH,
    only_article,
    write,
)

# --- plain text: pages copied from the web ---------------------------------------------------


def test_raw_seed_page_is_stripped_of_site_furniture() -> None:
    article = only_article(RAW_SEED)

    assert article.article_id == "46ce722664604c9f"
    assert article.title == "Why Europe Should Double Down On Its Global Tech Ties"
    assert (article.author, article.date) == ("Mark Scott", "2025-06-05")
    paragraphs = article.text.split("\n\n")
    assert paragraphs[0] == SEED_FIRST_PARAGRAPH
    assert paragraphs[-1] == SEED_LAST_PARAGRAPH
    assert "digital issues,,” said Kaja Kallas" in article.text  # the source's typo stays
    for furniture in (
        "Home",
        "Donate",
        "Perspective",
        "Related",
        "Topics",
        "Authors",
        "Mark Scott / Jun 5, 2025",
        "Contributing Editor at Tech Policy Press. He is a senior resident fellow",
        "The European Union’s New Take on Tech: Make Europe Great Again",
        "Assessing the Trump Administration's About-Face on International Tech Policy",
    ):
        assert furniture not in article.text
    assert article.text.count("Why Europe Should Double Down") == 0


def test_web_page_cleaner_is_general_and_keeps_article_lines(tmp_path: Path) -> None:
    page = write(
        tmp_path / "port-strike.txt",
        "Skip to main content\nMenu\nWorld\nSign in\n"
        "We use cookies to give you the best experience on our site.\n\n"
        "Port Strike Ends\n\n"
        "By Ana Ruiz | 12 March 2024\n\n"
        "Dock workers returned to work on Tuesday after a nine-day strike over pay.\n\n"
        "What changes\n\n"
        "The agreement runs for three years.\n\n"
        "It ends.\n\n"
        "Share\nSubscribe\n\nRelated\nFerry fares to rise in April\n",
    )

    article = only_article(page)

    assert (article.title, article.author, article.date) == (
        "Port Strike Ends",
        "Ana Ruiz",
        "2024-03-12",
    )
    assert article.text == (
        "Dock workers returned to work on Tuesday after a nine-day strike over pay."
        "\n\nWhat changes\n\nThe agreement runs for three years.\n\nIt ends."
    )


def test_plain_text_without_furniture_uses_first_line_as_title(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "Council Budget Agreed\n\nFirst point.\n\nSecond point.")

    article = only_article(path)
    assert article.title == "Council Budget Agreed"
    assert article.text == "First point.\n\nSecond point."
    assert article.article_id == "notes"


def test_plain_text_with_front_matter_is_kept_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.txt",
        "---\ntitle: Given Title\nauthor: A. Writer\n---\nHome\n\nThe *stars* stay as text.",
    )

    article = only_article(path)
    assert (article.title, article.author) == ("Given Title", "A. Writer")
    assert article.text == "Home\n\nThe *stars* stay as text."
