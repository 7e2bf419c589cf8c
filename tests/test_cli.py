"""The ``rag`` command: JSON shape, one-line errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main

ARTICLE = """---
id: eu-strategy
title: Why Europe Should Double Down On Its Global Tech Ties
author: Mark Scott
date: 2025-06-05
publisher: Tech Policy Press
---

In proposals published on June 5, the executive branch of the 27-country bloc doubled down on
international partnerships.

Brussels wants to reinforce existing relationships with the likes of India, South Korea and Japan.
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.setenv("RAG_MIN_EVIDENCE", "0.3")
    monkeypatch.setenv("RAG_JUDGE", "fake-overlap")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "eu.md").write_text(ARTICLE, encoding="utf-8")
    return corpus


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_then_ask_json_prints_exactly_one_object_of_the_shared_shape(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", "--quiet", str(env))[0] == 0
    code, out, _ = run(capsys, "ask", "--json", "On what date were the proposals published?")
    assert code == 0
    answer = json.loads(out)  # exactly one JSON document, nothing else on stdout
    assert set(answer) >= {"answer", "refused", "citations", "timings_ms"}
    assert answer["refused"] is False and "June 5" in answer["answer"]
    citation = answer["citations"][0]
    assert {
        "n",
        "article_id",
        "title",
        "quote",
        "author",
        "date",
        "url",
        "chunk_id",
        "score",
    } <= set(citation)
    assert citation["article_id"] == "eu-strategy" and citation["n"] == 1
    assert citation["quote"] in ARTICLE.replace("\n", " ")


def test_second_ingest_embeds_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "ingest", "--quiet", str(env))
    code, out, _ = run(capsys, "ingest", "--quiet", "--json", str(env))
    report = json.loads(out)
    assert code == 0 and report["chunks_embedded"] == 0 and report["articles_unchanged"] == 1


def test_ask_with_history_answers_the_follow_up(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "ingest", "--quiet", str(env))
    code, out, _ = run(
        capsys,
        "ask",
        "--json",
        "Which countries?",
        "--history",
        "Who does Brussels want to reinforce relationships with?",
    )
    assert code == 0 and "India" in json.loads(out)["answer"]


def test_bad_files_are_reported_and_do_not_stop_ingestion(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "empty.md").write_text("", encoding="utf-8")
    (env / "binary.txt").write_bytes(b"\x00\x01\x02garbage")
    code, out, err = run(capsys, "ingest", "--quiet", "--json", str(env))
    assert code == 0
    assert json.loads(out)["articles_added"] == 1
    assert "empty.md" in err and "binary.txt" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", ""], "Please type a question"),
        (["ask", "x" * 1001], "the limit is 1000"),
        (["ask", "--since", "yesterday", "What?"], "date_from must be an ISO date"),
        (["ask", "--top-k", "0", "What?"], "top_k must be greater than 0"),
        (["ingest", "/no/such/folder"], "no such file or directory"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run(capsys, "ingest", "--quiet", str(env))
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_asking_before_ingesting_says_what_to_do(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ask", "What?")
    assert code == 2 and "rag ingest" in err
