"""Scale-out, end to end: one real Chroma server (``chroma run``) and two ``rag serve``
processes, each with its own data directory, sharing it as a load balancer would.

An article ingested through one process is answered by the other (its BM25 index is refreshed
from the server's collection version), and both keep answering after the Chroma server is
restarted (the HTTP client reconnects); while it is down they answer 503 naming the server,
never "the index is empty". Everything runs as real subprocesses on 127.0.0.1 with the
packaged model; each step is bounded by a deadline and its time is printed (``pytest -s``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import ProviderError
from rag.lexical import LexicalIndex
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
        with timings.step("ask the strike question through A"):
            _assert_strike_answer(_ask(base_a, STRIKE_QUESTION))
        # A's own BM25 index (in its data directory) was rebuilt from the server's collection.
        assert STRIKE_ID in (tmp_path / "a" / "lexical" / "chunks.jsonl").read_text("utf-8")
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
        saved = LexicalIndex.load(served.lexical_dir)
        assert saved is not None and saved.chunks
        chroma.start()
        answer = assistant.ask(DATE_QUESTION)
        assert not answer.refused and answer.citations[0].article_id == SEED_ID
    finally:
        chroma.stop()
