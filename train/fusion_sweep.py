"""Sweep how dense and BM25 rankings are fused, on questions asked of an archive.

``python -m train.fusion_sweep --data-dir .rag-archive-squad`` (``make fusion-sweep``) takes two
question sets, each split in two by article (``tune`` to choose on, ``val`` to report):

- **squad**: the answerable squad-train questions (``eval/squad-split.yaml``: train + dev
  articles are ``tune``, validation articles are ``val``), asked of an index holding those
  Wikipedia articles among the news archive; a hit is a passage containing the answer text.
- **news**: known-item questions over the news archive: an article's subtitle (or, without one,
  its headline) is asked and the article is expected; articles are split by a hash of their id.

It retrieves each question's dense and BM25 top ``--depth`` once, then fuses them offline in
every variant of ``VARIANTS`` and prints hit@5, MRR@5 and recall@20 (the pool the judge
reranks, ``rag.rerank``) per set as a Markdown table, plus ``--json``. The variants marked
``+ rerank`` then let the answer judge reorder their top ``rerank_depth`` as a fact question's
retrieval does (``Assistant._retrieve``). It reads the index and never writes it. It does not
tune the answer judge or the reranker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rag.analyze import lexical_query
from rag.assistant import Assistant
from rag.config import Settings
from rag.evaluate import _normal
from rag.fuse import FusionParams, fuse_rankings
from rag.rerank import PRIOR_WEIGHT, rerank
from rag.retrieve import fusion_params, passage_from_chunk

ROOT = Path(__file__).resolve().parent.parent
SQUAD_DIR = ROOT.parent / "shared" / "data" / "squad-train"


@dataclass(frozen=True, slots=True)
class Probe:
    """One question with what counts as finding it: a support text or a gold article."""

    qid: str
    question: str
    support: str = ""
    article: str = ""


@dataclass(slots=True)
class Retrieved:
    dense: list[tuple[str, str, float]]  # (chunk id, article id, cosine)
    lexical: list[tuple[str, str, float]]  # (chunk id, article id, bm25)


def squad_probes(squad_dir: Path, split_names: Sequence[str], limit: int) -> list[Probe]:
    sys.path.insert(0, str(ROOT / "eval"))
    import squad_subset

    split_file = ROOT / "eval" / "squad-split.yaml"
    articles = [a for name in split_names for a in squad_subset.load_split(split_file, name)]
    labels = squad_subset.load_labels(squad_dir / "labels.jsonl")
    questions = squad_subset.load_questions(squad_dir / "questions.yaml")
    chosen = squad_subset.select(questions, labels, articles, None)
    probes = [
        Probe(str(q["id"]), str(q["question"]), support=str(q["support"]))
        for q in chosen
        if q.get("answerable", True) and q.get("support")
    ]
    return _sample(probes, limit)


def news_probes(assistant: Assistant, news_csv: Path, half: int, limit: int) -> list[Probe]:
    """Known-item questions: the subtitle (or headline) of news articles of one hash half."""
    import csv

    by_url: dict[str, str] = {}
    with news_csv.open(encoding="utf-8", newline="") as rows:
        for row in csv.DictReader(rows):
            asked = (row.get("subtitle") or "").strip() or (row.get("title") or "").strip()
            url = (row.get("article_source_link") or "").strip()
            if asked and url:
                by_url.setdefault(url, asked)
    probes: dict[str, Probe] = {}
    for chunk in assistant.retriever().lexical.chunks:
        meta = chunk.metadata
        article_id, url = str(meta.get("article_id", "")), str(meta.get("url", ""))
        if article_id in probes or url not in by_url or _half(article_id) != half:
            continue
        probes[article_id] = Probe(f"news-{article_id}", by_url[url], article=article_id)
    return _sample(list(probes.values()), limit)


def _half(article_id: str) -> int:
    return hashlib.sha256(article_id.encode("utf-8")).digest()[0] % 2


def _sample(probes: list[Probe], limit: int) -> list[Probe]:
    if not limit or len(probes) <= limit:
        return probes
    key = {p.qid: hashlib.sha256(p.qid.encode("utf-8")).hexdigest() for p in probes}
    keep = set(sorted(key, key=key.__getitem__)[:limit])
    return [p for p in probes if p.qid in keep]


def retrieve_all(assistant: Assistant, probes: Sequence[Probe], depth: int) -> list[Retrieved]:
    retriever = assistant.retriever()
    out: list[Retrieved] = []
    for probe in probes:
        vector = assistant.embedder.embed([probe.question])[0]
        dense = [
            (h.chunk.chunk_id, str(h.chunk.metadata.get("article_id", "")), h.similarity)
            for h in retriever.store.query(vector, depth)
        ]
        lexical = [
            (h.chunk.chunk_id, str(h.chunk.metadata.get("article_id", "")), h.score)
            for h in retriever.lexical.search(lexical_query(probe.question), depth)
        ]
        out.append(Retrieved(dense, lexical))
    return out


def score(
    probes: Sequence[Probe],
    retrieved: Sequence[Retrieved],
    ranker: Callable[[Probe, Retrieved], list[str]],
    texts: Callable[[str], str],
    articles: dict[str, str],
) -> dict[str, float]:
    hits5 = mrr = hits20 = 0.0
    for probe, got in zip(probes, retrieved, strict=True):
        ranked = ranker(probe, got)[:20]
        rank = None
        for i, cid in enumerate(ranked, start=1):
            if probe.article:
                found = articles.get(cid) == probe.article
            else:
                found = _normal(probe.support) in _normal(texts(cid))
            if found:
                rank = i
                break
        if rank:
            hits20 += 1
            if rank <= 5:
                hits5 += 1
                mrr += 1.0 / rank
    n = len(probes) or 1
    return {"hit5": hits5 / n, "mrr": mrr / n, "recall20": hits20 / n}


# The variants also scored with the answer judge reranking their top ``rerank_depth``.
RERANKED = (
    "shipped (rag.config.Settings)",
    "dense only",
    "bm25 only",
    "rrf k=5 lex=1.5 depth=50",
    "scores alpha=0.4 depth=20",
)


def variants(depth: int) -> dict[str, FusionParams]:
    """Every fusion tried, by name; the first is what ships."""
    found: dict[str, FusionParams] = {
        "shipped (rag.config.Settings)": fusion_params(Settings().retrieval),
        "dense only": FusionParams(lexical_weight=0.0, depth=depth),
        "bm25 only": FusionParams(dense_weight=0.0, depth=depth),
        "rrf k=60 (old default)": FusionParams(rrf_k=60, depth=30),
    }
    for k in (5, 10, 20, 30, 60):
        for lex in (0.5, 0.75, 1.0, 1.5, 2.0):
            for d in (30, 50, 100):
                if d <= depth:
                    found[f"rrf k={k} lex={lex} depth={d}"] = FusionParams(
                        rrf_k=k, lexical_weight=lex, depth=d
                    )
    for alpha in (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.7):
        for d in (20, 30, 50, 100):
            if d <= depth:
                found[f"scores alpha={alpha} depth={d}"] = FusionParams(
                    method="scores", dense_weight=alpha, lexical_weight=1 - alpha, depth=d
                )
    for k in (10, 60):
        for boost in (0.05, 0.1, 0.25, 0.5):
            found[f"rrf k={k} + article {boost}"] = FusionParams(
                rrf_k=k, depth=min(depth, 100), article_weight=boost
            )
    for boost in (0.02, 0.05, 0.1):
        found[f"scores alpha=0.3 depth=30 + article {boost}"] = FusionParams(
            method="scores", dense_weight=0.3, lexical_weight=0.7, depth=30, article_weight=boost
        )
    # More articles at the top: each article's later chunks held back (rag.fuse._spread).
    shipped = found["shipped (rag.config.Settings)"]
    for base_name, base in (("shipped", shipped), ("bm25 only", found["bm25 only"])):
        for decay in (0.5, 0.7, 0.8, 0.9):
            found[f"{base_name} + same-article decay {decay}"] = replace(
                base, same_article_decay=decay
            )
        for cap in (1, 2):
            found[f"{base_name} + {cap} per article"] = replace(base, per_article=cap)
    for decay in (0.7, 0.8, 0.9):
        found[f"dense only + same-article decay {decay}"] = replace(
            found["dense only"], same_article_decay=decay
        )
    found["dense only + 1 per article"] = replace(found["dense only"], per_article=1)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.fusion_sweep", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".rag-archive-squad"))
    parser.add_argument("--news-csv", type=Path, default=Path(".rag-archive/news.csv"))
    parser.add_argument("--squad-dir", type=Path, default=SQUAD_DIR)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--limit", type=int, default=300, help="questions per set and half")
    parser.add_argument("--json", type=Path, help="also write every score here")
    parser.add_argument(
        "--cache", type=Path, help="keep the retrieved rankings in this file (and reuse them)"
    )
    parser.add_argument("--only", help="score only the variants whose name matches this regex")
    parser.add_argument(
        "--lexical", default=Settings().lexical, help="the BM25 backend (fts5, bm25s)"
    )
    parser.add_argument(
        "--rerank-depth",
        type=int,
        default=Settings().rerank_depth,
        help="how many fused passages the judge reorders in the '+ rerank' rows",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    assistant = Assistant.open(
        Settings(data_dir=args.data_dir, lexical=args.lexical, rerank_depth=args.rerank_depth)
    )
    chunks = assistant.retriever().lexical.chunks
    texts = {c.chunk_id: c.text for c in chunks}
    articles = {c.chunk_id: str(c.metadata.get("article_id", "")) for c in chunks}
    sets = {
        "squad tune": squad_probes(args.squad_dir, ("train", "dev"), args.limit),
        "squad val": squad_probes(args.squad_dir, ("validation",), args.limit),
        "news tune": news_probes(assistant, args.news_csv, 0, args.limit),
        "news val": news_probes(assistant, args.news_csv, 1, args.limit),
    }
    started = time.perf_counter()
    if args.cache and args.cache.exists():
        retrieved = pickle.loads(args.cache.read_bytes())
    else:
        retrieved = {n: retrieve_all(assistant, probes, args.depth) for n, probes in sets.items()}
        if args.cache:
            args.cache.write_bytes(pickle.dumps(retrieved))
    total = sum(len(p) for p in sets.values())
    print(f"retrieved {total} questions in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    by_id = {c.chunk_id: c for c in chunks}
    judge = assistant.judge()
    rerank_depth = assistant.settings.retrieval.rerank_depth

    def reranked(prior: float) -> Callable[[Probe, list[str]], list[str]]:
        def then(probe: Probe, fused: list[str]) -> list[str]:
            """What ``Assistant._retrieve`` does with a fact question's fused ranking."""
            pool = [passage_from_chunk(by_id[cid]) for cid in fused[:rerank_depth]]
            ranked = rerank(judge, probe.question, pool, len(pool), prior)
            return [p.chunk_id for p in ranked] + fused[rerank_depth:]

        return then

    results: dict[str, dict[str, dict[str, float]]] = {}
    found = variants(args.depth)
    runs: list[tuple[str, FusionParams, float | None]] = [(n, p, None) for n, p in found.items()]
    for name in RERANKED:
        # The pool a fact question is answered from is fused without the same-article decay
        # (``HybridRetriever.search(spread=False)``), as here.
        pool = replace(found[name], same_article_decay=1.0)
        for weight in (PRIOR_WEIGHT, 0.4):
            runs.append((f"{name} + rerank (prior {weight})", pool, weight))
    for name, params, prior in runs:
        if args.only and not re.search(args.only, name):
            continue
        results[name] = {
            set_name: score(
                sets[set_name],
                retrieved[set_name],
                _ranker(params, None if prior is None else reranked(prior)),
                texts.__getitem__,
                articles,
            )
            for set_name in sets
        }
        print(f"scored {name}", file=sys.stderr, flush=True)
    sizes = ", ".join(f"{name} {len(p)}" for name, p in sets.items())
    print(f"questions: {sizes}")
    print(_table(results, list(sets)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def _ranker(
    params: FusionParams, then: Callable[[Probe, list[str]], list[str]] | None
) -> Callable[[Probe, Retrieved], list[str]]:
    def rank(probe: Probe, got: Retrieved) -> list[str]:
        fused = fuse_rankings(got.dense, got.lexical, params)
        return then(probe, fused) if then else fused

    return rank


def _table(results: dict[str, dict[str, dict[str, float]]], set_names: list[str]) -> str:
    head = "| variant | " + " | ".join(f"{s} hit@5 / MRR / R@20" for s in set_names) + " |"
    rows = [head, "|---" * (len(set_names) + 1) + "|"]
    for name, by_set in results.items():
        cells = [
            f"{by_set[s]['hit5']:.3f} / {by_set[s]['mrr']:.3f} / {by_set[s]['recall20']:.3f}"
            for s in set_names
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
