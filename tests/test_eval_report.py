"""What ``rag eval`` shows: the HTML report's failure filter, and ``--against OLD.json``.

The per-question changes are checked on real report JSONs that ``rag eval`` writes (fake
embedder) with two set-ups: one that refuses everything and reads one passage, and the
default. The filter is checked as markup, and in headless Chromium (integration).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.cli import main
from rag.errors import RagError
from rag.eval_report import (
    MetricDelta,
    PreviousQuestion,
    PreviousRun,
    QuestionChange,
    check_question_set,
    load_previous,
    render_html,
)
from rag.evaluate import EvalQuestion, EvalReport, score_answer, summarize
from tests.test_evaluate import ARTICLE, GOOD, QUESTIONS, answer, write

# A second article that also speaks of published proposals, so that with one passage read the
# support of question a1 can be missed.
DISTRACTOR = """---
id: harbour
title: Harbour wall repairs approved
author: Ann Lee
date: 2025-05-01
publisher: Coast News
---

The council approved repairs to the harbour wall on Tuesday. The proposals were published by the
council engineers in May.
"""

# Refuses every question (the heuristic answerer with an evidence bar nothing reaches) and reads
# one passage.
STRICT = {"RAG_ANSWERER": "heuristic", "RAG_MIN_EVIDENCE": "0.99", "RAG_TOP_K": "1"}


@pytest.fixture
def questions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The questions file, over an index of the two articles (fake embedder)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "eu.md").write_text(ARTICLE, encoding="utf-8")
    (corpus / "harbour.md").write_text(DISTRACTOR, encoding="utf-8")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDING_PROVIDER", "fake-hash")
    monkeypatch.setenv("RAG_MIN_EVIDENCE", "0.3")
    assert main(["ingest", "--quiet", str(corpus)]) == 0
    return write(tmp_path, QUESTIONS)


def run_eval(
    questions: Path, report: Path, monkeypatch: pytest.MonkeyPatch, *args: str, strict: bool
) -> int:
    with monkeypatch.context() as env:
        for name, value in (STRICT if strict else {}).items():
            env.setenv(name, value)
        return main(["eval", "--questions", str(questions), "--report-json", str(report), *args])


def changed_rows(out: str) -> dict[str, str]:
    """Question id -> its change column, from the table ``--against`` prints."""
    lines = out.split("Against ", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id ")) + 2
    rows = {}
    for line in lines[start:]:
        if not line.strip() or line.startswith("("):
            break
        qid, rest = line.split(maxsplit=1)
        rows[qid] = rest
    return rows


def test_against_prints_each_questions_change_and_the_metric_deltas(
    questions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    strict, default, again = (tmp_path / f"{n}.json" for n in ("strict", "default", "again"))
    assert run_eval(questions, strict, monkeypatch, strict=True) == 0
    capsys.readouterr()
    page = tmp_path / "r.html"
    args = ("--against", str(strict), "--report-html", str(page))
    assert run_eval(questions, default, monkeypatch, *args, strict=False) == 0
    out = capsys.readouterr().out
    assert f"Against {strict} (k 1 -> 5): 3 of 4 questions changed" in out
    rows = changed_rows(out)
    assert set(rows) == {"a1", "a2", "f1"}  # u1 was refused and is refused
    assert rows["a2"].startswith("wrong->right, refused->answered, facts")
    assert "refused->answered, miss->hit" in rows["a1"] and "- -> 2" in rows["a1"]
    assert (
        "0 right->wrong, 2 wrong->right, 3 refused->answered, 0 answered->refused,"
        " 1 hit@k changes; 1 unchanged"
    ) in out
    deltas = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-10:]}
    assert deltas["hit_at_k"] == ["0.500", "1.000", "+0.500", "better"]
    assert deltas["false_refusal_rate"] == ["1.000", "0.000", "-1.000", "better"]
    assert deltas["refusal_accuracy"] == ["1.000", "1.000", "0"]
    assert deltas["citation_validity"] == ["-", "1.000", "-"]  # nothing cited before

    data = json.loads(default.read_text(encoding="utf-8"))["against"]
    assert data["previous"] == str(strict) and data["k"] == [1, 5]
    assert data["counts"]["wrong->right"] == 2 and data["counts"]["unchanged"] == 1
    assert {q["id"] for q in data["questions"]} == {"a1", "a2", "f1"}
    assert data["metrics"]["hit_at_k"] == {
        "before": 0.5,
        "now": 1.0,
        "delta": 0.5,
        "better": True,
    }
    html = page.read_text(encoding="utf-8")
    assert html.count('class="ok changed"') == 2 and html.count('class="fail changed"') == 1
    assert "Changed since the earlier run (3)" in html

    # And back: what was fixed breaks again.
    assert run_eval(questions, again, monkeypatch, "--against", str(default), strict=True) == 0
    out = capsys.readouterr().out
    rows = changed_rows(out)
    assert rows["a2"].startswith("right->wrong, answered->refused, facts")
    assert "hit->miss" in rows["a1"]
    assert list(rows) == ["a2", "f1", "a1"]  # regressions are listed first
    assert "2 right->wrong, 0 wrong->right, 0 refused->answered, 3 answered->refused" in out


def test_against_the_same_setup_lists_no_question(
    questions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert run_eval(questions, first, monkeypatch, strict=False) == 0
    capsys.readouterr()
    assert run_eval(questions, second, monkeypatch, "--against", str(first), strict=False) == 0
    out = capsys.readouterr().out
    assert f"Against {first}: 0 of 4 questions changed" in out
    assert "; 4 unchanged" in out and "change " not in out
    assert json.loads(second.read_text(encoding="utf-8"))["against"]["questions"] == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file (--against takes an earlier --report-json)"),
        ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        ('{"metrics": {}}', "not a `rag eval --report-json` report (no questions list)"),
        ('{"questions": [{"id": "a1"}]}', "report (no metrics)"),
        ('{"metrics": {}, "questions": [{"id": "a1", "question": "q"}]}', "has no 'ok'"),
    ],
)
def test_a_bad_old_report_is_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    old = tmp_path / "old.json"
    if content is not None:
        old.write_text(content, encoding="utf-8")
    questions = write(tmp_path, QUESTIONS)
    # No index exists: the old report is refused first.
    argv = ["eval", "--data-dir", str(tmp_path / "none"), "--questions", str(questions)]
    assert main([*argv, "--against", str(old)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {old}: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "none").exists()


def test_an_old_report_of_other_questions_says_how_many_match(
    questions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = tmp_path / "old.json"
    assert run_eval(questions, old, monkeypatch, strict=False) == 0
    other = write(tmp_path, QUESTIONS.replace("What about them?", "And them?"), "other.yaml")
    capsys.readouterr()
    code = main(["eval", "--questions", str(other), "--against", str(old)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert (
        f"{old}: made on a different question set: 3 of 4 questions match by id, text and"
        " history (4 in that run)"
    ) in err


# -- the pieces ----------------------------------------------------------------------------------


def previous_run(*items: tuple[str, str]) -> PreviousRun:
    return PreviousRun(
        Path("old.json"),
        "hybrid",
        {},
        tuple(PreviousQuestion(qid, text, (), True, False, 1, 1.0, "") for qid, text in items),
    )


def test_the_question_set_check_counts_matches_in_any_order() -> None:
    old = previous_run(("a", "A?"), ("b", "B?"))
    check_question_set(old, [("b", "B?", ()), ("a", "A?", ())])
    with pytest.raises(RagError, match=r"1 of 3 questions match .* \(2 in that run\)"):
        check_question_set(old, [("a", "A?", ()), ("b", "B, reworded?", ()), ("c", "C?", ())])
    with pytest.raises(RagError, match="0 of 1 questions match"):
        check_question_set(old, [("a", "A?", ("an earlier question",))])


def test_a_change_names_each_flip_and_a_moved_rank() -> None:
    def change(**values: Any) -> QuestionChange:
        fields: dict[str, Any] = {
            "ok": (True, True),
            "refused": (False, False),
            "support_rank": (1, 1),
            "retrieval_scored": True,
            "fact_recall": (1.0, 1.0),
            "answer_changed": False,
        }
        return QuestionChange("q", "Q?", **{**fields, **values})

    assert change().kinds == ()
    assert change(answer_changed=True).kinds == ()  # new wording alone is no change
    assert change(ok=(True, False), fact_recall=(1.0, 0.5)).kinds == ("right->wrong", "facts")
    assert change(refused=(True, False)).kinds == ("refused->answered",)
    assert change(support_rank=(1, None)).kinds == ("hit->miss",)
    assert change(support_rank=(None, 3)).kinds == ("miss->hit",)
    assert change(support_rank=(3, 1)).kinds == ("rank",)
    assert change(support_rank=(None, 3), retrieval_scored=False).kinds == ()


def test_a_delta_is_better_up_for_scores_and_down_for_rates() -> None:
    assert MetricDelta("hit_at_k", 0.5, 0.75).better is True
    assert MetricDelta("hit_at_k", 0.75, 0.5).better is False
    assert MetricDelta("false_refusal_rate", 0.2, 0.1).better is True
    assert MetricDelta("latency_p95_ms", 100.0, 120.0).better is False
    assert MetricDelta("mrr", 0.5, 0.5).better is None
    assert MetricDelta("mrr", None, 0.5).delta is None


def test_load_previous_reads_back_what_report_json_writes(tmp_path: Path) -> None:
    result = score_answer(EvalQuestion("x1", "Q?", facts=(("June 5",),)), answer("June 5 [1]"))
    path = tmp_path / "old.json"
    report = EvalReport(summarize([result], k=5), [result], "hybrid")
    path.write_text(json.dumps(report.to_dict()), encoding="utf-8")
    run = load_previous(path)
    assert run.retrieval == "hybrid" and run.metrics["k"] == 5
    assert run.questions == (
        PreviousQuestion("x1", "Q?", (), result.ok, False, None, 1.0, "June 5 [1]"),
    )


# -- the HTML report -----------------------------------------------------------------------------


def small_report() -> EvalReport:
    right = score_answer(EvalQuestion("r1", "Right?", facts=(("June 5",),)), GOOD)
    wrong = score_answer(EvalQuestion("w1", "Wrong?", facts=(("Japan",),)), GOOD)
    answered = score_answer(EvalQuestion("u1", "Unknown?", answerable=False), GOOD)
    results = [right, wrong, answered]
    return EvalReport(summarize(results, k=5), results, "hybrid")


def test_html_escapes_question_and_answer_text() -> None:
    q = EvalQuestion("x1", "Is <b>this</b> escaped?")
    result = score_answer(q, answer("a <i>b</i>"))
    page = render_html(EvalReport(summarize([result], k=5), [result], "hybrid"))
    assert "<b>this</b>" not in page and "&lt;b&gt;this&lt;/b&gt;" in page
    assert "<i>b</i>" not in page and "<svg" in page


def test_the_html_filter_is_labelled_radios_and_rows_say_why_they_failed() -> None:
    page = render_html(small_report())
    assert "<script" not in page
    assert '<fieldset class="filter"><legend>Show</legend>' in page
    for key, label in (("all", "All questions (3)"), ("failures", "Failures only (2)")):
        assert f'id="show-{key}"' in page and f'<label for="show-{key}">{label}</label>' in page
    assert 'id="show-changed"' not in page  # only with --against
    assert page.count('<tr class="ok">') == 1 and page.count('<tr class="fail">') == 2
    assert "fail: missed 1 of 1 facts" in page and "fail: answered (should refuse)" in page
    assert "No question failed." not in page  # the empty note is there only when true


@pytest.mark.integration
def test_the_failure_filter_works_in_chromium(tmp_path: Path) -> None:
    from tests.test_embed_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS

    page_path = tmp_path / "report.html"
    page_path.write_text(render_html(small_report()), encoding="utf-8")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS
        )
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri(), timeout=WAIT_MS)
            rows = page.locator("#questions tbody tr")

            def shown() -> list[str]:
                return [
                    rows.nth(i).locator("td").first.inner_text()
                    for i in range(rows.count())
                    if rows.nth(i).is_visible()
                ]

            assert shown() == ["r1", "w1", "u1"]
            page.get_by_role("radio", name="Failures only (2)").check(timeout=WAIT_MS)
            assert shown() == ["w1", "u1"]
            page.get_by_label("All questions (3)").focus()
            page.keyboard.press("ArrowRight")  # a radio group moves with the keyboard
            assert page.get_by_label("Failures only (2)").is_checked() and shown() == ["w1", "u1"]
            page.get_by_label("All questions (3)").check(timeout=WAIT_MS)
            assert shown() == ["r1", "w1", "u1"]
            assert requests == [page_path.as_uri()]  # nothing fetched but the page itself
        finally:
            browser.close()
