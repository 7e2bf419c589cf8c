"""Tests for Records of fields (``rag.readers.records``): the outlet from a URL's host.

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest import (
    publisher_from_url,
    read_articles,
)
from tests.test_ingest import (
    only_article,
    write,
)


@pytest.mark.parametrize(
    ("url", "publisher"),
    [
        ("http://www.bbc.co.uk/news/world-europe-38943467", "BBC"),
        ("https://www.bbc.com/news/articles/c0", "BBC"),
        ("http://www.cnn.com/2017/02/07/politics/betsy-devos/index.html", "CNN"),
        ("https://edition.cnn.com/2017/03/01/x", "CNN"),
        ("http://www.aljazeera.com/news/2017/03/x.html", "Al Jazeera"),
        ("http://abcnews.go.com/Politics/pence/story?id=45310061", "ABC News"),
        ("https://www.rte.ie/news/2017/0301/x/", "RTÉ"),
        ("http://www.huffingtonpost.com/entry/x_us_58a", "HuffPost"),
        ("https://www.huffingtonpost.co.uk/entry/x", "HuffPost"),
        ("http://www.dw.com/en/x/a-37", "DW"),
        ("http://europe.chinadaily.com.cn/world/2017-03/01/content_1.htm", "China Daily"),
        ("http://tass.com/world/933000", "TASS"),
        ("https://www.reuters.com/world/x", "Reuters"),
        ("https://WWW.NYTimes.com./2017/x.html", "The New York Times"),
        ("https://www.theguardian.com/world/x", "The Guardian"),
        ("https://www.irishnews.example.org/x", ""),
        ("https://www.local-gazette.co.uk/2017/x", "local-gazette.co.uk"),
        ("https://blog.local-gazette.co.uk:8443/x", "blog.local-gazette.co.uk"),
        ("https://go.com/x", "go.com"),  # abcnews.go.com is ABC News, go.com is not
        ("http://news.example/harbour-ferry", ""),
        ("http://localhost:8000/a", ""),
        ("https://www.example.com/a", ""),
        ("", ""),
        ("not a url", ""),
        ("http://[::1/broken", ""),
    ],
)
def test_publisher_from_url_names_news_outlets_else_the_bare_host(url: str, publisher: str) -> None:
    assert publisher_from_url(url) == publisher


def test_export_rows_without_publisher_get_one_from_the_url(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "feed.jsonl",
        '{"id": "a", "title": "A", "url": "http://www.bbc.co.uk/news/a", "text": "One."}\n'
        '{"id": "b", "title": "B", "url": "http://www.bbc.co.uk/news/b",'
        ' "publisher": "BBC World Service", "text": "Two."}\n'
        '{"id": "c", "title": "C", "text": "Three."}\n',
    )
    csv_file = write(
        tmp_path / "export.csv",
        "article_id,publish_date,article_source_link,title,subtitle,text\n"
        "1,2017/2/7,http://europe.chinadaily.com.cn/world/x.htm,Title,Sub,Text one.\n"
        "2,2017/2/8,https://www.smalltown-herald.com/x,Other,,Text two.\n",
    )

    result = read_articles([jsonl, csv_file])

    assert [(a.article_id, a.publisher) for a in result.articles] == [
        ("a", "BBC"),
        ("b", "BBC World Service"),  # a given publisher is kept
        ("c", ""),  # no URL, no publisher
        ("1", "China Daily"),
        ("2", "smalltown-herald.com"),
    ]


def test_publisher_from_url_does_not_touch_front_matter_articles(tmp_path: Path) -> None:
    page = write(tmp_path / "a.md", "---\ntitle: T\nurl: https://www.cnn.com/a\n---\nBody.")

    assert only_article(page).publisher == ""
