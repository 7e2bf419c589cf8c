"""Scale-out, end to end: one real Chroma server (``chroma run``) and two ``rag serve``
processes, each with its own data directory, sharing it as a load balancer would.

An article ingested through one process is answered by the other (its BM25 index is refreshed
from the server's collection version), and both keep answering after the Chroma server is
restarted (the HTTP client reconnects); while it is down they answer 503 naming the server,
never "the index is empty". Everything runs as real subprocesses on 127.0.0.1 with the
packaged model; each step is bounded by a deadline and its time is printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import multiprocessing.process
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.assistant import Assistant
from rag.chunk import chunk_article
from rag.config import Settings
from rag.embed import create_embedder
from rag.errors import IndexLockedError, ProviderError
from rag.index import Indexer
from rag.schema import Article
from rag.store import SearchFilters
from rag.stores.chroma import ChromaStore
from tests.conftest import CORPUS, REPO, SEED_ID, free_port

pytestmark = pytest.mark.integration

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DATE_QUESTION = "On what date were the International Digital Strategy proposals published?"
STRIKE_QUESTION = "How long will the rail drivers' strike last?"
STRIKE_ID = "rail-strike-2025"
STRIKE_ARTICLE = {
    "id": STRIKE_ID,
    "title": "Rail drivers strike over pay",
    "author": "Nora Lind",
    "date": "2025-06-09",
    "url": "https://news.example/rail-strike",
    "text": "Rail drivers walked out on Monday in a dispute over pay.\n\n"
    "The strike will last forty-eight hours, the drivers' union said, and no trains will run"
    " on the main lines until Wednesday morning.",
}

CHROMA_START_S = 60.0  # a heartbeat comes after about 1 s
SERVE_START_S = 300.0  # imports (torch, Gradio) and the model, two processes on few cores
REQUEST_S = 120.0  # the first upload embeds the corpus article


class Process:
    """A subprocess with its output in a log file, for messages when something fails."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)


def _wait_until(check: Callable[[], bool], seconds: float, what: str, process: Process) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        if process.popen.poll() is not None:
            pytest.fail(
                f"{process.name} exited ({process.popen.returncode}) before {what}:\n"
                + process.tail()
            )
        if time.monotonic() > deadline:
            pytest.fail(f"{process.name}: no {what} within {seconds:.0f} s:\n" + process.tail())
        time.sleep(0.2)


class Chroma:
    """``chroma run`` on one path and port, which can be stopped and started again."""

    def __init__(self, path: Path, port: int, logs: Path) -> None:
        self.path, self.port, self.logs = path, port, logs
        self.url = f"http://127.0.0.1:{port}"
        self.process: Process | None = None

    def start(self) -> None:
        # The `chroma` script only calls this; going through the interpreter finds it in any
        # environment layout.
        command = [
            sys.executable,
            "-c",
            "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()",
            *("run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)),
        ]
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = Process("chroma", command, env, self.logs / "chroma.log")
        _wait_until(self.beating, CHROMA_START_S, "heartbeat", self.process)

    def beating(self) -> bool:
        response = httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2)
        return response.status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _serve(name: str, chroma_url: str, data_dir: Path, logs: Path) -> tuple[Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        GRADIO_ANALYTICS_ENABLED="False",
        RAG_CHROMA_URL=chroma_url,
        RAG_API_KEYS=KEY,
        RAG_REFRESH_INTERVAL_S="0",
    )
    command = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    return Process(name, command, env, logs / f"{name}.log"), f"http://127.0.0.1:{port}"


def _warm(base: str) -> bool:
    """The model is loaded: /readyz is 200, or 503 only because the index is still empty."""
    response = httpx.get(f"{base}/readyz", timeout=5)
    return response.status_code == 200 or "index is empty" in response.text


class Timings:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.steps.append((name, seconds))
            print(f"[scale-out] {name}: {seconds:.2f} s", flush=True)


def _ask(base: str, question: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/v1/ask", json={"question": question}, headers=AUTH, timeout=REQUEST_S
    )
    assert response.status_code == 200, (base, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


def _assert_date_answer(body: dict[str, Any]) -> None:
    assert not body["refused"] and "June 5" in body["answer"], body["answer"]
    assert body["citations"] and body["citations"][0]["article_id"] == SEED_ID
    assert "[1]" in body["answer"]


def _assert_strike_answer(body: dict[str, Any]) -> None:
    assert not body["refused"] and "forty-eight hours" in body["answer"], body["answer"]
    assert any(c["article_id"] == STRIKE_ID for c in body["citations"]), body["citations"]
    assert any("forty-eight hours" in c["quote"] for c in body["citations"])


def _post_two_versions_at_once(base_a: str, base_b: str, chroma_url: str, round_: int) -> None:
    """The red team's break (issue 9, item 7): the same article posted to both processes at
    the same moment, in two versions. Both are accepted (the second waits for the writer
    lease), and what is stored and shown is one version whole, the same through both."""
    endings = {base_a: f" Round {round_}, version A.", base_b: f" Round {round_}, version B."}
    start = threading.Barrier(2)

    def post(base: str) -> httpx.Response:
        body = {**STRIKE_ARTICLE, "text": STRIKE_ARTICLE["text"] + endings[base]}
        start.wait(10)
        return httpx.post(f"{base}/v1/articles", json=body, headers=AUTH, timeout=REQUEST_S)

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(post, endings))
    # 200: an update (both rewrite the article posted before), not a 409 or a 500
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    texts = {
        httpx.get(f"{base}/v1/articles/{STRIKE_ID}", headers=AUTH, timeout=10).json()["text"]
        for base in endings
    }
    assert len(texts) == 1, texts  # both processes show the same version...
    [text] = texts
    assert sum(ending.strip() in text for ending in endings.values()) == 1, text  # ...one whole
    store = ChromaStore.open(Settings(chroma_url=chroma_url), create_embedder(Settings()).model_id)
    chunks = list(
        store.iter_chunks(SearchFilters(article_ids=(STRIKE_ID,)), include_uncommitted=True)
    )
    record = store.commit_records([STRIKE_ID])[STRIKE_ID]
    assert {c.metadata["article_hash"] for c in chunks} == {record.article_hash}
    assert len(chunks) == record.chunks and not record.pending


def test_two_servers_share_one_chroma_server_and_survive_its_restart(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    timings = Timings()
    chroma = Chroma(tmp_path / "chroma", free_port(), logs)
    servers: list[Process] = []
    try:
        with timings.step("chroma server up (heartbeat)"):
            chroma.start()
        a, base_a = _serve("serve-a", chroma.url, tmp_path / "a", logs)
        servers.append(a)
        b, base_b = _serve("serve-b", chroma.url, tmp_path / "b", logs)
        servers.append(b)
        with timings.step("two rag serve processes warm (model loaded)"):
            _wait_until(lambda: _warm(base_a), SERVE_START_S, "warm /readyz", a)
            _wait_until(lambda: _warm(base_b), SERVE_START_S, "warm /readyz", b)

        with timings.step("upload the corpus article through A"):
            [article] = sorted(CORPUS.iterdir())
            response = httpx.post(
                f"{base_a}/v1/articles",
                files={"file": (article.name, article.read_bytes(), "text/markdown")},
                headers=AUTH,
                timeout=REQUEST_S,
            )
            assert response.status_code == 201, response.text
            assert response.json()["article_ids"] == [SEED_ID]
        for base in (base_a, base_b):
            ready = httpx.get(f"{base}/readyz", timeout=5)
            assert ready.status_code == 200 and ready.json()["chunks"] > 0, ready.text

        with timings.step("ask the date question through B"):
            _assert_date_answer(_ask(base_b, DATE_QUESTION))

        with timings.step("post the strike article through B"):
            response = httpx.post(
                f"{base_b}/v1/articles", json=STRIKE_ARTICLE, headers=AUTH, timeout=REQUEST_S
            )
            assert response.status_code == 201, response.text
        with timings.step("post two versions of one article through A and B at once, 3 times"):
            for round_ in range(3):
                _post_two_versions_at_once(base_a, base_b, chroma.url, round_)
        with timings.step("ask the strike question through A"):
            _assert_strike_answer(_ask(base_a, STRIKE_QUESTION))
        # A's own BM25 index (in its data directory) followed the server's change log.
        assert STRIKE_ID in _lexical_articles(tmp_path / "a")
        listed = httpx.get(f"{base_a}/v1/articles", headers=AUTH, timeout=10).json()
        assert {s["article_id"] for s in listed["articles"]} == {SEED_ID, STRIKE_ID}

        with timings.step("chroma server stopped"):
            chroma.stop()
        with timings.step("ask while the chroma server is down"):
            for base in (base_a, base_b):
                down = httpx.post(
                    f"{base}/v1/ask",
                    json={"question": DATE_QUESTION},
                    headers=AUTH,
                    timeout=REQUEST_S,
                )
                assert down.status_code == 503, (down.status_code, down.text)
                assert "Chroma server" in down.json()["error"], down.text
                assert "empty" not in down.json()["error"]
                assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
            write = httpx.post(
                f"{base_a}/v1/articles",
                json={**STRIKE_ARTICLE, "text": STRIKE_ARTICLE["text"] + " Buses will run."},
                headers=AUTH,
                timeout=REQUEST_S,
            )
            assert write.status_code == 503 and "Chroma server" in write.text, write.text
        with timings.step("chroma server restarted (same path and port)"):
            chroma.start()

        with timings.step("both questions through both processes after the restart"):
            for base in (base_a, base_b):
                _assert_date_answer(_ask(base, DATE_QUESTION))
                _assert_strike_answer(_ask(base, STRIKE_QUESTION))
        for base in (base_a, base_b):
            assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    finally:
        for server in servers:
            server.stop()
        chroma.stop()
        total = sum(seconds for _, seconds in timings.steps)
        print(f"[scale-out] timed steps in all: {total:.2f} s", flush=True)


def test_an_unreachable_server_is_an_error_not_an_empty_index(
    settings: Settings, tmp_path: Path
) -> None:
    """In process (the chat's path, which has no emptiness check before retrieval): while the
    server is down a question fails with ``ProviderError`` rather than being declined over an
    empty index, and the lexical index saved beside it is not replaced by an empty one."""
    chroma = Chroma(tmp_path / "chroma", free_port(), tmp_path)
    try:
        chroma.start()
        served = settings.replace(chroma_url=chroma.url, refresh_interval_s=0)
        assistant = Assistant.open(served)
        assistant.ingest([CORPUS], progress=False)
        assert not assistant.ask(DATE_QUESTION).refused
        chroma.stop()
        with pytest.raises(ProviderError, match="cannot reach the Chroma server"):
            assistant.ask(DATE_QUESTION)
        assert SEED_ID in _lexical_articles(served.data_dir)  # kept, not emptied
        chroma.start()
        answer = assistant.ask(DATE_QUESTION)
        assert not answer.refused and answer.citations[0].article_id == SEED_ID
    finally:
        chroma.stop()


def _lexical_articles(data_dir: Path) -> set[str]:
    """The article ids held by the fts5 lexical index of ``data_dir`` (read-only)."""
    uri = f"file:{data_dir / 'lexical.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return {str(row[0]) for row in db.execute("SELECT DISTINCT article_id FROM chunks")}


# --- two writers of one article through one Chroma server (issue 9, item 7) -------------------

RACE_ID = "budget-vote"
RACE_TRIALS = 10
GATE_S = 120.0  # a writer process starts (imports) and each trial's writes end within this


def _race_text(trial: int, writer: str) -> str:
    """Writer ``writer``'s version of the article in ``trial``: ten paragraphs of about 150
    characters (one chunk each at 200), the first two the same in both writers' versions, so
    that a version keeps chunks of the other's as well as adding its own."""
    paragraphs = [
        f"Paragraph {i} of the budget story in round {trial}: the council voted on item {i}"
        " after a long debate that ran late into the evening and ended narrowly."
        + ("" if i < 2 else f" Version {writer}.")
        for i in range(10)
    ]
    return "\n\n".join(paragraphs)


def _race_article(text: str) -> Article:
    return Article(RACE_ID, "Council budget vote", text, source="race")


class _SlowEmbedder:
    """The fake embedder, 20 ms per batch, so that two writers' batches interleave."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def model_id(self) -> str:
        return str(self._inner.model_id)

    def embed(self, texts: Sequence[str]) -> Any:
        time.sleep(0.02)
        return self._inner.embed(texts)


def _write_versions(
    writer: str,
    settings: Settings,
    waits: Sequence[float],
    gate: Any,
    results: Any,
) -> None:
    """A writer process: in each trial, meet the other writer and the test at ``gate``, then
    write this writer's version of the article, and report how that went."""
    import rag.index

    rag.index._EMBED_BATCH = 2  # ten chunks in five batches, each its own store write
    embedder = _SlowEmbedder(create_embedder(settings))
    store = ChromaStore.open(settings, embedder.model_id)
    for trial, wait_s in enumerate(waits):
        try:
            gate.wait(GATE_S)
        except threading.BrokenBarrierError:
            return  # the test failed, or gave up on the other writer
        # A writer stuck in a trial prints where, before the test gives up on it.
        faulthandler.dump_traceback_later(GATE_S / 2)
        indexer = Indexer(settings, embedder, store, lease_wait_s=wait_s)
        started = time.time()
        try:
            indexer.sync([_race_article(_race_text(trial, writer))], progress=False)
            outcome = "wrote"
        except IndexLockedError as e:
            outcome = f"locked: {e}"
        except Exception as e:  # reported, so that the test fails with it
            outcome = f"error: {e!r}"
        faulthandler.cancel_dump_traceback_later()
        results.put((trial, writer, outcome, time.time(), started))


def test_two_writer_processes_of_one_article_never_leave_mixed_versions(tmp_path: Path) -> None:
    """Two processes, each with its own data directory, write different versions of the same
    article through one Chroma server at the same moment, several times over. After each
    trial the store holds exactly one version, whole: one article hash among its chunks, the
    committed one, as many chunks as recorded. The writer that came second either waited for
    the lease and then wrote its version cleanly (even trials) or, told not to wait, failed
    with ``IndexLockedError`` (odd trials)."""
    chroma = Chroma(tmp_path / "chroma", free_port(), tmp_path)
    waits = [30.0 if trial % 2 == 0 else 0.0 for trial in range(RACE_TRIALS)]
    context = multiprocessing.get_context("spawn")
    gate = context.Barrier(3)
    results = context.Queue()
    writers: list[multiprocessing.process.BaseProcess] = []
    outcomes: list[str] = []
    overlapped = 0  # trials in which the second writer began before the first had finished
    try:
        chroma.start()
        base = Settings(
            data_dir=tmp_path / "unused",
            embedding_provider="fake-hash",
            chroma_url=chroma.url,
            chunk_chars=200,
        )
        for writer in ("A", "B"):
            settings = base.replace(data_dir=tmp_path / writer)
            process = context.Process(
                target=_write_versions, args=(writer, settings, waits, gate, results)
            )
            process.start()
            writers.append(process)
        store = ChromaStore.open(base, create_embedder(base).model_id)
        for trial in range(RACE_TRIALS):
            try:
                gate.wait(GATE_S)
            except threading.BrokenBarrierError:
                states = [(p.name, p.is_alive(), p.exitcode) for p in writers]
                pytest.fail(f"trial {trial}: a writer did not come back: {states}")
            reports = sorted((results.get(timeout=GATE_S) for _ in writers), key=lambda r: r[3])
            for _, writer, outcome, *_ in reports:
                assert outcome == "wrote" or outcome.startswith("locked: another process is"), (
                    trial,
                    writer,
                    outcome,
                )
                if outcome.startswith("locked"):
                    assert waits[trial] == 0.0, (trial, writer, outcome)  # a waiter writes
            wrote = [writer for _, writer, outcome, *_ in reports if outcome == "wrote"]
            assert wrote, reports
            last = _race_article(_race_text(trial, wrote[-1]))  # the last to finish wins

            chunks = list(
                store.iter_chunks(SearchFilters(article_ids=(RACE_ID,)), include_uncommitted=True)
            )
            hashes = {str(c.metadata["article_hash"]) for c in chunks}
            record = store.commit_records([RACE_ID])[RACE_ID]
            assert hashes == {record.article_hash}, f"trial {trial}: mixed versions {reports}"
            assert record.article_hash == last.content_hash and not record.pending
            assert len(chunks) == record.chunks
            expected = chunk_article(last, base.chunk_chars, base.chunk_overlap_sentences)
            assert {c.chunk_id for c in chunks} == {c.chunk_id for c in expected}
            shown = sorted(
                store.iter_chunks(SearchFilters(article_ids=(RACE_ID,))), key=_chunk_index
            )
            assert [c.text for c in shown] == [c.text for c in expected]
            first_end, second_start = reports[0][3], reports[1][4]
            overlapped += second_start < first_end
            outcomes.append(" / ".join(f"{w}: {o[:70]}" for _, w, o, *_ in reports))
            print(f"[race] trial {trial} (wait {waits[trial]:.0f} s): {outcomes[-1]}", flush=True)
    finally:
        gate.abort()
        for writer_process in writers:
            writer_process.join(10)
            if writer_process.is_alive():
                writer_process.kill()
        chroma.stop()
    assert len(outcomes) == RACE_TRIALS
    print(f"[race] the writers overlapped in {overlapped} of {RACE_TRIALS} trials", flush=True)
    assert overlapped  # else the trials raced nothing


def _chunk_index(chunk: Any) -> int:
    return int(chunk.metadata.get("index", 0))
