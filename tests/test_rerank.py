"""Reranking retrieved passages by the answer judge (the deterministic overlap judge here)."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.errors import SettingsError
from rag.rerank import rerank
from tests.conftest import OverlapJudge
from tests.test_cite import passage

FUSED = [
    passage("topic", "The European Union talks about technology all the time these days.", "topic"),
    passage(
        "other", "Brussels hosted a summit about digital rules and many other things.", "other"
    ),
    passage(
        "answer", "The strategy was published by the Commission on June 5 in Brussels.", "answer"
    ),
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
