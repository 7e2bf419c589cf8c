"""Tests for background ingests (``rag.api.jobs``, ``rag.api.state``) and for admission of
questions under load (``rag.api.limits``).

The jobs' tests drive a real uvicorn server on 127.0.0.1 over the fake embedder and a real
Chroma in a temporary directory. They count, never time: the embedder or the store is held
at a gate that the test opens, so "the small write finished while the big one was still
running" is an observed order, not a race won on a fast machine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import anyio.to_thread
import httpx
import numpy as np
import pytest

from rag.api import create_app
from rag.api.jobs import DONE, FAILED, QUEUED, RUNNING, Jobs, JobsFullError, Progress
from rag.api.limits import AdmittedAnswering, AskGate
from rag.api.state import WriterQueue
from rag.assistant import Assistant
from rag.config import Settings
from rag.embed import Vectors, register_embedder
from rag.errors import BusyError, CorpusError
from rag.schema import AnswerDelta, Chunk
from rag.stores.chroma import ChromaStore
from tests.conftest import HashEmbedder
from tests.test_api import AUTH, KEY, SOLAR, serve
from tests.test_app import only_loopback  # noqa: F401 - autouse: fail any non-local connection

WAIT_S = 60.0  # every wait on the server is bounded; none is a measurement
BIG_ID = "harbour-report"
BIG_TITLE = "Quillon harbour report"
BIG_FACT_Q = "How many cranes did the Quillon harbour board order?"


def big_article(sentences: int = 3200) -> dict[str, str]:
    """An article of ~300 chunks (more than one store batch of 256) whose one fact is that
    the harbour board ordered 977 cranes; everything else is filler about tides."""
    filler = [
        f"Tide table entry {n} lists the water level at the northern pier as ordinary."
        for n in range(sentences)
    ]
    text = " ".join(
        ["The Quillon harbour board ordered 977 new cranes for the container quay.", *filler]
    )
    return {"id": BIG_ID, "title": BIG_TITLE, "date": "2025-02-03", "text": text}


class GatedEmbedder(HashEmbedder):
    """The fake embedder, except that a batch of the big article's chunks (their embedding
    texts start with its title) waits for ``opened``; questions pass."""

    marker = BIG_TITLE + "\n"

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = threading.Event()  # set once a marked batch is held at the gate

    def embed(self, texts: Sequence[str]) -> Vectors:
        if any(t.startswith(self.marker) for t in texts) and not self.opened.is_set():
            self.waiting.set()
            assert self.opened.wait(WAIT_S), "the test never opened the gate"
        return super().embed(texts)


GATED: list[GatedEmbedder] = []
register_embedder("fake-gated", lambda settings: GATED[-1])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.replace(api_keys=KEY)


@pytest.fixture
def gated(keyed: Settings) -> Iterator[tuple[str, GatedEmbedder]]:
    """A served API over the gated embedder; the gate is opened before the server stops."""
    embedder = GatedEmbedder()
    GATED.append(embedder)
    settings = keyed.replace(embedding_provider="fake-gated")
    try:
        with serve(create_app(Assistant.open(settings), settings)) as url:
            yield url, embedder
            embedder.opened.set()
    finally:
        embedder.opened.set()
        GATED.remove(embedder)


def job_of(client: httpx.Client, response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == f"/v1/jobs/{response.json()['job_id']}"
    return location


def finished(client: httpx.Client, location: str) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def ended() -> bool:
        state.update(client.get(location).json())
        return state["state"] in (DONE, FAILED)

    wait_until(ended, f"{location} finished")
    return state


def cited_ids(answer: dict[str, Any]) -> set[str]:
    return {c["article_id"] for c in answer["citations"]}


# --- background ingests -----------------------------------------------------------------------


def test_a_big_post_runs_as_a_job_while_a_small_post_is_answered(
    gated: tuple[str, GatedEmbedder],
) -> None:
    url, embedder = gated
    with httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client:
        first = client.post("/v1/articles", json={**SOLAR, "id": "first"})
        assert first.status_code == 201, first.text
        location = job_of(client, client.post("/v1/articles", json=big_article()))
        assert embedder.waiting.wait(WAIT_S), "the job never started embedding"
        assert client.get(location).json()["state"] == RUNNING

        # The job is held mid-embedding; a small write is answered meanwhile.
        small = client.post("/v1/articles", json=SOLAR)
        assert small.status_code == 201, small.text
        during = client.get(location).json()
        assert during["state"] == RUNNING and during["done"] < during["total"]
        assert not embedder.opened.is_set()
        # Nothing of the big article is searchable before it is complete.
        answer = client.post("/v1/ask", json={"question": BIG_FACT_Q}).json()
        assert BIG_ID not in cited_ids(answer)
        assert client.get(f"/v1/articles/{BIG_ID}").status_code == 404

        embedder.opened.set()
        job = finished(client, location)
        assert job["state"] == DONE, job
        assert job["done"] == job["total"] > 256
        result = job["result"]
        assert result["created"] is True and result["article_ids"] == [BIG_ID]
        assert result["chunks_embedded"] == job["total"]
        answer = client.post("/v1/ask", json={"question": BIG_FACT_Q}).json()
        assert BIG_ID in cited_ids(answer) and "977" in answer["answer"]


def test_an_article_is_not_shown_until_all_its_chunks_are_stored(
    keyed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is held inside the writer, after the store took the first 256 of ~300 chunks:
    readers see nothing of the article until the rest are in and it is committed."""
    half_written, release = threading.Event(), threading.Event()
    real_add = ChromaStore.add

    def add_then_wait(self: ChromaStore, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        real_add(self, chunks, vectors)
        if any(c.article_id == BIG_ID for c in chunks) and not half_written.is_set():
            half_written.set()
            assert release.wait(WAIT_S), "the test never released the store"

    monkeypatch.setattr(ChromaStore, "add", add_then_wait)
    with (
        serve(create_app(Assistant.open(keyed), keyed)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client,
    ):
        try:
            assert client.post("/v1/articles", json=SOLAR).status_code == 201
            location = job_of(client, client.post("/v1/articles", json=big_article()))
            assert half_written.wait(WAIT_S), "the job never reached the store"
            stored = ChromaStore.open(keyed, HashEmbedder().model_id)
            partial = list(stored.iter_chunks(include_uncommitted=True))
            assert 0 < sum(c.metadata["article_id"] == BIG_ID for c in partial) <= 256

            answer = client.post("/v1/ask", json={"question": BIG_FACT_Q}).json()
            assert BIG_ID not in cited_ids(answer)
            assert client.get(f"/v1/articles/{BIG_ID}").status_code == 404
            listed = client.get("/v1/articles").json()["articles"]
            assert [a["article_id"] for a in listed] == [SOLAR["id"]]
        finally:
            release.set()
        assert finished(client, location)["state"] == DONE
        article = client.get(f"/v1/articles/{BIG_ID}").json()
        assert article["text"] == big_article()["text"]


def test_prefer_respond_async_runs_even_a_small_post_as_a_job(keyed: Settings) -> None:
    with (
        serve(create_app(Assistant.open(keyed), keyed)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client,
    ):
        response = client.post(
            "/v1/articles", json=SOLAR, headers={"Prefer": "wait=5, respond-async"}
        )
        location = job_of(client, response)
        assert response.headers["preference-applied"] == "respond-async"
        job = finished(client, location)
        assert job["state"] == DONE and job["unit"] == "chunks"
        assert job["result"]["article_ids"] == [SOLAR["id"]]
        again = client.post("/v1/articles", json=SOLAR)  # what a small POST answers
        assert again.status_code == 200 and set(again.json()) == set(job["result"])
        assert client.get("/v1/jobs/000000-unknown").status_code == 404


def test_jobs_need_a_writer_key_and_unreadable_uploads_are_refused_at_once(
    keyed: Settings,
) -> None:
    with (
        serve(create_app(Assistant.open(keyed), keyed)) as url,
        httpx.Client(base_url=url, timeout=WAIT_S) as client,
    ):
        files = {"file": ("notes.txt", b"\x00\x01\x02 binary", "text/plain")}
        refused = client.post(
            "/v1/articles", files=files, headers={**AUTH, "Prefer": "respond-async"}
        )
        assert refused.status_code == 422  # unreadable uploads are refused before any job
        response = client.post(
            "/v1/articles", json=SOLAR, headers={**AUTH, "Prefer": "respond-async"}
        )
        location = job_of(client, response)
        assert client.get(location).status_code == 401
        assert client.get(location, headers={"Authorization": "Bearer wrong"}).status_code == 401
        client.headers.update(AUTH)
        assert finished(client, location)["state"] == DONE


def test_jobs_do_not_outlive_the_process(keyed: Settings) -> None:
    with (
        serve(create_app(Assistant.open(keyed), keyed)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client,
    ):
        location = job_of(
            client, client.post("/v1/articles", json=SOLAR, headers={"Prefer": "respond-async"})
        )
        assert finished(client, location)["state"] == DONE
    with (
        serve(create_app(Assistant.open(keyed), keyed)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client,
    ):
        gone = client.get(location)
        assert gone.status_code == 404 and "restart" in gone.json()["error"]
        assert client.get(f"/v1/articles/{SOLAR['id']}").status_code == 200


# --- the job queue and the writer's turns -----------------------------------------------------


def test_jobs_run_in_order_and_report_progress_and_failures() -> None:
    jobs = Jobs(max_queued=2)
    gate = threading.Event()
    order: list[str] = []

    def work(name: str, units: int) -> Callable[[Progress], dict[str, Any]]:
        def run(progress: Progress) -> dict[str, Any]:
            assert gate.wait(WAIT_S)
            progress.total(units)
            progress.advance(units)
            order.append(name)
            return {"name": name}

        return run

    def broken(progress: Progress) -> dict[str, Any]:
        raise CorpusError("no article text in upload.html\nsecond line")

    def crashed(progress: Progress) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    first = jobs.submit("ingest", work("first", 3))
    wait_until(lambda: jobs.status(first.job_id).state == RUNNING, "the first job runs")
    second = jobs.submit("ingest", work("second", 2))
    third = jobs.submit("ingest", broken)
    with pytest.raises(JobsFullError):
        jobs.submit("ingest", crashed)
    assert jobs.status(second.job_id).state == QUEUED
    gate.set()
    wait_until(lambda: jobs.status(third.job_id).state == FAILED, "the third job failed")
    fourth = jobs.submit("ingest", crashed)
    wait_until(lambda: jobs.status(fourth.job_id).state == FAILED, "the fourth job failed")
    assert order == ["first", "second"]
    done = jobs.status(second.job_id)
    assert (done.state, done.done, done.total, done.result) == (DONE, 2, 2, {"name": "second"})
    assert jobs.status(third.job_id).error == "no article text in upload.html"
    assert jobs.status(fourth.job_id).error == "internal error"
    jobs.close()


def test_the_writer_serves_in_arrival_order() -> None:
    writer = WriterQueue()
    served: list[int] = []
    threads = []
    with writer.turn():
        for n in range(5):
            thread = threading.Thread(target=lambda n=n: _write(writer, served, n))
            thread.start()
            threads.append(thread)
            wait_until(lambda n=n: writer.waiting == n + 2, f"writer {n} queued")
    for thread in threads:
        thread.join(timeout=WAIT_S)
    assert served == [0, 1, 2, 3, 4]
    assert writer.waiting == 0


def _write(writer: WriterQueue, served: list[int], n: int) -> None:
    with writer.turn():
        served.append(n)


# --- admission of questions -------------------------------------------------------------------


def test_the_ask_gate_admits_queues_and_turns_away() -> None:
    async def scenario() -> list[bool]:
        gate = AskGate(max_concurrent=1, max_queued=1, wait_s=WAIT_S)
        assert await gate.enter()
        queued = asyncio.ensure_future(gate.enter())
        while gate.waiting < 1:
            await asyncio.sleep(0)
        beyond = await gate.enter()  # one running, one waiting: no turn to be had
        gate.leave()
        admitted = await queued
        gate.leave()
        short = AskGate(max_concurrent=1, max_queued=1, wait_s=0.0)
        assert await short.enter()
        timed_out = await short.enter()  # its wait ran out
        return [beyond, admitted, timed_out, gate.running == 0, gate.turned_away == 1]

    assert asyncio.run(scenario()) == [False, True, False, True, True]


def test_questions_beyond_capacity_get_503_with_retry_after_and_none_fail(
    keyed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = keyed.replace(max_concurrent_asks=2, max_queued_asks=2)
    release = threading.Event()
    real_ask = Assistant.ask

    def held_ask(self: Assistant, *args: Any, **kwargs: Any) -> Any:
        assert release.wait(WAIT_S)
        return real_ask(self, *args, **kwargs)

    monkeypatch.setattr(Assistant, "ask", held_ask)
    app = create_app(Assistant.open(settings), settings)
    gate: AskGate = app.state.api.asks
    statuses: list[int] = []
    lock = threading.Lock()
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as client:
        assert client.post("/v1/articles", json=SOLAR).status_code == 201
        release.set()  # one question first, so that loading the parts is not done in a turn
        assert client.post("/v1/ask", json={"question": "Solar farm?"}).status_code == 200
        release.clear()

        def ask() -> None:
            response = client.post("/v1/ask", json={"question": "How big is the solar farm?"})
            with lock:
                statuses.append(response.status_code)

        held = [threading.Thread(target=ask) for _ in range(4)]
        for n, thread in enumerate(held):
            thread.start()
            wait_until(lambda n=n: gate.running + gate.waiting == n + 1, f"ask {n} admitted")
        shed = [client.post("/v1/ask", json={"question": "Solar?"}) for _ in range(3)]
        stream = client.post("/v1/ask/stream", json={"question": "Solar?"})
        release.set()
        for thread in held:
            thread.join(timeout=WAIT_S)
        after = client.post("/v1/ask", json={"question": "How big is the solar farm?"})
    assert sorted(statuses) == [200] * 4
    for response in [*shed, stream]:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "try again" in response.json()["error"]
    assert after.status_code == 200
    assert gate.turned_away == 4 and gate.running == 0


def test_the_chat_answers_through_the_same_admission_and_says_when_to_retry(
    keyed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat turn takes a turn of the question gate: while one chat answer holds the only
    turn, another chat turn is shed with a one-line "try again" reply (not a traceback, not a
    wait in Gradio's own queue) and /v1/ask gets 503; then both answer again."""
    from gradio_client import Client

    import app as chat_ui

    settings = keyed.replace(max_concurrent_asks=1, max_queued_asks=1)
    release = threading.Event()
    release.set()
    real_stream = Assistant.stream

    def held_stream(self: Assistant, *args: Any, **kwargs: Any) -> Any:
        assert release.wait(WAIT_S)
        yield from real_stream(self, *args, **kwargs)

    monkeypatch.setattr(Assistant, "stream", held_stream)
    assistant = Assistant.open(settings)
    app = create_app(assistant, settings, chat=chat_ui.build_app)
    gate: AskGate = app.state.api.asks
    gate.wait_s = 0.0  # a question that must wait is turned away at once
    replies: list[str] = []
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=WAIT_S) as http:
        assert http.post("/v1/articles", json=SOLAR).status_code == 201

        def chat_client() -> Client:
            return Client(
                url + "/chat/",
                headers={"X-API-Key": KEY},
                verbose=False,
                analytics_enabled=False,
                download_files=False,
                httpx_kwargs={"timeout": WAIT_S},
            )

        question = "How big is the solar farm?"
        first = chat_client()
        assert "#### Sources" in first.predict(question, api_name="/respond")
        release.clear()
        holder = threading.Thread(
            target=lambda: replies.append(first.predict(question, api_name="/respond"))
        )
        holder.start()
        wait_until(lambda: gate.running == 1, "the held chat answer took the turn")
        shed = chat_client().predict(question, api_name="/respond")
        refused = http.post("/v1/ask", json={"question": question})
        assert gate.running == 1  # the held answer still has its turn
        release.set()
        holder.join(timeout=WAIT_S)
        wait_until(lambda: gate.running == 0, "the held chat answer gave its turn back")
        after = chat_client().predict(question, api_name="/respond")
        asked = http.post("/v1/ask", json={"question": question})
    assert shed == chat_ui.render_error(
        "the server is answering 1 questions and 0 are waiting: try again in 1 s"
    )
    assert "\n" not in shed and "Traceback" not in shed
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert len(replies) == 1 and "#### Sources" in replies[0] and "#### Sources" in after
    assert asked.status_code == 200
    assert gate.turned_away == 2 and gate.running == 0


class _TwoDeltas:
    """An answering object whose answer is two pieces of text (and never an ``Answer``)."""

    max_question_chars = 1000

    def catalog(self) -> Any:
        raise AssertionError("not used")

    def stream(self, question: str, history: Any = (), filters: Any = None) -> Any:
        yield AnswerDelta("first")
        yield AnswerDelta("second")


def test_a_chat_answer_stopped_part_way_gives_its_turn_back_and_one_beyond_is_busy() -> None:
    """Gradio steps the chat's generator in worker threads and closes it from the event loop
    (Stop, a closed page): the turn is handed back either way, and without a free turn the
    answer is a ``BusyError`` saying when to try again."""
    gate = AskGate(max_concurrent=1, max_queued=1, wait_s=0.0)
    admitted = AdmittedAnswering(_TwoDeltas(), gate)  # type: ignore[arg-type]

    async def scenario() -> tuple[object, int, str, int]:
        events = admitted.stream("Harbour?")
        first = await anyio.to_thread.run_sync(next, events)
        held = gate.running
        with pytest.raises(BusyError) as busy:
            await anyio.to_thread.run_sync(next, admitted.stream("Another?"))
        events.close()  # as Gradio's Stop does, on the loop's own thread
        await asyncio.sleep(0)  # the turn is handed back through the loop
        return first, held, str(busy.value), gate.running

    first, held, message, after = anyio.run(scenario)
    assert (first, held, after) == (AnswerDelta("first"), 1, 0)
    assert message == "the server is answering 1 questions and 0 are waiting: try again in 1 s"
    assert gate.turned_away == 1
