"""End to end on the real parts: the packaged embedding model, a real Chroma in a temporary
directory, the real CLI in a subprocess and the real Gradio app driven by gradio_client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

import app
from rag.assistant import Assistant
from rag.cite import citation_problems
from rag.config import Settings
from rag.ingest import read_articles
from tests.conftest import CORPUS, REPO, SEED_ID, free_port

pytestmark = pytest.mark.integration

DATE_QUESTION = "On what date were the International Digital Strategy proposals published?"
QUESTIONS = [
    DATE_QUESTION,
    "Which countries does Brussels want to reinforce relationships with?",
    "What are the priorities for global cooperation?",
    "Who is Kaja Kallas?",
    "What is digital sovereignty?",
    "What happened to the EU-US Trade and Technology Council?",
    "Which regions will get more support for digital infrastructure?",
    "How many countries are in the bloc?",
    "What is the capital of Australia?",
    "How much money did the EU allocate to Africa?",
]
FURNITURE = ["Donate", "Related", "Topics", "Authors", "senior resident fellow", "About-Face"]


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("index"))
    report = Assistant.open(settings).ingest([CORPUS], progress=False)
    assert report.articles_added == 1 and report.chunks_embedded > 0 and not report.skipped
    return settings


@pytest.fixture(scope="module")
def assistant(corpus_index: Settings) -> Assistant:
    return Assistant.open(corpus_index)


def test_reingesting_the_corpus_embeds_zero_chunks(assistant: Assistant) -> None:
    report = assistant.ingest([CORPUS], progress=False)
    assert report.chunks_embedded == 0 and report.articles_unchanged == 1


def test_ingest_stores_the_judges_sentence_vectors_so_answers_embed_only_the_question(
    assistant: Assistant,
) -> None:
    from rag.vectors import VectorFile

    file = VectorFile(assistant.settings.vectors_path)
    assert SEED_ID in file.prepared() and file.count() > 20
    judge = assistant.judge()
    stored = judge.sentence_embedder().embedder  # type: ignore[attr-defined]
    base, seen = stored.embedder, []

    class Spy:
        model_id = base.model_id

        def embed(self, texts: list[str]) -> object:
            seen.extend(texts)
            return base.embed(texts)

    stored.embedder = Spy()
    try:
        answer = assistant.ask("Which Asian countries does Brussels want closer ties with?")
    finally:
        stored.embedder = base
    assert not answer.refused and "rerank" in answer.timings_ms
    # The question (for the judge's int8 model) is all that was embedded at question time.
    assert set(seen) <= {answer.search_query, answer.question}


def test_the_date_question_is_answered_with_june_5_and_a_verbatim_quote(
    assistant: Assistant,
) -> None:
    answer = assistant.ask(DATE_QUESTION)
    assert not answer.refused
    assert "June 5" in answer.answer
    article_text = read_articles([CORPUS]).articles[0].text
    assert answer.citations and all(c.quote in article_text for c in answer.citations)
    assert answer.citations[0].article_id == SEED_ID
    assert answer.citations[0].date == "2025-06-05"


def test_a_question_the_articles_do_not_answer_is_declined(assistant: Assistant) -> None:
    answer = assistant.ask("What is the capital of Australia?")
    assert answer.refused and not answer.citations
    assert "could not find" in answer.answer


def test_every_citation_resolves_to_a_retrieved_passage_containing_its_quote(
    assistant: Assistant,
) -> None:
    answered = 0
    for question in QUESTIONS:
        answer = assistant.ask(question)
        assert citation_problems(answer) == [], question
        answered += not answer.refused
    assert answered >= len(QUESTIONS) - 2


def test_a_follow_up_uses_the_conversation(assistant: Assistant) -> None:
    answer = assistant.ask("What did she say?", ["Who is Kaja Kallas?"])
    assert not answer.refused and "Kallas" in answer.answer


def test_site_furniture_of_the_raw_page_never_becomes_searchable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "index")
    raw = REPO / "tests" / "fixtures" / "raw"
    assistant = Assistant.open(settings)
    assistant.ingest([raw, CORPUS], progress=False)
    texts = [c.text for c in assistant.store.iter_chunks()]
    lexical = assistant.retriever().lexical
    assert texts and len(lexical.chunks) == len(texts)
    for word in FURNITURE:
        assert not any(word in text for text in texts), word
    assert (
        not assistant.retriever()
        .search("Donate Topics Related Authors")
        .passages[0]
        .text.count("Donate")
    )


def test_a_bad_file_does_not_stop_ingestion_or_lose_what_is_indexed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = Settings(data_dir=tmp_path / "index")
    assistant = Assistant.open(settings)
    assistant.ingest([corpus], progress=False)
    chunks_before = {c.chunk_id for c in assistant.store.iter_chunks()}
    # The indexed article's file is damaged, and a new broken file appears beside it.
    (seed_file,) = corpus.glob("*.md")
    seed_file.write_bytes(b"\xff\xfe\x00\x00 not text")
    (corpus / "empty.md").write_text("   \n", encoding="utf-8")
    report = assistant.ingest([corpus], prune=True, progress=False)
    assert {Path(source).name for source, _ in report.skipped} == {seed_file.name, "empty.md"}
    assert report.articles_removed == 0
    assert {c.chunk_id for c in assistant.store.iter_chunks()} == chunks_before
    assert not assistant.ask(DATE_QUESTION).refused


def test_cli_ask_json_prints_exactly_one_object(corpus_index: Settings) -> None:
    env = {**os.environ, "RAG_DATA_DIR": str(corpus_index.data_dir)}
    completed = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "--json", DATE_QUESTION],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
        check=True,
    )
    answer = json.loads(completed.stdout)
    assert set(answer) >= {"answer", "refused", "citations", "timings_ms"}
    assert "June 5" in answer["answer"] and answer["citations"][0]["quote"]


@pytest.fixture
def served(assistant: Assistant) -> Iterator[str]:
    blocks = app.build_app(assistant)
    url = app.launch(blocks, "127.0.0.1", free_port(), block=False)
    try:
        yield url
    finally:
        blocks.close()


def test_the_running_chat_answers_with_sources_and_declines(served: str) -> None:
    def ask(question: str) -> str:
        client = Client(served, verbose=False, analytics_enabled=False, download_files=False)
        try:
            reply = client.submit(question, api_name="/respond").result(timeout=120)
        finally:
            client.close()
        assert isinstance(reply, str)
        return reply

    reply = ask(DATE_QUESTION)
    assert "June 5" in reply and "Sources" in reply and "5 June 2025" in reply
    assert "Why Europe Should Double Down On Its Global Tech Ties" in reply
    declined = ask("What is the capital of Australia?")
    assert "Not in the articles" in declined and "Sources" not in declined


STRIKE = """---
id: rail-strike
title: Rail drivers strike over pay
author: Ana Diaz
date: 2017-01-09
---

Train drivers across the country walked out on Monday in a dispute over pay and rosters.

The union said the strike would last forty-eight hours.
"""


def test_a_serving_process_sees_articles_another_process_ingested(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "index", refresh_interval_s=0)
    serving = Assistant.open(settings)
    serving.ingest([CORPUS], progress=False)
    question = "How long will the train drivers strike last?"
    assert serving.ask(question).refused
    extra = tmp_path / "new"
    extra.mkdir()
    (extra / "strike.md").write_text(STRIKE, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", "--quiet", str(CORPUS), str(extra)],
        env={**os.environ, "RAG_DATA_DIR": str(settings.data_dir)},
        cwd=REPO,
        capture_output=True,
        timeout=180,
        check=True,
    )
    answer = serving.ask(question)
    assert not answer.refused and "forty-eight hours" in answer.answer
    assert citation_problems(answer) == []
    assert not serving.ask(DATE_QUESTION).refused


def test_an_index_is_read_with_the_packaged_model_that_built_it(
    corpus_index: Settings, tmp_path: Path
) -> None:
    # Whatever a new index would get, questions about an existing one are embedded with the
    # model that built it, so an index made before the default changed keeps answering.
    built = Assistant.open(corpus_index).embedder.model_id
    other = "onnx-int8" if built.startswith("sentence-transformers") else "sentence-transformers"
    settings = Settings(data_dir=corpus_index.data_dir, embedding_provider=other)
    reopened = Assistant.open(settings)
    assert reopened.embedder.model_id == built
    assert reopened.settings.index.embedding_provider != other
    assert not reopened.ask(DATE_QUESTION).refused
    fresh = Assistant.open(Settings(data_dir=tmp_path / "new", embedding_provider=other))
    assert fresh.embedder.model_id != built
