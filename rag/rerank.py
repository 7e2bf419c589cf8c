"""Rerank retrieved passages by the answer judge: the passage holding the answering sentence
comes first.

Retrieval ranks passages by how much they resemble the question (words, one vector per
chunk). In an archive of thousands of articles many passages resemble it; few answer it. So
for a fact question ``rerank`` takes the fused top ``rerank_depth`` passages, lets the trained
answer judge (``rag.judge``) score every candidate sentence in them as one set, and orders the
passages by their best sentence's score, with the fused rank as a small prior that also
breaks ties. The judge reads the vectors ingest stored for those sentences (``rag.vectors``),
so this costs a few milliseconds, not an embedding per sentence.

This module does not retrieve, choose quotes or decide whether to answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.extract import candidates
from rag.judge import AnswerJudge
from rag.schema import Passage

# The fused rank's weight: the 1st passage gets this much over the last before the judge's
# scores (probabilities in 0..1) are added. Tuned on the squad-train dev articles (depth 10,
# 20, 30 x prior 0 to 0.4, train/rerank_sweep.py; support hit@5 0.871 fused -> 0.915 at
# depth 20, prior 0.2): the judge alone reorders too eagerly when it is unsure.
PRIOR_WEIGHT = 0.2


def rerank(
    judge: AnswerJudge,
    query: str,
    passages: Sequence[Passage],
    k: int,
    prior: float = PRIOR_WEIGHT,
) -> list[Passage]:
    """The ``k`` best of ``passages`` (fused order in), best first by judge + ``prior``."""
    if len(passages) <= 1:
        return list(passages[:k])
    pool = candidates(passages)
    best: dict[str, float] = {}
    if pool:
        scores = judge.score(query, [c.judge_text for c in pool])
        for candidate, score in zip(pool, scores, strict=True):
            chunk_id = candidate.passage.chunk_id
            best[chunk_id] = max(best.get(chunk_id, 0.0), float(score))
    n = len(passages)

    def value(i: int) -> float:
        return best.get(passages[i].chunk_id, 0.0) + prior * (1.0 - i / (n - 1))

    order = sorted(range(n), key=value, reverse=True)
    return [passages[i] for i in order[:k]]
