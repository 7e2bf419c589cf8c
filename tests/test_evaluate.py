"""The eval harness: question-file validation, each metric on hand-computable cases, thresholds,
reports and the ``rag eval`` command (fake embedder), plus one run of the shipped questions on
the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.cli import main
from rag.config import Settings
from rag.errors import RagError
from rag.evaluate import (
    METRICS,
    EvalQuestion,
    citation_support,
    fact_hits,
    load_questions,
    parse_thresholds,
    percentile,
    run_eval,
    score_answer,
    summarize,
    support_rank,
    threshold_failures,
)
from rag.schema import Answer, Citation, Passage
from tests.conftest import CORPUS, REPO

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

QUESTIONS = """
- id: a1
  question: "On what date were the proposals published?"
  facts: [["June 5", "5 June"]]
  support: "In proposals published on June 5"
- id: a2
  question: "Which countries does Brussels want to reinforce relationships with?"
  facts: [["India"], ["Japan"]]
  sources: ["eu-strategy"]
- id: u1
  question: "How much money did the EU allocate to Africa?"
  answerable: false
- id: f1
  history: ["Which countries does Brussels want to reinforce relationships with?"]
  question: "What about them?"
  facts: [["India"]]
"""

ALL_KEYS = {*METRICS, "k", "questions"}


# -- helpers -------------------------------------------------------------------------------------


def passage(text: str, chunk_id: str = "c1", article_id: str = "a") -> Passage:
    return Passage(
        chunk_id=chunk_id,
        article_id=article_id,
        text=text,
        title="T",
        author="",
        date="",
        publisher="",
        url="",
        start=0,
        end=len(text),
        score=1.0,
    )


def citation(n: int, quote: str, chunk_id: str = "c1", article_id: str = "a") -> Citation:
    return Citation(
        n=n,
        article_id=article_id,
        title="T",
        author="",
        date="",
        url="",
        quote=quote,
        chunk_id=chunk_id,
        score=1.0,
    )


def answer(
    text: str,
    citations: tuple[Citation, ...] = (),
    passages: tuple[Passage, ...] = (),
    refused: bool = False,
    total_ms: float = 10.0,
) -> Answer:
    return Answer(
        question="q",
        answer=text,
        refused=refused,
        citations=citations,
        passages=passages,
        timings_ms={"total": total_ms},
    )


PASSAGE = passage("In proposals published on June 5, the 27-country bloc acted. Japan agreed.")
QUOTE = "In proposals published on June 5, the 27-country bloc acted."
GOOD = answer(f"{QUOTE} [1]", (citation(1, QUOTE),), (PASSAGE,))


def write(tmp_path: Path, text: str, name: str = "q.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- loading -------------------------------------------------------------------------------------


def test_a_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    questions = load_questions(write(tmp_path, QUESTIONS))
    assert [q.id for q in questions] == ["a1", "a2", "u1", "f1"]
    assert questions[0].facts == (("June 5", "5 June"),) and questions[0].answerable
    assert not questions[2].answerable and questions[2].facts == ()
    assert questions[3].history == (
        "Which countries does Brussels want to reinforce relationships with?",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('- question: "Why?"\n', "item 1: missing id"),
        ("- id: x1\n", "item 1 (x1): missing question"),
        ('- id: x1\n  question: "Q?"\n  facts: ["June 5"]\n', "item 1 (x1): facts must be"),
        ('- id: x1\n  question: "Q?"\n  facts: [[27]]\n', "item 1 (x1): facts must be"),
        ('- id: x1\n  question: "Q?"\n- id: x1\n  question: "R?"\n', "item 2: duplicate id 'x1'"),
        ('- id: x1\n  question: "Q?"\n  answer: "A"\n', "item 1 (x1): unknown key 'answer'"),
        ('- id: x1\n  question: "Q?"\n  answerable: "no"\n', "answerable must be true or false"),
        ('- id: x1\n  question: "Q?"\n  history: "earlier"\n', "history must be a list"),
        ("id: x1\n", "expected a non-empty list"),
        ("- id: [unclosed\n", "not valid YAML"),
    ],
)
def test_schema_errors_name_the_file_and_the_item(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RagError) as error:
        load_questions(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_a_missing_questions_file_is_a_rag_error(tmp_path: Path) -> None:
    with pytest.raises(RagError, match="cannot read"):
        load_questions(tmp_path / "nope.yaml")


# -- metrics on hand-computable cases ------------------------------------------------------------


def test_fact_hits_accept_any_spelling_case_and_quote_style() -> None:
    assert fact_hits("Published on 5 JUNE by Brussels’ team.", [["June 5", "5 june"], ["27"]]) == [
        True,
        False,
    ]
    assert fact_hits("Brussels' rulebook", [["Brussels’ rulebook"]]) == [True]


def test_fact_recall_is_the_share_of_facts_and_a_refusal_counts_zero() -> None:
    q = EvalQuestion("q", "When?", facts=(("June 5",), ("27",), ("Japan",)))
    assert score_answer(q, GOOD).fact_recall == pytest.approx(2 / 3)
    refused = answer("I could not find the answer. June 5 27 Japan", refused=True)
    assert score_answer(q, refused).fact_recall == 0.0
    assert score_answer(EvalQuestion("u", "Q?", answerable=False), GOOD).fact_recall is None


def test_support_rank_finds_support_text_or_else_a_gold_source() -> None:
    passages = [passage("Nothing here.", "c1", "x"), passage("Japan  agreed.", "c2", "gold")]
    assert support_rank(passages, support="Japan agreed") == 2  # whitespace-insensitive
    assert support_rank(passages, support="India") is None
    assert support_rank(passages, sources=["gold"]) == 2
    assert support_rank(passages) is None


def test_hit_at_k_and_mrr_skip_questions_without_support_or_sources() -> None:
    ranks = {"r1": "In proposals", "r2": "Japan agreed", "r3": "not retrieved"}
    results = [
        score_answer(EvalQuestion(qid, "Q?", support=support), GOOD)
        for qid, support in ranks.items()
    ]
    results.append(score_answer(EvalQuestion("none", "Q?"), GOOD))  # excluded
    metrics = summarize(results, k=5)
    # ranks 1, 1 (same passage), None
    assert metrics["hit_at_k"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["mrr"] == pytest.approx(2 / 3, abs=1e-4)
    two = [passage("a", "c1"), passage("Japan agreed.", "c2")]
    second = score_answer(EvalQuestion("x", "Q?", support="Japan"), answer("", passages=tuple(two)))
    assert summarize([second], k=5)["mrr"] == 0.5


def test_citation_validity_counts_answers_whose_citations_hold() -> None:
    broken = answer(
        "Made up claim [1]", (citation(1, "not in the passage"),), (PASSAGE,)
    )  # quote not verbatim
    refusal = answer("I could not find the answer.", refused=True)
    q = EvalQuestion("q", "Q?")
    results = [score_answer(q, GOOD), score_answer(q, broken), score_answer(q, refusal)]
    assert results[1].citation_problems
    # The clean refusal is not counted: it cites nothing.
    assert summarize(results, k=5)["citation_validity"] == 0.5


def test_citation_support_checks_words_numbers_and_names_per_cited_sentence() -> None:
    assert citation_support(GOOD) == (1, 1, [])
    paraphrase = answer(
        "The 27-country bloc published proposals on June 5 [1]. The bloc has 28 members [1]."
        " It was agreed with Canada [1]. Unrelated words entirely here [1]. Japan too [2].",
        (citation(1, QUOTE),),
        (PASSAGE,),
    )
    supported, total, unsupported = citation_support(paraphrase)
    assert (supported, total) == (1, 5)
    assert unsupported == [
        "The bloc has 28 members",  # number not in the cited text
        "It was agreed with Canada",  # name not in the cited text
        "Unrelated words entirely here",  # content words not shared
        "Japan too",  # marker [2] resolves to nothing
    ]


def test_refusal_accuracy_and_false_refusal_rate() -> None:
    refusal = answer("I could not find the answer.", refused=True)
    answerable = EvalQuestion("a", "Q?", facts=(("June 5",),))
    unanswerable = EvalQuestion("u", "Q?", answerable=False)
    results = [
        score_answer(answerable, GOOD),
        score_answer(answerable, refusal),
        score_answer(answerable, GOOD),
        score_answer(answerable, GOOD),
        score_answer(unanswerable, refusal),
        score_answer(unanswerable, GOOD),
        score_answer(unanswerable, refusal),
    ]
    metrics = summarize(results, k=3)
    assert metrics["false_refusal_rate"] == 0.25
    assert metrics["refusal_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["fact_recall"] == 0.75
    assert metrics["k"] == 3 and metrics["questions"] == 7
    assert [r.ok for r in results] == [True, False, True, True, True, False, True]


def test_latency_percentiles_interpolate_between_ranks() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 50) == 30.0
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 95) == pytest.approx(48.0)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    q = EvalQuestion("q", "Q?")
    results = [score_answer(q, answer("", total_ms=ms)) for ms in (30.0, 10.0, 20.0)]
    metrics = summarize(results, k=5)
    assert metrics["latency_p50_ms"] == 20.0 and metrics["latency_p95_ms"] == 29.0


def test_metrics_with_nothing_to_measure_are_none() -> None:
    metrics = summarize([], k=5)
    assert set(metrics) == ALL_KEYS
    assert all(metrics[name] is None for name in METRICS)


# -- thresholds ----------------------------------------------------------------------------------


def test_thresholds_parse_and_report_each_breach() -> None:
    under = parse_thresholds(["hit_at_k=0.8", "mrr=0.5"], "--fail-under")
    over = parse_thresholds(["false_refusal_rate=0.2"], "--fail-over")
    metrics = {"hit_at_k": 0.7, "mrr": 0.5, "false_refusal_rate": 0.25}
    assert threshold_failures(metrics, under, over) == [
        "hit_at_k 0.7 < 0.8",
        "false_refusal_rate 0.25 > 0.2",
    ]
    assert threshold_failures({"mrr": None}, {"mrr": 0.1}, {}) == [
        "mrr was not measured (bound 0.1)"
    ]


def test_an_unknown_metric_name_lists_the_valid_ones() -> None:
    with pytest.raises(RagError) as error:
        parse_thresholds(["hit_rate=0.8"], "--fail-under")
    assert "'hit_rate'" in str(error.value) and all(name in str(error.value) for name in METRICS)
    with pytest.raises(RagError, match="NAME=VALUE"):
        parse_thresholds(["hit_at_k"], "--fail-under")
    with pytest.raises(RagError, match="needs a number"):
        parse_thresholds(["hit_at_k=high"], "--fail-under")


# -- run_eval and the command --------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "eu.md").write_text(ARTICLE, encoding="utf-8")
    return folder


def test_run_eval_asks_every_question_with_its_history(
    settings: Settings, corpus: Path, tmp_path: Path
) -> None:
    assistant = Assistant.open(settings)
    assistant.ingest([corpus], progress=False)
    questions = load_questions(write(tmp_path, QUESTIONS))
    report = run_eval(assistant, questions)
    assert set(report.metrics) == ALL_KEYS and report.metrics["questions"] == 4
    by_id = {r.id: r for r in report.questions}
    assert not by_id["a1"].refused and by_id["a1"].fact_hits == [True]
    assert by_id["a1"].support_rank is not None
    assert by_id["u1"].refused
    assert report.to_dict()["questions"][0].keys() >= {
        "id",
        "question",
        "answerable",
        "refused",
        "answer",
        "fact_hits",
        "fact_recall",
        "support_rank",
        "citation_problems",
        "latency_ms",
        "ok",
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus: Path) -> Path:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.setenv("RAG_MIN_EVIDENCE", "0.3")
    assert main(["ingest", "--quiet", str(corpus)]) == 0
    return write(tmp_path, QUESTIONS)


def test_eval_writes_json_and_self_contained_html_reports(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    report_json, report_html = tmp_path / "r.json", tmp_path / "r.html"
    code = main(
        [
            "eval",
            "--questions",
            str(env),
            "--report-json",
            str(report_json),
            "--report-html",
            str(report_html),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "a1" in out and "hit_at_k" in out and "questions ok" in out
    data = json.loads(report_json.read_text(encoding="utf-8"))
    assert set(data) >= {"metrics", "questions"}
    assert set(data["metrics"]) == ALL_KEYS and len(data["questions"]) == 4
    page = report_html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_fail_under_and_fail_over_exit_1_with_one_line(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["eval", "--questions", str(env), "--fail-under", "hit_at_k=0"]) == 0
    capsys.readouterr()
    code = main(["eval", "--questions", str(env), "--fail-under", "refusal_accuracy=1.01"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("eval failed: refusal_accuracy") and err.count("\n") == 1
    code = main(["eval", "--questions", str(env), "--fail-over", "latency_p50_ms=0"])
    assert code == 1 and "latency_p50_ms" in capsys.readouterr().err


def test_an_unknown_metric_fails_before_anything_runs(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["eval", "--questions", str(env), "--fail-under", "recall=0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown metric 'recall'" in err and "hit_at_k" in err


def test_compare_prints_one_table_of_metrics_by_mode(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    report_json = tmp_path / "c.json"
    code = main(["eval", "--questions", str(env), "--compare", "--report-json", str(report_json)])
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "dense", "lexical", "hybrid"]
    assert set(json.loads(report_json.read_text(encoding="utf-8"))["compare"]) == {
        "dense",
        "lexical",
        "hybrid",
    }


# -- the shipped questions on the real model ---------------------------------------------------


def test_the_shipped_questions_file_is_valid() -> None:
    questions = load_questions(REPO / "eval" / "questions.yaml")
    assert len(questions) >= 40
    assert sum(not q.answerable for q in questions) >= 8
    assert sum(bool(q.history) for q in questions) >= 5
    article = next(CORPUS.glob("*.md")).read_text(encoding="utf-8")
    assert all(q.support in article for q in questions)


@pytest.mark.integration
def test_the_shipped_questions_run_on_the_real_model(real_settings: Settings) -> None:
    assistant = Assistant.open(real_settings)
    assistant.ingest([CORPUS], progress=False)
    report = run_eval(assistant, load_questions(REPO / "eval" / "questions.yaml"))
    data = report.to_dict()
    assert set(data["metrics"]) == ALL_KEYS
    assert data["metrics"]["questions"] == len(data["questions"]) >= 40


def test_compare_rerank_runs_fused_and_reranked_side_by_side(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    report_json = tmp_path / "r.json"
    code = main(
        ["eval", "--questions", str(env), "--compare", "rerank", "--report-json", str(report_json)]
    )
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "fused", "reranked"]
    assert set(json.loads(report_json.read_text(encoding="utf-8"))["compare"]) == {
        "fused",
        "reranked",
    }
