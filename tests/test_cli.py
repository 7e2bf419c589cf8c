"""The ``rag`` command: JSON shape, one-line errors, exit codes."""

from __future__ import annotations

import codecs
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
        (
            ["ask", "--since", "2025-06-06", "--until", "2025-06-01", "What?"],
            "date_from (2025-06-06) is after date_to (2025-06-01): no article can match",
        ),
        (["ask", "--top-k", "0", "What?"], "top_k (RAG_TOP_K) must be greater than 0"),
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


def test_a_data_dir_that_does_not_exist_is_refused_and_not_created(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # never serve
    run(capsys, "ingest", "--quiet", str(env))
    typo = tmp_path / "indx"
    questions = Path(__file__).resolve().parent.parent / "eval" / "questions.yaml"
    for argv in (["ask", "What?"], ["eval", "--questions", str(questions)], ["serve"]):
        code, out, err = run(capsys, *argv, "--data-dir", str(typo))
        assert (code, out) == (2, ""), argv
        assert err.startswith(f"error: no index at {typo}: run `rag ingest --data-dir {typo}`")
        assert err.count("\n") == 1
        assert not typo.exists(), argv
    assert run(capsys, "ingest", "--quiet", "--data-dir", str(typo), str(env))[0] == 0
    assert typo.is_dir()  # ingest starts a new index where it is told to


def test_red_team_files_are_skipped_with_one_line_each_and_the_rest_ingested(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "loop.md").symlink_to("loop.md")
    utf16 = ARTICLE.replace("id: eu-strategy", "id: eu-utf16").replace("Why", "How")
    (env / "utf16.md").write_bytes(codecs.BOM_UTF16_LE + utf16.encode("utf-16-le"))
    (env / "deep.html").write_text(
        "<html><head><title>Deep</title></head><body>"
        + "<div>" * 5000
        + "<p>The harbour council voted seven to two on Wednesday to build the wall.</p>"
        + "</div>" * 5000
        + "</body></html>",
        encoding="utf-8",
    )
    with (env / "huge.txt").open("wb") as huge:
        huge.truncate(50_000_000)
    (env / "dots.md").write_text(ARTICLE.replace("id: eu-strategy", "id: '..'"), "utf-8")

    code, out, err = run(capsys, "ingest", "--quiet", "--json", str(env))

    assert code == 0
    report = json.loads(out)
    assert report["articles_added"] == 3  # eu.md, utf16.md, deep.html
    assert {item["source"]: item["reason"] for item in report["skipped"]} == {
        str(env / "loop.md"): "symlink loop: following the link never reaches a file",
        str(env / "huge.txt"): "file is 50.0 MB; the limit for one article is 5 MB"
        " (a .jsonl or .csv export may hold many)",
        str(env / "dots.md"): "bad id '..' (an id of only dots cannot be used in a URL)",
    }
    assert err.count("\n") == 3 and all(line.startswith("skipped ") for line in err.splitlines())
