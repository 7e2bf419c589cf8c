"""Tests for JSON Lines exports (``rag.readers.jsonl``).

Fast and offline: no model, no network. Generated files go to ``tmp_path`` only.
"""

from __future__ import annotations

from rag.ingest import (
    read_articles,
    read_file,
)
from tests.test_ingest import (
    ARTICLES,
)

# --- exports ---------------------------------------------------------------------------------


def test_jsonl_reads_good_lines_and_reports_the_bad_one() -> None:
    path = ARTICLES / "wire.jsonl"

    result = read_articles([path])

    assert [(a.article_id, a.source) for a in result.articles] == [
        ("wire-001", f"{path}#line 1"),
        ("wire-002", f"{path}#line 2"),
    ]
    first, second = result.articles
    assert first.text == (
        "Union leaders called off Friday's rail strike after a late pay offer."
        "\n\nTrains will run to the normal timetable."
    )
    assert (first.date, second.date) == ("2025-05-30", "2025-05-31")
    assert second.text.startswith("The central library")  # "body" is an alias of "text"
    assert [s.source for s in result.skipped] == [f"{path}#line 3"]
    assert result.skipped[0].reason.startswith("invalid JSON")
    assert [a.article_id for a in read_file(path)] == ["wire-001", "wire-002"]
