"""The answer judge: the registry, its errors, the shipped artifact's integrity, and the real
model ranking a right sentence above wrong ones on hand-written (non-SQuAD) examples."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ProviderError
from rag.judge import (
    PACKAGED_JUDGE_DIR,
    AnswerJudge,
    OnnxJudge,
    available_judges,
    create_judge,
    judge_input,
    register_judge,
    sha256,
)

MAX_MODEL_BYTES = 30 * 1024 * 1024


class KeywordJudge:
    """A deterministic stand-in: the share of the question's words found in the candidate."""

    model_id = "fake/keyword"
    threshold = 0.5

    def score(self, question: str, candidates: Sequence[str]) -> np.ndarray:
        wanted = set(question.lower().split())
        rows = [len(wanted & set(c.lower().split())) / max(len(wanted), 1) for c in candidates]
        return np.asarray(rows, dtype=np.float32)


def test_judge_input_puts_the_sentence_first() -> None:
    text = judge_input("The wall cost $4m.", title="Flood wall", before="It was built.", after="")
    assert text.startswith("The wall cost $4m.")
    assert "Flood wall" in text and "It was built." in text
    assert judge_input("  Just   this. ") == "Just this."


def test_registry_creates_registered_judges() -> None:
    register_judge("fake-keyword", lambda model_dir, vectors=None: KeywordJudge())
    judge = create_judge("fake-keyword")
    assert isinstance(judge, AnswerJudge)
    assert "trained" in available_judges() and "fake-keyword" in available_judges()


def test_unknown_judge_name_lists_the_available_ones() -> None:
    with pytest.raises(ProviderError, match=r"unknown answer judge 'nope'.*trained"):
        create_judge("nope")


def test_missing_model_dir_is_a_one_line_provider_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-judge"
    with pytest.raises(ProviderError) as info:
        create_judge("trained", missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def test_corrupt_model_file_fails_on_first_score(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not an onnx file")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "judge.json").write_text(json.dumps({"threshold": 0.5, "max_length": 128}))
    judge = OnnxJudge(tmp_path)  # metadata only: the session loads lazily
    assert judge.threshold == 0.5
    with pytest.raises(ProviderError, match=re.escape(str(tmp_path))):
        judge.score("q?", ["a sentence."])


def test_unreadable_metadata_is_a_provider_error(tmp_path: Path) -> None:
    for name in ("model.onnx", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "judge.json").write_text("{not json")
    with pytest.raises(ProviderError, match=r"judge\.json"):
        OnnxJudge(tmp_path)


def test_empty_candidates_give_an_empty_array_without_loading(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"never read")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "judge.json").write_text(json.dumps({"threshold": 0.4}))
    scores = OnnxJudge(tmp_path).score("Anything?", [])
    assert scores.shape == (0,) and scores.dtype == np.float32


def test_shipped_model_hash_matches_judge_json_and_model_card() -> None:
    meta = json.loads((PACKAGED_JUDGE_DIR / "judge.json").read_text(encoding="utf-8"))
    card = (PACKAGED_JUDGE_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    digest = sha256(PACKAGED_JUDGE_DIR)
    assert meta["sha256"] == digest
    assert digest in card
    assert 0.0 < meta["threshold"] < 1.0


def test_shipped_model_is_at_most_30_mb() -> None:
    assert (PACKAGED_JUDGE_DIR / "model.onnx").stat().st_size <= MAX_MODEL_BYTES


def test_model_card_names_the_license_and_attribution() -> None:
    card = (PACKAGED_JUDGE_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needed in ("CC BY-SA 4.0", "Rajpurkar", "Jia", "Liang", "SQuAD 2.0", "Wikipedia"):
        assert needed in card


# Hand-written, not from SQuAD: (question, right sentence, wrong sentences of the same story).
EXAMPLES = [
    (
        "How much did the new flood wall cost?",
        "The flood wall along the harbour cost 4.2 million euros to build.",
        [
            "Work on the flood wall began in March after two winters of storms.",
            "The harbour master said fishing boats would be moved during the work.",
            "Residents of the old town had asked for protection for a decade.",
        ],
    ),
    (
        "Who was elected mayor of Lindport?",
        "Maria Okafor was elected mayor of Lindport on Sunday with 54 percent of the vote.",
        [
            "Turnout in Lindport was the highest since 1998.",
            "The council will meet next week to approve the budget for the harbour.",
            "Voters queued for hours at the town hall in the rain.",
        ],
    ),
    (
        "When will the new railway bridge open?",
        "The railway bridge over the river is due to open in September 2027.",
        [
            "The bridge is 400 metres long and carries two tracks.",
            "Engineers tested the steel deck with loaded freight wagons.",
            "The old ferry crossing will close for good.",
        ],
    ),
]


@pytest.fixture(scope="module")
def trained_judge() -> AnswerJudge:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest: nothing may download
    return create_judge("trained")


@pytest.mark.integration
@pytest.mark.parametrize(("question", "right", "wrong"), EXAMPLES)
def test_trained_judge_scores_the_answer_above_the_rest(
    trained_judge: AnswerJudge, question: str, right: str, wrong: list[str]
) -> None:
    candidates = [judge_input(s, title="Local news") for s in [*wrong, right]]
    scores = trained_judge.score(question, candidates)
    assert scores.shape == (len(candidates),) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    assert int(np.argmax(scores)) == len(candidates) - 1


@pytest.mark.integration
def test_trained_judge_keeps_the_callers_order_and_handles_long_input(
    trained_judge: AnswerJudge,
) -> None:
    question, right, wrong = EXAMPLES[0]
    candidates = [right, *wrong]
    forward = trained_judge.score(question, candidates)
    backward = trained_judge.score(question, candidates[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    long_context = judge_input(right, before="word " * 400, after="word " * 400)
    assert trained_judge.score(question, [long_context]).shape == (1,)
    assert trained_judge.score("why " * 400 + question, [right]).shape == (1,)
    assert trained_judge.score(question, []).shape == (0,)


@pytest.mark.integration
def test_trained_judge_loads_once_under_concurrent_first_calls() -> None:
    judge = create_judge("trained")
    question, right, wrong = EXAMPLES[1]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(judge.score(question, [right, *wrong])))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)
