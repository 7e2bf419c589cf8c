"""Fuse a dense and a lexical ranking of chunks into one.

``fuse_rankings`` is a pure function of the two ranked lists (chunk id, article id, score) and
``FusionParams``: weighted reciprocal rank fusion (or a convex mix of min-max normalised
scores), optionally with an article prior that lifts a chunk by the evidence the other chunks
of its article collected, or the opposite, each article's later chunks held back so that more
articles reach the top (``same_article_decay``, ``per_article``). ``HybridRetriever`` and
``train.fusion_sweep`` (which chose the defaults) both call it, so what was measured is what
runs. This module does not search, embed or read the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.errors import SettingsError

Ranked = Sequence[tuple[str, str, float]]  # (chunk id, article id, score), best first


@dataclass(frozen=True, slots=True)
class FusionParams:
    """How two rankings are fused.

    ``method`` is ``rrf`` (each list adds ``weight / (rrf_k + rank)``) or ``scores`` (each list's
    scores are min-max normalised, then mixed by the weights). ``depth`` is how much of each
    list is read. ``article_weight`` adds that share of the fused score of the article's
    other chunks in the pool (0: chunks compete alone). ``same_article_decay`` multiplies a
    chunk's score by itself once per chunk of its article ranked above it (1: no effect), and
    ``per_article`` moves an article's chunks after its first ``per_article`` behind every
    other chunk (0: no cap).
    """

    method: str = "rrf"
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    depth: int = 30
    article_weight: float = 0.0
    same_article_decay: float = 1.0
    per_article: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "scores"):
            raise SettingsError(f"fusion method must be rrf or scores, got {self.method!r}")
        if self.rrf_k < 0 or self.depth < 1:
            raise SettingsError("fusion needs rrf_k >= 0 and depth >= 1")
        weights = (self.dense_weight, self.lexical_weight, self.article_weight)
        if min(weights) < 0 or self.dense_weight + self.lexical_weight <= 0:
            raise SettingsError("fusion weights must be >= 0, and one retriever must count")
        if not 0.0 < self.same_article_decay <= 1.0 or self.per_article < 0:
            raise SettingsError("fusion needs 0 < same_article_decay <= 1 and per_article >= 0")


def fuse_rankings(dense: Ranked, lexical: Ranked, params: FusionParams) -> list[str]:
    """Chunk ids of both lists, best first, by ``params``."""
    return [cid for cid, _ in fused_scores(dense, lexical, params)]


def fused_scores(dense: Ranked, lexical: Ranked, params: FusionParams) -> list[tuple[str, float]]:
    """``(chunk id, fused score)`` for every chunk of both lists, best first."""
    score: dict[str, float] = {}
    article: dict[str, str] = {}
    for ranking, weight in ((dense, params.dense_weight), (lexical, params.lexical_weight)):
        ranking = ranking[: params.depth]
        if not ranking or weight == 0:
            continue
        if params.method == "rrf":
            parts = [weight / (params.rrf_k + rank) for rank in range(1, len(ranking) + 1)]
        else:
            values = [s for _, _, s in ranking]
            low, span = min(values), max(values) - min(values)
            parts = [weight * ((s - low) / span if span > 0 else 1.0) for s in values]
        for (cid, article_id, _), part in zip(ranking, parts, strict=True):
            score[cid] = score.get(cid, 0.0) + part
            article[cid] = article_id
    if params.article_weight:
        totals: dict[str, float] = {}
        for cid, value in score.items():
            totals[article[cid]] = totals.get(article[cid], 0.0) + value
        score = {
            cid: value + params.article_weight * (totals[article[cid]] - value)
            for cid, value in score.items()
        }
    ranked = sorted(score.items(), key=lambda item: item[1], reverse=True)
    if params.same_article_decay == 1.0 and not params.per_article:
        return ranked
    return _spread(ranked, article, params.same_article_decay, params.per_article)


def _spread(
    ranked: list[tuple[str, float]], article: dict[str, str], decay: float, cap: int
) -> list[tuple[str, float]]:
    """``ranked`` with each article's later chunks held back: a chunk's score times ``decay``
    per chunk of its article above it, and past an article's first ``cap`` chunks (when
    ``cap``), behind every chunk that is not. An article's own chunks keep their order."""
    seen: dict[str, int] = {}
    keyed: list[tuple[bool, float, int, str]] = []
    for order, (cid, value) in enumerate(ranked):
        above = seen.get(article[cid], 0)
        seen[article[cid]] = above + 1
        keyed.append((bool(cap) and above >= cap, value * decay**above, order, cid))
    keyed.sort(key=lambda item: (item[0], -item[1], item[2]))
    return [(cid, value) for _, value, _, cid in keyed]
