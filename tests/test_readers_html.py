"""Tests for HTML pages (``rag.readers.html``): boilerplate left out, meta tags as fallbacks, deep
nesting.

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_ingest import (
    ARTICLES,
    only_article,
    write,
)

# --- HTML ------------------------------------------------------------------------------------


def test_html_boilerplate_is_left_out() -> None:
    article = only_article(ARTICLES / "harbour-flood-wall.html")

    assert article.title == "Harbour Council Approves Flood Wall"
    assert (article.author, article.date, article.publisher) == (
        "Jane Doe",
        "2024-03-14",
        "The Coastal Gazette",
    )
    assert article.url == "https://gazette.example/news/harbour-flood-wall"
    assert article.text.startswith("The harbour council voted seven to two on Wednesday")
    assert "“We cannot wait for another storm,” said councillor Amira Hassan" in article.text
    for boilerplate in (
        "Home",
        "Sport",
        "Subscribe now",
        "Related stories",
        "Fishing fleet faces new quotas",
        "Share on Twitter",
        "Copyright",
        "Privacy policy",
        "Cookie settings",
    ):
        assert boilerplate not in article.text


def test_html_meta_tags_fill_in_missing_metadata(tmp_path: Path) -> None:
    page = write(
        tmp_path / "page.html",
        "<html><head><title>Tram Line Approved</title>"
        '<meta name="author" content="Kim Lee">'
        '<meta property="og:site_name" content="City Post">'
        "</head><body><article><p>The city approved a new tram line on Monday. Work begins"
        " next year and will take three years.</p></article></body></html>",
    )

    article = only_article(page)
    assert (article.title, article.author, article.publisher) == (
        "Tram Line Approved",
        "Kim Lee",
        "City Post",
    )
    assert article.text == (
        "The city approved a new tram line on Monday. Work begins next year and will take"
        " three years."
    )


def nested_page(depth: int) -> str:
    return (
        "<html><head><title>Deep Page</title></head><body>"
        + "<div>" * depth
        + "<p>The harbour council voted seven to two on Wednesday to build the flood wall.</p>"
        + "</div>" * depth
        + "</body></html>"
    )


@pytest.mark.parametrize("depth", [10, 300, 5000])
def test_a_deeply_nested_html_paragraph_is_read(tmp_path: Path, depth: int) -> None:
    page = write(tmp_path / "deep.html", nested_page(depth))

    article = only_article(page)

    assert article.title == "Deep Page"
    assert article.text == (
        "The harbour council voted seven to two on Wednesday to build the flood wall."
    )


def test_removing_deep_tags_keeps_a_shallow_page_as_written() -> None:
    from rag.readers.html import _without_deep_tags

    page = (ARTICLES / "harbour-flood-wall.html").read_text(encoding="utf-8")
    assert _without_deep_tags(page) == page
    deep = _without_deep_tags(nested_page(5000), max_depth=4)
    assert deep.count("<div>") == deep.count("</div>") == 2  # html, body and two divs
    assert "<p>" not in deep and "voted seven to two" in deep
