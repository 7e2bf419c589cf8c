"""Sweep the reranker's depth and prior weight on a question set (the squad-train dev articles).

``python -m train.rerank_sweep --data-dir .rag-squad --questions .rag-squad/dev.yaml`` retrieves
the fused top 30 once per answerable question, then reranks the top 10, 20 and 30 with prior
weights 0 to 0.4 (``rag.rerank``) and prints the support hit@5 and MRR of each top 5, with the
fused top 5 as the baseline. This is how ``RAG_RERANK_DEPTH=20`` and ``PRIOR_WEIGHT=0.2`` were
chosen. It reads the index and never writes it.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import rag.rerank as rerank_module
from rag.assistant import Assistant
from rag.config import Settings
from rag.evaluate import EvalQuestion, load_questions, support_rank
from rag.schema import Passage

DEPTHS = (10, 20, 30)
PRIORS = (0.0, 0.05, 0.1, 0.2, 0.4)


def score(
    questions: Sequence[EvalQuestion], ranked: Mapping[str, Sequence[Passage]]
) -> tuple[float, float]:
    """Support hit@k and MRR of ``ranked`` (question id -> passages)."""
    ranks = [support_rank(ranked[q.id], q.support, q.sources) for q in questions]
    hits = sum(1 for r in ranks if r) / len(questions)
    mrr = sum(1.0 / r for r in ranks if r) / len(questions)
    return round(hits, 4), round(mrr, 4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.rerank_sweep", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".rag-squad"))
    parser.add_argument("--questions", type=Path, default=Path(".rag-squad/dev.yaml"))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="the first N questions only")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    assistant = Assistant.open(Settings(data_dir=args.data_dir))
    questions = [q for q in load_questions(args.questions) if q.answerable and not q.history]
    questions = questions[: args.limit] if args.limit else questions
    retriever, judge = assistant.retriever(), assistant.judge()
    started = time.perf_counter()
    deep = {q.id: retriever.search(q.question, k=max(DEPTHS)).passages for q in questions}
    print(f"retrieved {len(questions)} questions in {time.perf_counter() - started:.0f} s")
    print("fused", score(questions, {i: p[: args.k] for i, p in deep.items()}))
    for depth in DEPTHS:
        for prior in PRIORS:
            rerank_module.PRIOR_WEIGHT = prior
            started = time.perf_counter()
            ranked = {
                q.id: rerank_module.rerank(judge, q.question, deep[q.id][:depth], args.k)
                for q in questions
            }
            ms = (time.perf_counter() - started) / len(questions) * 1000
            print(f"depth {depth} prior {prior}", score(questions, ranked), f"{ms:.1f} ms/q")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
