"""Query benchmark: answer latency and serving memory on the whole news corpus.

    python -m bench.query [--articles all] [--questions 200] [--device cpu] [--out results.json]

Indexes the news corpus (plus the seed article) with this project and with the tutorial
LangChain pipeline, both cached under ``bench/.cache/`` so reruns skip the long ingest (ours
is re-ingested every run, which costs only the unchanged-corpus check; the baseline is rebuilt
only when its cache is missing). Then, each in its own process, after warming up:

- ours: p50/p95 of retrieval alone (``assistant.retriever().search(q)``) and of a full
  extractive answer (``assistant.ask(q)``), per-stage timings, peak RSS of that serving
  process, and a cProfile of the full-answer loop over a separate set of questions;
- baseline: p50/p95 of ``Chroma.similarity_search(q, k=5)`` on the baseline index.

Questions are article headlines, spread evenly over the corpus; "hit@5" is the share whose
own article is among the five passages returned (a sanity check, not a quality benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE,
    code_state,
    emit,
    machine_note,
    news_rows,
    peak_rss_mb,
    percentile,
    quiet_transformers,
    run_child,
    seed_paths,
    write_news_csv,
)
from bench.ingest import _baseline_documents, _print_profile

TARGET_P50_MS = 100.0
TARGET_P95_MS = 250.0
TARGET_RSS_MB = 1536.0
WARMUP_QUESTIONS = 10


def _questions(limit: int | None, count: int, extra: int) -> list[dict[str, str]]:
    """``count + extra + WARMUP_QUESTIONS`` headlines spread evenly over the first ``limit``
    articles: measured first, then those for the profile, then warm-up ones."""
    _, rows = news_rows(limit)
    usable = [r for r in rows if r[3].strip() and r[5].strip()]
    wanted = count + extra + WARMUP_QUESTIONS
    step = max(len(usable) / wanted, 1.0)
    picked = [usable[int(i * step)] for i in range(min(wanted, len(usable)))]
    return [{"q": " ".join(r[3].split()), "article_id": r[0]} for r in picked]


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": sum(values) / len(values),
        "max": max(values),
    }


# -- children ----------------------------------------------------------------------------------


def _child_build_ours(paths: list[Path], data_dir: Path, device: str) -> dict[str, Any]:
    from rag.assistant import Assistant
    from rag.config import Settings

    assistant = Assistant.open(
        Settings.from_env(os.environ).replace(data_dir=data_dir, device=device)
    )
    started = time.perf_counter()
    report = assistant.ingest(paths, progress=False)
    return {
        "seconds": time.perf_counter() - started,
        "chunks_embedded": report.chunks_embedded,
        "total_chunks": report.total_chunks,
        "articles": report.articles_added + report.articles_unchanged + report.articles_updated,
        "peak_rss_mb": peak_rss_mb(),
    }


def _child_build_baseline(paths: list[Path], data_dir: Path, device: str) -> dict[str, Any]:
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.embed import packaged_model_path

    quiet_transformers()
    embeddings = HuggingFaceEmbeddings(
        model_name=str(packaged_model_path()), model_kwargs={"device": device}
    )
    started = time.perf_counter()
    docs = _baseline_documents(paths)
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        docs
    )
    Chroma.from_documents(chunks, embeddings, persist_directory=str(data_dir))
    return {"seconds": time.perf_counter() - started, "total_chunks": len(chunks)}


def _child_serve_ours(
    questions_file: Path, data_dir: Path, device: str, count: int
) -> dict[str, Any]:
    started = time.perf_counter()
    from rag.assistant import Assistant
    from rag.config import Settings

    items = json.loads(questions_file.read_text("utf-8"))
    measured, profiled = items[:count], items[count:-WARMUP_QUESTIONS]
    warmup = items[-WARMUP_QUESTIONS:]

    assistant = Assistant.open(
        Settings.from_env(os.environ).replace(data_dir=data_dir, device=device)
    )
    assistant.warm_up()
    for item in warmup:
        assistant.ask(item["q"])
    ready_s = time.perf_counter() - started

    # Count what each ask() hands the embedder (bench-only wrapper on the instance): the query,
    # then the candidate sentences the answerer has not embedded before.
    calls: list[tuple[int, float]] = []
    inner = assistant.embedder.embed

    def counting_embed(texts: Any) -> Any:
        t = time.perf_counter()
        vectors = inner(texts)
        calls.append((len(texts), (time.perf_counter() - t) * 1000.0))
        return vectors

    assistant.embedder.embed = counting_embed  # type: ignore[method-assign]
    answer_ms, refused = [], 0
    stages: dict[str, list[float]] = {}
    sentence_texts, sentence_ms = [], []
    for item in measured:
        calls.clear()
        t = time.perf_counter()
        answer = assistant.ask(item["q"])
        answer_ms.append((time.perf_counter() - t) * 1000.0)
        refused += answer.refused
        for stage, ms in answer.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
        later = calls[1:]  # calls[0] embeds the query
        sentence_texts.append(float(sum(n for n, _ in later)))
        sentence_ms.append(sum(ms for _, ms in later))
    assistant.embedder.embed = inner  # type: ignore[method-assign]

    # Retrieval alone, after the answers (which must each embed their question: the int8
    # embedder remembers recent texts for the answer judge). The same questions lower-cased:
    # all-MiniLM-L6-v2's tokenizer and BM25 lower-case anyway, so the passages are the same,
    # but no vector is reused from the answers.
    retrieval_ms, hits = [], 0
    for item in measured:
        t = time.perf_counter()
        result = assistant.retriever().search(item["q"].lower())
        retrieval_ms.append((time.perf_counter() - t) * 1000.0)
        hits += any(p.article_id == item["article_id"] for p in result.passages)
    rss = peak_rss_mb()

    if profiled:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        for item in profiled:
            assistant.ask(item["q"])
        profiler.disable()
        _print_profile(profiler, f"ours: assistant.ask over {len(profiled)} other headlines")

    return {
        "startup_s": ready_s,
        "chunks": assistant.store.count(),
        "questions": len(measured),
        "retrieval_ms": _stats(retrieval_ms),
        "answer_ms": _stats(answer_ms),
        "stage_p50_ms": {s: percentile(v, 50) for s, v in stages.items()},
        "stage_p95_ms": {s: percentile(v, 95) for s, v in stages.items()},
        "sentences_embedded_per_ask": _stats(sentence_texts),
        "sentence_embed_ms_per_ask": _stats(sentence_ms),
        "sentence_embed_share": sum(sentence_ms) / sum(answer_ms),
        "hit_at_5": hits / len(measured),
        "answered": 1.0 - refused / len(measured),
        "peak_rss_mb": rss,
    }


def _child_serve_baseline(
    questions_file: Path, data_dir: Path, device: str, count: int
) -> dict[str, Any]:
    started = time.perf_counter()
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings

    from rag.embed import packaged_model_path

    items = json.loads(questions_file.read_text("utf-8"))
    measured, warmup = items[:count], items[-WARMUP_QUESTIONS:]
    quiet_transformers()
    embeddings = HuggingFaceEmbeddings(
        model_name=str(packaged_model_path()), model_kwargs={"device": device}
    )
    store = Chroma(persist_directory=str(data_dir), embedding_function=embeddings)
    for item in warmup:
        store.similarity_search(item["q"], k=5)
    ready_s = time.perf_counter() - started

    search_ms, hits = [], 0
    for item in measured:
        t = time.perf_counter()
        docs = store.similarity_search(item["q"], k=5)
        search_ms.append((time.perf_counter() - t) * 1000.0)
        hits += any(d.metadata.get("id") == item["article_id"] for d in docs)
    return {
        "startup_s": ready_s,
        "chunks": store._collection.count(),
        "search_ms": _stats(search_ms),
        "hit_at_5": hits / len(measured),
        "peak_rss_mb": peak_rss_mb(),
    }


# -- parent ------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.query", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--articles", default="all", help="'all' or the first N news articles")
    parser.add_argument("--questions", type=int, default=200, help="measured questions (200)")
    parser.add_argument("--profile-questions", type=int, default=100, help="profiled questions")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--rebuild", action="store_true", help="drop the cached indexes first")
    parser.add_argument(
        "--child",
        choices=["build-ours", "build-baseline", "serve-ours", "serve-baseline"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--questions-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "build-ours":
        emit(_child_build_ours(args.paths, args.data_dir, args.device))
    elif args.child == "build-baseline":
        emit(_child_build_baseline(args.paths, args.data_dir, args.device))
    elif args.child == "serve-ours":
        emit(_child_serve_ours(args.questions_file, args.data_dir, args.device, args.questions))
    elif args.child == "serve-baseline":
        emit(_child_serve_baseline(args.questions_file, args.data_dir, args.device, args.questions))
    else:
        return _run(args)
    return 0


def _run(args: argparse.Namespace) -> int:
    limit = None if args.articles == "all" else int(args.articles)
    cache = CACHE / f"query-{args.articles}"
    if args.rebuild:
        shutil.rmtree(cache, ignore_errors=True)
    csv_path = cache / "news.csv"
    rows = write_news_csv(csv_path, limit)  # same bytes every run: the re-ingest is a no-op
    paths = [str(p) for p in (csv_path, *seed_paths())]
    ours_dir, base_dir = cache / "ours", cache / "baseline"
    print(
        f"query benchmark: {rows} news articles + {len(paths) - 1} seed file(s),"
        f" device {args.device}"
    )
    print(f"machine: {machine_note()}")
    print(f"code: {code_state()}", flush=True)

    questions = _questions(limit, args.questions, args.profile_questions)
    questions_file = cache / "questions.json"
    questions_file.write_text(json.dumps(questions, indent=1), encoding="utf-8")
    count = min(args.questions, len(questions) - WARMUP_QUESTIONS)
    common = ["--device", args.device]

    build = run_child(
        "bench.query",
        [
            "--child",
            "build-ours",
            "--data-dir",
            str(ours_dir),
            *common,
            "--paths",
            *paths,
        ],
        "ours: ingest (incremental; a no-op when cached)",
    )
    marker = base_dir / "bench-built.json"
    if marker.is_file():
        base_build = json.loads(marker.read_text("utf-8"))
        base_build["cached"] = True
    else:
        shutil.rmtree(base_dir, ignore_errors=True)
        base_build = run_child(
            "bench.query",
            ["--child", "build-baseline", "--data-dir", str(base_dir), *common, "--paths", *paths],
            "baseline: Chroma.from_documents (cached afterwards)",
        )
        marker.write_text(json.dumps(base_build), encoding="utf-8")
        base_build["cached"] = False

    serve_args = ["--questions-file", str(questions_file), "--questions", str(count), *common]
    ours = run_child(
        "bench.query",
        ["--child", "serve-ours", "--data-dir", str(ours_dir), *serve_args],
        f"ours: serve {count} questions (+ profile)",
    )
    base = run_child(
        "bench.query",
        ["--child", "serve-baseline", "--data-dir", str(base_dir), *serve_args],
        f"baseline: serve {count} questions",
    )

    r, a, b = ours["retrieval_ms"], ours["answer_ms"], base["search_ms"]
    print()
    print(f"index: ours {ours['chunks']} chunks, baseline {base['chunks']} chunks")
    print(
        f"ours ingest this run: {build['seconds']:.1f} s, {build['chunks_embedded']} chunks"
        " embedded"
        + (" (cached index: the unchanged-corpus check)" if not build["chunks_embedded"] else "")
    )
    if not base_build.get("cached"):
        print(f"baseline build this run: {base_build['seconds']:.1f} s")
    print(f"{'latency (ms)':<34} {'p50':>8} {'p95':>8} {'mean':>8} {'max':>8}")
    for name, s in (
        ("ours: retriever().search(q)", r),
        ("ours: ask(q) (full answer)", a),
        ("baseline: similarity_search(k=5)", b),
    ):
        print(f"{name:<34} {s['p50']:>8.1f} {s['p95']:>8.1f} {s['mean']:>8.1f} {s['max']:>8.1f}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in ours["stage_p50_ms"].items())
    print(f"ours ask() stage p50 (ms): {stages}")
    n, e = ours["sentences_embedded_per_ask"], ours["sentence_embed_ms_per_ask"]
    print(
        f"ours ask(): answer sentences embedded per question p50 {n['p50']:.0f}, p95"
        f" {n['p95']:.0f}; their embedding p50 {e['p50']:.0f} ms, p95 {e['p95']:.0f} ms"
        f" = {ours['sentence_embed_share']:.0%} of all ask() time"
    )
    print(
        f"hit@5 (headline's own article in the 5 passages): ours {ours['hit_at_5']:.0%},"
        f" baseline {base['hit_at_5']:.0%}; ours answered {ours['answered']:.0%} (rest refused)"
    )
    print(
        f"serving peak RSS: ours {ours['peak_rss_mb']:.0f} MB,"
        f" baseline {base['peak_rss_mb']:.0f} MB; startup incl. warm-up:"
        f" ours {ours['startup_s']:.1f} s, baseline {base['startup_s']:.1f} s"
    )
    print()
    print(
        f"full answer p50 {a['p50']:.1f} ms (target <= {TARGET_P50_MS:.0f}:"
        f" {_verdict(a['p50'] <= TARGET_P50_MS)}), p95 {a['p95']:.1f} ms (target <="
        f" {TARGET_P95_MS:.0f}: {_verdict(a['p95'] <= TARGET_P95_MS)})"
    )
    print(
        f"serving RSS {ours['peak_rss_mb']:.0f} MB (target <= {TARGET_RSS_MB:.0f}:"
        f" {_verdict(ours['peak_rss_mb'] <= TARGET_RSS_MB)})"
    )
    print(
        f"ratios: ours retrieval p50 / baseline p50 = {r['p50'] / b['p50']:.2f};"
        f" ours full answer p50 / baseline retrieval p50 = {a['p50'] / b['p50']:.2f}"
    )
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_note(),
        "code": code_state(),
        "articles": rows,
        "device": args.device,
        "ours_ingest": build,
        "baseline_build": base_build,
        "ours": ours,
        "baseline": base,
    }
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
