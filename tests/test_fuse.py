"""Fusing a dense and a lexical ranking (rag.fuse)."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.errors import SettingsError
from rag.fuse import FusionParams, fuse_rankings, fused_scores
from rag.retrieve import fusion_params

DENSE = [("a", "A", 0.9), ("b", "B", 0.8), ("c", "C", 0.1)]
LEXICAL = [("c", "C", 30.0), ("b", "B", 20.0), ("d", "D", 2.0)]


def test_rrf_adds_each_lists_reciprocal_rank() -> None:
    scores = dict(fused_scores(DENSE, LEXICAL, FusionParams(method="rrf", rrf_k=0)))
    assert scores == pytest.approx({"a": 1.0, "b": 0.5 + 0.5, "c": 1 / 3 + 1.0, "d": 1 / 3})
    assert fuse_rankings(DENSE, LEXICAL, FusionParams(method="rrf", rrf_k=0))[0] == "c"


def test_score_fusion_mixes_min_max_normalised_scores() -> None:
    params = FusionParams(method="scores", dense_weight=0.25, lexical_weight=0.75)
    scores = dict(fused_scores(DENSE, LEXICAL, params))
    # dense: a 1, b 0.875, c 0; lexical: c 1, b 18/28, d 0
    assert scores["a"] == pytest.approx(0.25)
    assert scores["b"] == pytest.approx(0.25 * 0.875 + 0.75 * 18 / 28)
    assert scores["c"] == pytest.approx(0.75)
    assert scores["d"] == pytest.approx(0.0)
    assert fuse_rankings(DENSE, LEXICAL, params) == ["c", "b", "a", "d"]


def test_a_weight_of_zero_leaves_the_other_rankings_order() -> None:
    dense_only = FusionParams(method="scores", dense_weight=1.0, lexical_weight=0.0)
    assert fuse_rankings(DENSE, LEXICAL, dense_only)[:3] == ["a", "b", "c"]
    lexical_only = FusionParams(method="rrf", dense_weight=0.0, lexical_weight=1.0)
    assert fuse_rankings(DENSE, LEXICAL, lexical_only) == ["c", "b", "d"]


def test_depth_limits_how_much_of_each_list_is_read() -> None:
    assert set(fuse_rankings(DENSE, LEXICAL, FusionParams(depth=1))) == {"a", "c"}


def test_the_article_prior_lifts_a_chunk_by_its_articles_other_chunks() -> None:
    dense = [("x1", "X", 0.9), ("y1", "Y", 0.85), ("y2", "Y", 0.84), ("y3", "Y", 0.8)]
    plain = FusionParams(method="rrf", rrf_k=0, lexical_weight=0.0)
    assert fuse_rankings(dense, [], plain)[0] == "x1"
    lifted = FusionParams(method="rrf", rrf_k=0, lexical_weight=0.0, article_weight=1.0)
    assert fuse_rankings(dense, [], lifted)[0] == "y1"


SAME = [("x1", "X", 1.0), ("x2", "X", 0.9), ("x3", "X", 0.85), ("y1", "Y", 0.6)]


def test_a_same_article_decay_lets_another_article_past_an_articles_later_chunks() -> None:
    ranked = [("x1", "X", 1.0), ("x2", "X", 0.95), ("y1", "Y", 0.9)]
    decayed = FusionParams(method="rrf", rrf_k=0, lexical_weight=0.0, same_article_decay=0.5)
    # rrf: x1 1, x2 1/2 -> 1/4 (one of X above), y1 1/3
    assert fuse_rankings(ranked, [], decayed) == ["x1", "y1", "x2"]
    plain = FusionParams(method="rrf", rrf_k=0, lexical_weight=0.0)
    assert fuse_rankings(ranked, [], plain) == ["x1", "x2", "y1"]


def test_a_cap_per_article_puts_every_other_article_first_and_keeps_each_ones_order() -> None:
    capped = FusionParams(method="scores", lexical_weight=0.0, per_article=1)
    assert fuse_rankings(SAME, [], capped) == ["x1", "y1", "x2", "x3"]
    two = FusionParams(method="scores", lexical_weight=0.0, per_article=2)
    assert fuse_rankings(SAME, [], two) == ["x1", "x2", "y1", "x3"]


def test_one_list_with_equal_scores_still_counts() -> None:
    same = [("a", "A", 1.0), ("b", "B", 1.0)]
    assert dict(fused_scores(same, [], FusionParams(method="scores"))) == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "max"},
        {"rrf_k": -1},
        {"depth": 0},
        {"dense_weight": -0.1},
        {"dense_weight": 0.0, "lexical_weight": 0.0},
        {"same_article_decay": 0.0},
        {"same_article_decay": 1.5},
        {"per_article": -1},
    ],
)
def test_bad_fusion_params_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        FusionParams(**bad)  # type: ignore[arg-type]


def test_settings_choose_the_fusion() -> None:
    shipped = fusion_params(Settings())
    assert (shipped.method, shipped.dense_weight, shipped.lexical_weight) == (
        "scores",
        0.35,
        pytest.approx(0.65),
    )
    assert shipped.same_article_decay == 0.7 and not shipped.per_article
    rrf = fusion_params(Settings(fusion="rrf", rrf_k=10, candidates=40))
    assert (rrf.method, rrf.rrf_k, rrf.depth, rrf.dense_weight) == ("rrf", 10, 40, 1.0)
    with pytest.raises(SettingsError, match="fusion"):
        Settings(fusion="max")
    with pytest.raises(SettingsError, match="dense_weight"):
        Settings(dense_weight=1.5)
