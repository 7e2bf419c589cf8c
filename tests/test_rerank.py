"""Reranking retrieved passages by the answer judge (the deterministic overlap judge here)."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.errors import SettingsError
from rag.rerank import rerank
from rag.schema import Passage
from tests.conftest import OverlapJudge


def passage(chunk_id: str, text: str, score: float) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        article_id=chunk_id,
        text=text,
        title=f"Title {chunk_id}",
        author="",
        date="2025-06-05",
        publisher="",
        url="",
        start=0,
        end=len(text),
        score=score,
    )


FUSED = [
    passage("topic", "The European Union talks about technology all the time these days.", 0.9),
    passage("other", "Brussels hosted a summit about digital rules and many other things.", 0.8),
    passage("answer", "The strategy was published by the Commission on June 5 in Brussels.", 0.7),
]


def test_the_passage_holding_the_answering_sentence_comes_first() -> None:
    ranked = rerank(OverlapJudge(), "When was the strategy published by the Commission?", FUSED, 2)
    assert [p.chunk_id for p in ranked] == ["answer", "topic"]


def test_the_fused_order_breaks_ties_and_k_cuts() -> None:
    ranked = rerank(OverlapJudge(), "Nothing in common here?", FUSED, 3)
    assert [p.chunk_id for p in ranked] == ["topic", "other", "answer"]
    assert rerank(OverlapJudge(), "anything", FUSED[:1], 5) == FUSED[:1]
    assert rerank(OverlapJudge(), "anything", [], 5) == []


def test_rerank_depth_is_validated() -> None:
    assert Settings(rerank_depth=0).rerank_depth == 0
    with pytest.raises(SettingsError, match="rerank_depth"):
        Settings(rerank_depth=-1)
