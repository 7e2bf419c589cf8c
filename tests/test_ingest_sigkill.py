"""Fault injection: a real ``rag ingest`` SIGKILLed at random points, then run again, leaves
exactly the index a clean ingest builds.

Two versions of a few hundred small synthetic articles (seeded, so every run is the same)
take turns in one file: in the second a twentieth of the articles are edited (one paragraph
rewritten, so some chunks stay), a twentieth replaced by new ones (pruned and added), the rest
are unchanged. One data dir goes from nothing to the first version, then back and forth; each
step is a ``rag ingest --prune`` in a subprocess of its own process group, SIGKILLed at a
random time, then run again to completion. The same data dir is used throughout, so damage
could accumulate. A third of the kill times are drawn uniformly over 5-95% of an
uninterrupted run of that step; since those land mostly in the longest stage (the sentence
vectors), the others are drawn after the embedding bar shows, or after it reaches 100%
(committing, pruning, the BM25 copy), up to when the sentence-vector bar shows in an
uninterrupted run. Each kill's stage is read from the last progress line the run printed.

After each kill, readers see every article whole in one of its versions, or not at all, and
every article the step has no reason to touch. After each re-run, the Chroma store (chunk ids,
texts and metadata, shown and stored; no duplicates), the commit records, the BM25 copy (of
the store's current version) and the sentence-vector file equal those of a clean ingest of
that version, built once in a data dir of its own.

The real packaged model runs as the ``onnx-int8`` provider (four times faster than
sentence-transformers on these two busy cores) with 200-character chunks, so an article has
one to three chunks; the default answerer's sentence vectors are prepared, as in production.
Every kill is at a random time, not at a chosen write: ``test_index_recovery`` stops a run
in-process at each write in turn.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rag.config import Settings
from rag.embed import create_embedder
from rag.lexical import fts_path
from rag.lexical_fts import FtsIndex
from rag.stores.chroma import ChromaStore
from rag.vectors import VectorFile

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
KILLS = 20  # SIGKILLs that land in a running ingest; a run that ends first is not counted
ARTICLES = 200
SEED = 9
RUN_TIMEOUT_S = 300  # one ingest; a clean one of every article takes about 15 s here
WORDS = (
    "council budget vote mayor harbour bridge school teachers strike river flood police"
    " hospital nurses election candidate minister railway tunnel farmers drought festival"
    " museum court judge appeal factory workers union tax reform housing rent market prices"
    " energy wind solar port ferry storm coast library park tram airport runway"
).split()
# rag ingest's progress, in order: the bars that show, and the embedding bar at its end
EMBEDDING, EMBEDDED, PREPARING = "Embedding", "Embedding: 100%", "Preparing sentences"
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "RAG_EMBEDDING_PROVIDER": "onnx-int8",
    "RAG_CHUNK_CHARS": "200",
}


def paragraph(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 8))).capitalize() + "."


def article(rng: random.Random, article_id: str, number: int) -> dict[str, str]:
    return {
        "id": article_id,
        "title": f"Story {number} about the {rng.choice(WORDS)}",
        "date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "text": "\n\n".join(paragraph(rng) for _ in range(rng.randint(3, 6))),
    }


def versions(count: int, seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Two versions of ``count`` articles, line for line (so each keeps its ``source``)."""
    rng = random.Random(seed)
    first = [article(rng, f"story-{i:03d}", i) for i in range(count)]
    second = []
    for i, old in enumerate(first):
        if i % 20 == 0:  # replaced: the old one is pruned, the new one added
            second.append(article(rng, f"story-{i:03d}-new", i))
        elif i % 20 == 10:  # edited: one paragraph rewritten, so some chunks stay the same
            paragraphs = old["text"].split("\n\n")
            paragraphs[rng.randrange(len(paragraphs))] = paragraph(rng)
            second.append({**old, "text": "\n\n".join(paragraphs)})
        else:
            second.append(old)
    return first, second


def write_articles(path: Path, articles: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")


def environment() -> dict[str, str]:
    """This process's environment without any ``RAG_*`` setting of the developer's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**inherited, **ENV}


def ingest_command(data_dir: Path, articles: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "rag.cli", "ingest", "--prune"),
        *("--data-dir", str(data_dir), str(articles)),
    ]


@dataclass(frozen=True)
class Run:
    """One ``rag ingest``: how it ended, and what its progress bars said when."""

    returncode: int
    seconds: float  # from its start to its end, or to the kill
    appeared: Mapping[str, float]  # when (seconds after the start) each bar first showed
    progress: str  # the last progress line it printed: where it was when it ended
    summary: str  # what it printed on stdout

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def phase(self) -> str:
        if self.progress.startswith(PREPARING):
            return "vectors"  # the judge's sentence vectors, article by article
        if self.progress.startswith(EMBEDDING) and "100%" not in self.progress:
            return "embedding"  # embedding, adding and committing a batch
        if self.progress.startswith(EMBEDDING):
            return "commit/lexical"  # last deletes, pruning, the version, the BM25 copy
        return "startup"  # reading, loading, planning, the first commit records


def run_ingest(
    data_dir: Path, articles: Path, log: Path, kill: tuple[str, float] | None = None
) -> Run:
    """Run ``rag ingest``, reading its progress bars as they are printed. With ``kill``
    (a bar's name, or "" for the start, and a delay), SIGKILL its process group that many
    seconds after that bar first shows; a run that ends first is not killed."""
    appeared: dict[str, float] = {}
    with log.with_suffix(".out").open("w+b") as stdout, log.open("wb") as copy:
        started = time.monotonic()
        process = subprocess.Popen(
            ingest_command(data_dir, articles),
            env=environment(),
            cwd=REPO,
            stdout=stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stderr is not None
        stderr = process.stderr

        def read() -> None:
            tail = b""  # a name split between two reads is still seen
            for part in iter(lambda: os.read(stderr.fileno(), 65536), b""):
                copy.write(part)
                tail = tail[-64:] + part
                for name in (EMBEDDING, EMBEDDED, PREPARING):
                    if name.encode() in tail:
                        appeared.setdefault(name, time.monotonic() - started)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = started + RUN_TIMEOUT_S
        try:
            if kill is not None:
                bar, delay = kill
                while bar and bar not in appeared and process.poll() is None:
                    assert time.monotonic() < deadline, f"no {bar} bar: {log}"
                    time.sleep(0.005)
                if process.poll() is None:
                    kill_at = started + (appeared[bar] if bar else 0.0) + delay
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=max(0.0, kill_at - time.monotonic()))
                    if process.poll() is None:
                        with contextlib.suppress(ProcessLookupError):  # it ended in between
                            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            if process.poll() is None:  # past the deadline, or the test failed
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        seconds = time.monotonic() - started
        reader.join(timeout=30)
        stdout.seek(0)
        summary = stdout.read().decode("utf-8", "replace").strip()
    text = log.read_text("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    bars = [line for line in lines if line.startswith((EMBEDDING, PREPARING))]
    run = Run(process.returncode, seconds, appeared, bars[-1] if bars else "", summary)
    assert run.returncode == 0 or run.killed, f"rag ingest failed:\n{text[-3000:]}"
    return run


Shown = dict[str, frozenset[tuple[str, str]]]  # article id -> its (chunk id, article hash)


def by_article(chunks: Iterable[tuple[str, str, str]]) -> Shown:
    """``(article id, chunk id, article hash)`` triples grouped by article."""
    grouped: dict[str, set[tuple[str, str]]] = {}
    for article_id, chunk_id, article_hash in chunks:
        grouped.setdefault(article_id, set()).add((chunk_id, article_hash))
    return {article_id: frozenset(chunks) for article_id, chunks in grouped.items()}


def clean_view(snapshot: Mapping[str, Any]) -> Shown:
    """What readers see of a clean index, article by article."""
    return by_article(
        (str(meta["article_id"]), chunk_id, str(meta["article_hash"]))
        for chunk_id, _, frozen_meta in snapshot["shown chunks"]
        for meta in [dict(frozen_meta)]
    )


def stopped_view(data_dir: Path) -> tuple[Shown, int]:
    """What readers see of a stopped run's index, article by article, and how many commit
    records name a version whose write began and did not commit."""
    store = open_store(data_dir)
    shown = by_article(
        (str(c.metadata["article_id"]), c.chunk_id, str(c.metadata["article_hash"]))
        for c in store.iter_chunks(with_text=False)
    )
    return shown, sum(1 for record in store.commit_records().values() if record.pending)


def half_shown(shown: Shown, versions: Sequence[Shown], kept: Collection[str]) -> list[str]:
    """Articles readers see other than whole in one of ``versions``, or not at all though
    they are in ``kept`` (the articles the run had no reason to touch)."""
    problems = [
        f"{article_id}: {len(chunks)} chunks, none of its versions"
        for article_id, chunks in sorted(shown.items())
        if all(version.get(article_id) != chunks for version in versions)
    ]
    problems += [
        f"{article_id}: unchanged, but not shown" for article_id in kept if article_id not in shown
    ]
    return problems


def settings_for(data_dir: Path) -> Settings:
    return Settings.from_env({**ENV, "RAG_DATA_DIR": str(data_dir)})


def open_store(data_dir: Path) -> ChromaStore:
    """A fresh handle: Chroma shares one system per path within a process, and that one
    would not see what a subprocess wrote since it was opened."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    settings = settings_for(data_dir)
    return ChromaStore.open(settings, create_embedder(settings).model_id)


def frozen(metadata: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(metadata.items()))


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything an ingest leaves in ``data_dir`` that a clean one must match, after checking
    what must hold within it (no duplicates, a lexical copy of the current version)."""
    store = open_store(data_dir)
    stored = [
        (c.chunk_id, c.text, frozen(c.metadata))
        for c in store.iter_chunks(include_uncommitted=True)
    ]
    shown = [(c.chunk_id, c.text, frozen(c.metadata)) for c in store.iter_chunks()]
    assert len({chunk_id for chunk_id, _, _ in stored}) == len(stored) == store.count()
    lexical = FtsIndex(fts_path(settings_for(data_dir)), store)  # as saved: not followed
    assert lexical.version == store.index_version, "the BM25 copy is of another version"
    lexical_chunks = [(c.chunk_id, c.text, frozen(c.metadata)) for c in lexical.chunks]
    assert len({chunk_id for chunk_id, _, _ in lexical_chunks}) == len(lexical_chunks)
    vectors = VectorFile(settings_for(data_dir).vectors_path)
    try:
        prepared, vector_count = vectors.prepared(), vectors.count()
    finally:
        vectors.close()
    uri = f"file:{settings_for(data_dir).vectors_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        vector_rows = set(db.execute("SELECT key, article_id FROM vectors"))
        label_rows = set(db.execute("SELECT key, article_id, labels FROM labels"))
    return {
        "stored chunks": set(stored),
        "shown chunks": set(shown),
        "commit records": store.commit_records(),
        "lexical chunks": set(lexical_chunks),
        "prepared articles": prepared,
        "sentence vectors": (vector_count, vector_rows),
        "entity labels": label_rows,
    }


def differences(found: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    """What differs from the clean snapshot, part by part, with one example each."""
    problems = []
    for part, expected in clean.items():
        got = found[part]
        if got == expected:
            continue
        if isinstance(expected, set):
            extra, missing = sorted(got - expected), sorted(expected - got)
            example = (extra or missing)[0]
            problems.append(f"{part}: {len(extra)} extra, {len(missing)} missing: {example}")
        elif isinstance(expected, dict):
            keys = sorted(k for k in expected.keys() | got.keys() if got.get(k) != expected.get(k))
            example = f"{keys[0]}: {got.get(keys[0])} instead of {expected.get(keys[0])}"
            problems.append(f"{part}: {len(keys)} differ: {example}")
        else:
            problems.append(f"{part}: {str(got)[:200]} instead of {str(expected)[:200]}")
    return problems


def test_a_sigkilled_ingest_rerun_equals_a_clean_ingest(tmp_path: Path) -> None:
    first, second = versions(ARTICLES, SEED)
    articles = tmp_path / "articles.jsonl"  # one path for every run, so sources are equal
    logs = tmp_path / "logs"
    logs.mkdir()

    def ingest(data_dir: Path, name: str, kill: tuple[str, float] | None = None) -> Run:
        run = run_ingest(data_dir, articles, logs / f"{name}.log", kill)
        assert kill is not None or run.returncode == 0, f"{name} failed: see {logs}"
        return run

    clean: dict[str, dict[str, Any]] = {}
    uninterrupted: dict[str, Run] = {}  # each step, timed: kill times are drawn over it
    for name, version in (("first", first), ("second", second)):
        write_articles(articles, version)
        uninterrupted[name] = ingest(tmp_path / f"clean-{name}", f"clean-{name}")
        clean[name] = snapshot(tmp_path / f"clean-{name}")
    assert clean["first"] != clean["second"]
    views = {name: clean_view(snapshot) for name, snapshot in clean.items()}
    unchanged = [a for a, chunks in views["first"].items() if views["second"].get(a) == chunks]

    # A step from one version to the other, not killed, already gives the clean index.
    scratch = tmp_path / "scratch"
    shutil.copytree(tmp_path / "clean-first", scratch)
    for name, version in (("second", second), ("first", first)):
        write_articles(articles, version)
        uninterrupted[f"to {name}"] = ingest(scratch, f"to-{name}")
        assert differences(snapshot(scratch), clean[name]) == []
    shutil.rmtree(scratch)
    history = [
        f"uninterrupted {step}: {run.seconds:.1f} s, bars at"
        f" { {bar: round(t, 2) for bar, t in run.appeared.items()} }"
        for step, run in uninterrupted.items()
    ]

    rng = random.Random(SEED)
    data_dir = tmp_path / "killed"
    kills: list[Run] = []
    target, step = "first", "first"  # the first step starts from nothing
    for attempt in range(3 * KILLS):
        if len(kills) == KILLS:
            break
        write_articles(articles, first if target == "first" else second)
        reference = uninterrupted[step]
        bar = ["", EMBEDDING, EMBEDDED][attempt % 3]  # 3 is odd: each kind in both steps
        if bar:  # while embedding, or committing and saving the BM25 copy
            gap = reference.appeared[PREPARING] - reference.appeared[bar]
            kill = (bar, rng.uniform(0.0, 1.0) * gap)
        else:  # anywhere
            kill = ("", rng.uniform(0.05, 0.95) * reference.seconds)
        killed = ingest(data_dir, f"kill-{attempt}", kill)
        shown, records = stopped_view(data_dir)
        kept = unchanged if attempt else []  # the first step starts from nothing
        problems = half_shown(shown, [views["first"], views["second"]], kept)
        assert problems == [], "\n".join([*history, f"after kill {attempt}:", *problems])
        rerun = ingest(data_dir, f"rerun-{attempt}")
        aim = f"{kill[1]:.2f} s after {kill[0] or 'the start'}"
        if killed.killed:
            kills.append(killed)
            history.append(
                f"{step:>9}: {aim}: killed at {killed.seconds:5.2f} s in {killed.phase}"
                f" ({records} pending records; {killed.progress or 'no bar yet'});"
                f" re-run {rerun.seconds:.1f} s: {rerun.summary}"
            )
        else:
            history.append(f"{step:>9}: {aim}: it ended first; re-run: {rerun.summary}")
        problems = differences(snapshot(data_dir), clean[target])
        assert problems == [], "\n".join([*history, *problems])
        target = "second" if target == "first" else "first"
        step = f"to {target}"
    phases = [run.phase for run in kills]
    history.append(f"kills by phase: { {p: phases.count(p) for p in sorted(set(phases))} }")
    print("\n" + "\n".join(history))
    assert len(kills) == KILLS, "\n".join(history)
