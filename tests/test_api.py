"""Tests for the HTTP API in ``rag.api``: every route, access rules, limits and error shapes.

Most tests drive the app in-process with ``TestClient`` over the fake embedder and a real
Chroma in a temporary directory; a few run it on uvicorn on 127.0.0.1 (streaming over a real
socket, the examples in ``examples/`` as subprocesses). Nothing reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

import app as chat_ui
from rag.api import (
    INTERNAL_ERROR,
    MISSING_KEY,
    WRITES_DISABLED,
    WRONG_KEY,
    AnswerOut,
    ApiKeys,
    IngestOut,
    JobOut,
    create_app,
    error_status,
    gradio_script_name,
    load_api_keys,
    reassemble_text,
)
from rag.api.jobs import JobStatus
from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import (
    CorpusError,
    IndexLockedError,
    IndexNotBuiltError,
    ProviderError,
    QuestionError,
    RagError,
    SettingsError,
)
from rag.index import IngestReport, writer_lock
from rag.ingest import read_articles
from rag.schema import Answer, Citation
from rag.store import StoredChunk
from tests.conftest import CORPUS, REPO, SEED_ID, free_port
from tests.fake_openai import FakeOpenAIServer
from tests.test_app import only_loopback  # noqa: F401 - autouse: fail any non-local connection

KEY = "test-key-0123456789"
OTHER_KEY = "second-key-9876543210"
AUTH = {"Authorization": f"Bearer {KEY}"}

EU = {
    "id": "eu-strategy",
    "title": "Why Europe Should Double Down On Its Global Tech Ties",
    "author": "Mark Scott",
    "date": "2025-06-05",
    "publisher": "Tech Policy Press",
    "url": "https://news.example/eu",
    "text": (
        "In proposals published on June 5, the executive branch of the 27-country bloc doubled"
        " down on international partnerships.\n\nBrussels wants to reinforce existing"
        " relationships with the likes of India, South Korea and Japan."
    ),
}
SOLAR = {
    "id": "solar-farm",
    "title": "Valley solar farm approved",
    "author": "Ana Ruiz",
    "date": "2024-03-02",
    "text": "The county approved a 40-megawatt solar farm near the river valley on Tuesday.",
}
PARTNERS_Q = "Which countries does Brussels want to reinforce relationships with?"
SOLAR_Q = "How big is the solar farm the county approved?"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.replace(api_keys=f"{KEY},{OTHER_KEY}")


def make_client(settings: Settings, **changes: Any) -> TestClient:
    settings = settings.replace(**changes)
    return TestClient(create_app(Assistant.open(settings), settings), raise_server_exceptions=False)


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        if not response.json()["error"].startswith("warming up:"):
            return response
        time.sleep(0.02)


@pytest.fixture
def client(keyed: Settings) -> Iterator[TestClient]:
    """The API with keys configured and two articles indexed; warmed up."""
    with make_client(keyed) as test_client:
        for article in (EU, SOLAR):
            assert test_client.post("/v1/articles", json=article, headers=AUTH).status_code == 201
        assert wait_ready(test_client).status_code == 200
        yield test_client


def article_ids(client: TestClient) -> list[str]:
    response = client.get("/v1/articles", headers=AUTH)
    assert response.status_code == 200
    return [a["article_id"] for a in response.json()["articles"]]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@contextmanager
def serve(asgi_app: FastAPI) -> Iterator[str]:
    """``asgi_app`` on uvicorn on a free 127.0.0.1 port, in a thread; yields its base URL and
    stops it (bounded) afterwards."""
    for attempt in range(5):  # another process may take the free port before we bind it
        port = free_port()
        config = uvicorn.Config(
            asgi_app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.started:
            break
        server.should_exit = True
        thread.join(timeout=10)
        if attempt == 4:
            raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"


# --- health -----------------------------------------------------------------------------------


def test_readyz_is_503_before_warm_up_and_with_an_empty_index_then_200(keyed: Settings) -> None:
    test_client = make_client(keyed)
    # Without the lifespan (no `with`), warm-up never ran.
    assert test_client.get("/healthz").json() == {"status": "ok"}
    not_warm = test_client.get("/readyz")
    assert not_warm.status_code == 503 and "warming up" in not_warm.json()["error"]

    with test_client:
        empty = wait_ready(test_client)
        assert empty.status_code == 503 and "the index is empty" in empty.json()["error"]
        test_client.post("/v1/articles", json=EU, headers=AUTH)
        ready = test_client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["chunks"] >= 1


def test_readyz_reports_a_failed_warm_up(
    keyed: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Assistant) -> None:
        raise RuntimeError("the model file is damaged")

    monkeypatch.setattr(Assistant, "warm_up", broken)
    with caplog.at_level(logging.ERROR), make_client(keyed) as test_client:
        response = wait_ready(test_client)
    assert response.status_code == 503
    assert response.json()["error"] == "warming up failed: the model file is damaged"


def test_a_data_dir_removed_under_the_server_is_not_ready_and_refuses_writes(
    keyed: Settings,
) -> None:
    with make_client(keyed) as test_client:
        assert test_client.post("/v1/articles", json=EU, headers=AUTH).status_code == 201
        assert wait_ready(test_client).status_code == 200
        shutil.rmtree(keyed.data_dir)
        ready = test_client.get("/readyz")
        assert ready.status_code == 503 and "was removed" in ready.json()["error"]
        write = test_client.post("/v1/articles", json=SOLAR, headers=AUTH)
        assert write.status_code == 503 and "was removed" in write.json()["error"]
        assert not keyed.data_dir.exists()  # the write recreated nothing


# --- asking -----------------------------------------------------------------------------------


def test_ask_returns_the_same_object_as_rag_ask_json(client: TestClient, keyed: Settings) -> None:
    response = client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    expected = Assistant.open(keyed).ask(PARTNERS_Q).to_dict()
    assert list(body) == list(expected) == list(AnswerOut.model_fields)
    assert {k: v for k, v in body.items() if k != "timings_ms"} == {
        k: v for k, v in expected.items() if k != "timings_ms"
    }
    assert body["refused"] is False and "India, South Korea and Japan" in body["answer"]
    assert body["citations"][0]["article_id"] == "eu-strategy"


def test_ask_with_history_and_filters(client: TestClient) -> None:
    only_solar = {"article_ids": ["solar-farm"], "date_from": "2024-01-01"}
    response = client.post(
        "/v1/ask", json={"question": PARTNERS_Q, "filters": only_solar}, headers=AUTH
    )
    assert response.status_code == 200
    assert all(c["article_id"] == "solar-farm" for c in response.json()["citations"])

    follow_up = client.post(
        "/v1/ask",
        json={"question": "And which ones exactly?", "history": [PARTNERS_Q]},
        headers=AUTH,
    )
    assert follow_up.status_code == 200
    assert [c["article_id"] for c in follow_up.json()["citations"]] == ["eu-strategy"]


def test_ask_filtered_by_outlet_as_the_chat_filters(client: TestClient) -> None:
    for outlets, expected in ((["Tech Policy Press"], "eu-strategy"), (["Nobody Daily"], None)):
        body = client.post(
            "/v1/ask",
            json={"question": PARTNERS_Q, "filters": {"publishers": outlets}},
            headers=AUTH,
        ).json()
        cited = {c["article_id"] for c in body["citations"]}
        assert cited == ({expected} if expected else set()), body


def test_an_extractive_stream_is_the_final_answer_alone(client: TestClient) -> None:
    # The extractive answerer picks whole verbatim sentences in one step: it sends no token
    # events that would only replay its finished answer (the llm answerer's tokens are tested
    # in test_generate and below).
    response = client.post("/v1/ask/stream", json={"question": PARTNERS_Q}, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["answer"]
    assert events[0][1]["citations"][0]["article_id"] == "eu-strategy"


def test_stream_reports_a_failure_part_way_as_an_error_event(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(self: Assistant, *args: Any, **kwargs: Any) -> Iterator[Any]:
        from rag.schema import AnswerDelta

        yield AnswerDelta("Half an ")
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Assistant, "stream", failing)
    with caplog.at_level(logging.ERROR, logger="rag.api"):
        response = client.post("/v1/ask/stream", json={"question": PARTNERS_Q}, headers=AUTH)
    assert sse_events(response.text) == [
        ("token", {"text": "Half an "}),
        ("error", {"error": INTERNAL_ERROR}),
    ]
    assert "secret internal detail" not in response.text
    assert any(
        "secret internal detail" in str(r.exc_info and r.exc_info[1]) for r in caplog.records
    )


def test_bad_questions_get_422_with_a_readable_message(client: TestClient) -> None:
    too_long = "x" * 1001
    cases: list[tuple[dict[str, Any] | bytes, str]] = [
        ({"question": too_long}, "The question is 1001 characters long; the limit is 1000."),
        ({"question": "   "}, "Please type a question."),
        (b'{"question": ', "the body is not valid JSON"),
        ({"question": "q?", "top_k": 3}, "top_k: Extra inputs are not permitted"),
        ({"history": []}, "question: Field required"),
        ({"question": 5}, "question: Input should be a valid string"),
        ({"question": "q?", "filters": {"date_from": "June"}}, "filters.date_from"),
        ({"question": "q?", "filters": {"when": "now"}}, "filters.when: Extra inputs"),
        ({"question": "q?", "answerer": "oracle"}, "answerer: Input should be"),
        ({"question": "q?", "answerer": "llm"}, "no language model is configured"),
    ]
    for path in ("/v1/ask", "/v1/ask/stream"):
        for body, message in cases:
            if isinstance(body, bytes):
                headers = {**AUTH, "Content-Type": "application/json"}
                response = client.post(path, content=body, headers=headers)
            else:
                response = client.post(path, json=body, headers=AUTH)
            assert response.status_code == 422, (path, body, response.text)
            assert response.headers["content-type"] == "application/json"
            assert message in response.json()["error"], (path, body)
            assert "Traceback" not in response.text


def test_unexpected_errors_are_500_internal_error_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Assistant, *args: Any, **kwargs: Any) -> Answer:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Assistant, "ask", broken)
    with caplog.at_level(logging.ERROR, logger="rag.api"):
        response = client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH)
    assert response.status_code == 500 and response.json() == {"error": INTERNAL_ERROR}
    assert any(
        "secret internal detail" in str(r.exc_info and r.exc_info[1]) for r in caplog.records
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (QuestionError("q"), 422),
        (SettingsError("s"), 422),
        (CorpusError("c"), 422),
        (RagError("r"), 422),
        (IndexLockedError("l"), 409),
        (IndexNotBuiltError("n"), 503),
        (ProviderError("p"), 503),
    ],
)
def test_rag_errors_map_to_statuses(error: RagError, status: int) -> None:
    assert error_status(error) == status


def test_ask_on_an_empty_index_is_503(keyed: Settings) -> None:
    with make_client(keyed) as test_client:
        response = test_client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH)
    assert response.status_code == 503
    assert response.json() == {"error": "the index is empty: run `rag ingest` first"}


def test_llm_answerer_per_request_shares_the_store(keyed: Settings) -> None:
    reply = (
        "Brussels wants to reinforce existing relationships with India, South Korea and Japan [1]."
    )
    with FakeOpenAIServer() as fake:
        llm = {"llm_base_url": fake.url, "llm_timeout_s": 2.0, "llm_retries": 0}
        with make_client(keyed, **llm) as test_client:
            test_client.post("/v1/articles", json=EU, headers=AUTH)
            fake.enqueue(reply)
            by_llm = test_client.post(
                "/v1/ask", json={"question": PARTNERS_Q, "answerer": "llm"}, headers=AUTH
            )
            extractive = test_client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH)
            state = test_client.app.state.api  # type: ignore[attr-defined]
            other = state.assistant_for("llm")
            assert other is state.assistant_for("llm") and other.store is state.store
    assert by_llm.status_code == 200 and extractive.status_code == 200
    assert by_llm.json()["citations"][0]["article_id"] == "eu-strategy"
    assert len(fake.requests) == 1  # the extractive request did not call the model


# --- access -----------------------------------------------------------------------------------


def test_keys_come_from_settings_and_a_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# newsroom CMS\nfile-key-1\n\n  file-key-2  \n# old: revoked\n")
    settings = Settings(api_keys=" env-key , ,file-key-1", api_keys_file=str(keys_file))
    assert load_api_keys(settings) == ("env-key", "file-key-1", "file-key-2")
    keys = ApiKeys(load_api_keys(settings))
    assert keys.accepts("file-key-2") and not keys.accepts("file-key") and not keys.accepts("")
    assert not ApiKeys([]).configured
    with pytest.raises(SettingsError, match="cannot read the API keys file"):
        load_api_keys(Settings(api_keys_file=str(tmp_path / "missing")))


def test_writes_are_refused_when_no_keys_are_configured(settings: Settings) -> None:
    with make_client(settings) as test_client:
        refused = test_client.post("/v1/articles", json=EU, headers=AUTH)
        deleted = test_client.delete("/v1/articles/eu-strategy")
        listing = test_client.get("/v1/articles")  # reads are open without keys
    assert refused.status_code == 403 and refused.json() == {"error": WRITES_DISABLED}
    assert deleted.status_code == 403
    assert listing.status_code == 200 and listing.json()["total"] == 0


def test_reads_are_open_without_keys(settings: Settings) -> None:
    with make_client(settings) as test_client:
        Assistant.open(settings).ingest([CORPUS], progress=False)
        response = test_client.post("/v1/ask", json={"question": PARTNERS_Q})
    assert response.status_code == 200 and not response.json()["refused"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {KEY}"},
        {"X-API-Key": "wrong-key"},
        {"X-API-Key": KEY[:-1]},
    ],
)
def test_a_missing_or_wrong_key_is_401_and_changes_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    before = article_ids(client)
    new = {**SOLAR, "id": "another"}
    responses = [
        client.post("/v1/articles", json=new, headers=headers),
        client.post("/v1/articles", files={"file": ("a.md", b"# A\n\nText.")}, headers=headers),
        client.delete("/v1/articles/eu-strategy", headers=headers),
        client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=headers),
        client.post("/v1/ask/stream", json={"question": PARTNERS_Q}, headers=headers),
        client.get("/v1/articles", headers=headers),
        client.get("/v1/articles/eu-strategy", headers=headers),
    ]
    for response in responses:
        assert response.status_code == 401, response.request.url
        assert response.json()["error"] in (MISSING_KEY, WRONG_KEY)
        assert response.headers["www-authenticate"] == "Bearer"
    assert article_ids(client) == before


def test_either_header_carries_the_key(client: TestClient) -> None:
    for headers in ({"Authorization": f"Bearer {OTHER_KEY}"}, {"X-API-Key": KEY}):
        assert client.get("/v1/articles", headers=headers).status_code == 200


# --- articles ---------------------------------------------------------------------------------


def test_posting_the_same_article_twice_embeds_nothing_the_second_time(client: TestClient) -> None:
    again = client.post("/v1/articles", json=EU, headers=AUTH)
    assert again.status_code == 200
    body = again.json()
    assert body["created"] is False and body["chunks_embedded"] == 0
    assert body["articles_unchanged"] == 1 and body["article_ids"] == ["eu-strategy"]

    edited = client.post(
        "/v1/articles", json={**EU, "text": EU["text"] + " More news."}, headers=AUTH
    )
    assert edited.status_code == 200 and edited.json()["articles_updated"] == 1


def test_a_new_article_is_201_and_gets_a_derived_id(client: TestClient) -> None:
    article = {k: v for k, v in SOLAR.items() if k != "id"} | {"url": "https://news.example/s"}
    response = client.post("/v1/articles", json=article, headers=AUTH)
    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True and body["chunks_embedded"] >= 1
    (new_id,) = body["article_ids"]
    assert new_id in article_ids(client)
    assert client.post("/v1/articles", json=article, headers=AUTH).json()["article_ids"] == [new_id]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": "No text"}, "text: Field required"),
        ({"title": "T", "text": ""}, "text: String should have at least 1 character"),
        ({"title": "T", "text": "x", "id": "bad id!"}, "id: String should match pattern"),
        ({"title": "T", "text": "x", "tags": ["a"]}, "tags: Extra inputs are not permitted"),
        ({"title": "T", "text": "  \n "}, "no article text"),
        ({"title": "T", "text": "Body.", "date": "not a date"}, "date"),
    ],
)
def test_bad_articles_are_422_and_change_nothing(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    before = article_ids(client)
    response = client.post("/v1/articles", json=body, headers=AUTH)
    assert response.status_code == 422 and message in response.json()["error"]
    assert article_ids(client) == before


def test_an_uploaded_file_is_read_like_rag_ingest(client: TestClient) -> None:
    corpus_file = next(CORPUS.glob("*.md"))
    response = client.post(
        "/v1/articles",
        files={"file": (corpus_file.name, corpus_file.read_bytes(), "text/markdown")},
        headers=AUTH,
    )
    assert response.status_code == 201 and response.json()["article_ids"] == [SEED_ID]

    # The full text comes back exactly as `rag ingest` reads it, rebuilt from the chunks.
    (expected,) = read_articles([corpus_file]).articles
    article = client.get(f"/v1/articles/{SEED_ID}", headers=AUTH).json()
    assert article["chunks"] > 1
    assert article["text"] == expected.text
    assert (article["title"], article["author"], article["date"]) == (
        expected.title,
        expected.author,
        expected.date,
    )


def test_an_uploaded_export_adds_every_readable_row(client: TestClient) -> None:
    lines = [
        json.dumps({"id": "w1", "title": "One", "text": "First wire story."}),
        "{not json",
        json.dumps({"id": "w2", "title": "Two", "text": "Second wire story."}),
    ]
    response = client.post(
        "/v1/articles", files={"file": ("wire.jsonl", "\n".join(lines).encode())}, headers=AUTH
    )
    assert response.status_code == 201
    body = response.json()
    assert body["article_ids"] == ["w1", "w2"]
    assert [s["source"] for s in body["skipped"]] == ["wire.jsonl#line 2"]
    assert {"w1", "w2"} <= set(article_ids(client))


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ({"file": ("notes.pdf", b"%PDF-1.4")}, 422, "use one of .md"),
        ({"file": ("empty.md", b"")}, 422, "no article could be read from the upload"),
        ({"other": ("a.md", b"# A\n\nText.")}, 422, "'file' field"),
    ],
)
def test_bad_uploads_are_refused(
    client: TestClient, files: dict[str, Any], status: int, message: str
) -> None:
    before = article_ids(client)
    response = client.post("/v1/articles", files=files, headers=AUTH)
    assert response.status_code == status and message in response.json()["error"]
    assert article_ids(client) == before


def test_other_content_types_are_415(client: TestClient) -> None:
    response = client.post(
        "/v1/articles", content=b"title", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and "application/json" in response.json()["error"]


def test_listing_is_paged_newest_first(client: TestClient) -> None:
    client.post("/v1/articles", json={**SOLAR, "id": "undated", "date": ""}, headers=AUTH)
    everything = client.get("/v1/articles", headers=AUTH).json()
    assert everything["total"] == 3
    assert [a["article_id"] for a in everything["articles"]] == [
        "eu-strategy",
        "solar-farm",
        "undated",
    ]
    assert everything["articles"][0] == {
        "article_id": "eu-strategy",
        "title": EU["title"],
        "author": "Mark Scott",
        "date": "2025-06-05",
        "publisher": "Tech Policy Press",
        "url": "https://news.example/eu",
        "chunks": 1,
    }
    page = client.get("/v1/articles?offset=1&limit=1", headers=AUTH).json()
    assert (page["total"], page["offset"], page["limit"]) == (3, 1, 1)
    assert [a["article_id"] for a in page["articles"]] == ["solar-farm"]
    assert client.get("/v1/articles?limit=0", headers=AUTH).status_code == 422
    assert client.get("/v1/articles?offset=-1", headers=AUTH).status_code == 422


def test_unknown_articles_are_404(client: TestClient) -> None:
    for response in (
        client.get("/v1/articles/nope", headers=AUTH),
        client.delete("/v1/articles/nope", headers=AUTH),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "no article with id 'nope'"}


def test_delete_then_ask_no_longer_finds_it(client: TestClient) -> None:
    before = client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH).json()
    assert [c["article_id"] for c in before["citations"]] == ["eu-strategy"]

    deleted = client.delete("/v1/articles/eu-strategy", headers=AUTH)
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True and deleted.json()["chunks_deleted"] == 1

    after = client.post("/v1/ask", json={"question": PARTNERS_Q}, headers=AUTH).json()
    assert all(c["article_id"] != "eu-strategy" for c in after["citations"])
    assert "India" not in after["answer"]
    assert article_ids(client) == ["solar-farm"]
    assert client.get("/v1/articles/eu-strategy", headers=AUTH).status_code == 404


def test_a_locked_index_is_409_and_changes_nothing(client: TestClient, keyed: Settings) -> None:
    before = article_ids(client)
    with writer_lock(keyed):  # as if `rag ingest` were running
        added = client.post("/v1/articles", json={**SOLAR, "id": "new"}, headers=AUTH)
        deleted = client.delete("/v1/articles/eu-strategy", headers=AUTH)
    for response in (added, deleted):
        assert response.status_code == 409
        assert "another process is writing the index" in response.json()["error"]
    assert article_ids(client) == before


def test_concurrent_writes_in_one_process_queue_instead_of_failing(client: TestClient) -> None:
    statuses: list[int] = []

    def post(n: int) -> None:
        article = {**SOLAR, "id": f"parallel-{n}", "text": f"Story number {n} about the farm."}
        statuses.append(client.post("/v1/articles", json=article, headers=AUTH).status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [201] * 4
    assert len(article_ids(client)) == 6


def test_reassemble_text_takes_overlaps_once_and_refills_gaps() -> None:
    text = "One. Two. Three.\n\nFour five. Six."

    def chunk(start: int, end: int) -> StoredChunk:
        return StoredChunk(f"{start}", text[start:end], {"start": start, "end": end})

    # "One. Two." | overlap "Two. Three." | paragraph gap | "Four five." | space gap | "Six."
    chunks = [chunk(29, 33), chunk(0, 9), chunk(5, 16), chunk(18, 28)]
    assert reassemble_text(chunks) == text
    assert reassemble_text([chunk(0, 16)]) == text[:16]


# --- limits, CORS, framing --------------------------------------------------------------------


def test_oversize_bodies_are_413_by_length_and_while_streaming(keyed: Settings) -> None:
    with make_client(keyed, max_body_bytes=1000, max_upload_bytes=5000) as test_client:
        big_json = json.dumps({"question": "x" * 2000}).encode()
        by_length = test_client.post(
            "/v1/ask", content=big_json, headers={**AUTH, "Content-Type": "application/json"}
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"title": "T", "text": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}'

        streamed = test_client.post(
            "/v1/articles", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        article = b"---\ntitle: Big\n---\n\n" + b"Words and more words. " * 150  # ~3.3 kB
        upload_ok = test_client.post(
            "/v1/articles", files={"file": ("big.md", article)}, headers=AUTH
        )
        upload_too_big = test_client.post(
            "/v1/articles", files={"file": ("huge.md", article * 2)}, headers=AUTH
        )
        listed = test_client.get("/v1/articles", headers=AUTH).json()
    for response, limit in ((by_length, 1000), (streamed, 1000), (upload_too_big, 5000)):
        assert response.status_code == 413
        assert response.json() == {
            "error": f"the request body is larger than the limit of {limit} bytes"
        }
    assert upload_ok.status_code == 201  # an upload may be larger than a JSON body
    assert [a["title"] for a in listed["articles"]] == ["Big"]


def test_cors_allows_only_the_listed_origins(keyed: Settings) -> None:
    def preflight(test_client: TestClient, origin: str) -> httpx.Response:
        return test_client.options(
            "/v1/ask",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )

    with make_client(keyed, cors_origins="https://cms.example") as test_client:
        allowed = preflight(test_client, "https://cms.example")
        denied = preflight(test_client, "https://evil.example")
        simple = test_client.get("/v1/articles", headers={**AUTH, "Origin": "https://cms.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://cms.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == "https://cms.example"

    with make_client(keyed) as default_client:  # none by default
        response = preflight(default_client, "http://127.0.0.1:9999")
    assert "access-control-allow-origin" not in response.headers


@pytest.fixture
def chat_client(keyed: Settings) -> Callable[..., TestClient]:
    def open_client(**changes: Any) -> TestClient:
        settings = keyed.replace(**changes)
        assistant = Assistant.open(settings)
        api = create_app(assistant, settings, chat=chat_ui.build_app)
        return TestClient(api, raise_server_exceptions=False)

    return open_client


def test_chat_is_mounted_with_frame_ancestors(chat_client: Callable[..., TestClient]) -> None:
    with chat_client() as test_client:  # keys are configured: the chat's pages need one
        root = test_client.get("/", follow_redirects=False)
        page = test_client.get("/chat/", headers=AUTH)
        api = test_client.get("/healthz")
        script = test_client.get("/embed/gradio.js")
        name = gradio_script_name()
        asset = test_client.get(f"/chat/assets/{name}", headers=AUTH)
        stylesheet = test_client.get("/assets/some.css", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/chat/"
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "content-security-policy" not in api.headers
    # The web component's loader imports the hashed script the chat page itself loads.
    assert f"./assets/{name}" in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.text == f'import "../chat/assets/{name}";\n'
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert stylesheet.status_code == 307
    assert stylesheet.headers["location"] == "/chat/assets/some.css"

    with chat_client(frame_ancestors="'self' http://127.0.0.1:8001") as test_client:
        framed = test_client.get("/chat/", headers=AUTH)
    assert framed.headers["content-security-policy"] == (
        "frame-ancestors 'self' http://127.0.0.1:8001"
    )
    assert "x-frame-options" not in framed.headers


def test_openapi_documents_the_routes_and_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/ask/stream", "/v1/articles", "/v1/articles/{article_id}"} <= set(
        spec["paths"]
    )
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["AskIn"]["additionalProperties"] is False
    assert set(schemas["AnswerOut"]["properties"]) == set(AnswerOut.model_fields)
    post_article = spec["paths"]["/v1/articles"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(post_article)
    assert client.get("/docs").status_code == 200


def test_response_models_are_derived_from_the_dataclasses() -> None:
    """One source of truth: a field added to a dataclass shows up in the API's models."""
    citation = Citation(1, "a", "T", "Au", "2025-06-05", "", "q", "c1", 0.5)
    answer = Answer("q?", "It is so [1].", False, (citation,), (), {"total": 1.0})
    assert AnswerOut.model_validate(answer.to_dict()).model_dump() == answer.to_dict()
    nested = AnswerOut.model_fields["citations"].annotation
    assert set(typing.get_args(nested)[0].model_fields) == {
        f.name for f in dataclasses.fields(Citation)
    }
    report_fields = {f.name for f in dataclasses.fields(IngestReport)} - {"skipped"}
    assert report_fields | {"created", "article_ids", "skipped"} == set(IngestOut.model_fields)
    assert set(JobOut.model_fields) == {f.name for f in dataclasses.fields(JobStatus)}


# --- over a real socket -----------------------------------------------------------------------


@pytest.fixture
def served(keyed: Settings) -> Iterator[str]:
    """The whole `rag serve` app (API and chat) on uvicorn, with the corpus indexed."""
    Assistant.open(keyed).ingest([CORPUS], progress=False)
    assistant = Assistant.open(keyed)
    api = create_app(assistant, keyed, chat=chat_ui.build_app)
    with serve(api) as url:
        yield url


def test_stream_over_a_real_socket(served: str) -> None:
    names = []
    with (
        httpx.Client(base_url=served, headers=AUTH, timeout=30) as http,
        http.stream("POST", "/v1/ask/stream", json={"question": PARTNERS_Q}) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
    assert names == ["answer"]  # the extractive answer is sent whole, once it is checked


def run_example(script: str, *args: str, served: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_URL": served, "RAG_API_KEY": KEY}
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_example_http_client_adds_an_article_and_asks(served: str, tmp_path: Path) -> None:
    article = tmp_path / "article.json"
    article.write_text(json.dumps(SOLAR), encoding="utf-8")
    added = run_example("ask_http.py", "--add", str(article), SOLAR_Q, served=served)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added: solar-farm (")
    assert "40-megawatt" in added.stdout and "[1] Valley solar farm approved" in added.stdout

    streamed = run_example("ask_http.py", "--stream", PARTNERS_Q, served=served)
    assert streamed.returncode == 0, streamed.stderr
    assert "Sources:" in streamed.stdout and "India, South Korea and Japan" in streamed.stdout

    unauthorised = subprocess.run(
        [sys.executable, str(REPO / "examples" / "ask_http.py"), PARTNERS_Q],
        env={**os.environ, "RAG_URL": served, "RAG_API_KEY": "wrong"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unauthorised.returncode == 1
    assert unauthorised.stderr.strip() == f"error 401: {WRONG_KEY}"


def test_example_gradio_client_asks_the_chat_with_the_key(served: str) -> None:
    # run_example sets RAG_API_KEY, which the example sends as X-API-Key.
    result = run_example("ask_gradio_client.py", PARTNERS_Q, served=served)
    assert result.returncode == 0, result.stderr
    assert "#### Sources" in result.stdout and "India, South Korea and Japan" in result.stdout


# --- rag serve --------------------------------------------------------------------------------


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "index").mkdir()  # an empty index: `rag serve` refuses a missing folder
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")


def test_rag_serve_runs_the_api_with_the_chat_on_loopback(
    serve_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **options: ran.update(api=api, **options))
    assert main(["serve", "--port", "7999"]) == 0
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 7999)
    # Routers stay nested in the app's routes: their contexts give each route's full path.
    paths = {str(context.path) for context in iter_route_contexts(ran["api"].routes)}
    assert {"/v1/ask", "/v1/articles", "/readyz", "/chat"} <= paths
    err = capsys.readouterr().err
    assert "the index is empty" in err and "writes disabled" in err


def test_rag_serve_stops_on_an_unreadable_keys_file(
    serve_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rag.cli import main

    monkeypatch.setenv("RAG_API_KEYS_FILE", str(tmp_path / "missing-keys"))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not serve"))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read the API keys file")
