"""The feature answer judge: its features, and the shipped network (sha256, offline load)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ProviderError
from rag.judge import create_judge, judge_input
from rag.judge_features import FEATURES, FeatureJudge, features

QUESTION = "On what date did the Commission publish its strategy?"
SENTENCES = [
    "In proposals published on June 5, the Commission set out its strategy.",
    "Brussels wants to reinforce relationships with India and Japan.",
]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_features_have_one_named_column_each_and_are_deterministic() -> None:
    q, s, w = vectors(1)[0], vectors(2, 1), vectors(2, 2)
    rows = features(QUESTION, SENTENCES, ["", ""], q, s, w)
    assert rows.shape == (2, len(FEATURES)) and rows.dtype == np.float32
    assert np.array_equal(rows, features(QUESTION, SENTENCES, ["", ""], q, s, w))
    column = dict(zip(FEATURES, rows.T, strict=True))
    assert column["when_and_date"].tolist() == [1.0, 0.0]  # "June" answers a when-question
    assert column["overlap_sentence"][0] > column["overlap_sentence"][1]
    assert column["wh_when"].tolist() == [1.0, 1.0]
    assert features(QUESTION, [], [], q, s[:0], w[:0]).shape == (0, len(FEATURES))


def test_a_model_trained_on_other_features_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "answerable.onnx").write_bytes(b"not onnx")
    (tmp_path / "judge.json").write_text(json.dumps({"threshold": 0.5, "features": ["x"]}))
    with pytest.raises(ProviderError, match="other features"):
        FeatureJudge(tmp_path)
    with pytest.raises(ProviderError, match=r"missing model\.onnx"):
        FeatureJudge(tmp_path / "nowhere")


@pytest.mark.integration
def test_the_shipped_model_loads_offline_and_prefers_the_sentence_that_answers() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    judge = create_judge("trained")
    candidates = [
        judge_input(s, title="Europe's tech ties", before="", after="") for s in SENTENCES
    ]
    answers, other = judge.score(QUESTION, candidates)
    assert answers > other
    assert judge.score(QUESTION, []).shape == (0,)
    declined = judge.score("What is the capital of Australia?", candidates)
    assert declined.max() < judge.threshold


@pytest.mark.integration
def test_prepared_vectors_give_the_same_scores_without_embedding_the_sentences(
    tmp_path: Path,
) -> None:
    from rag.judge import PreparingJudge
    from rag.vectors import VectorFile

    candidates = [
        judge_input(s, title="Europe's tech ties", before="", after="") for s in SENTENCES
    ]
    fresh = create_judge("trained").score(QUESTION, candidates)
    file = VectorFile(tmp_path / "vectors.sqlite")
    writer = create_judge("trained", vectors=file)
    assert isinstance(writer, PreparingJudge)
    assert writer.pending({"a1": "h1"}) == ["a1"]
    assert writer.prepare("a1", "h1", candidates) == len(SENTENCES) + 1  # each, the headline
    assert writer.pending({"a1": "h1"}) == []

    reader = create_judge("trained", vectors=file)  # a new process: nothing in memory
    assert isinstance(reader, FeatureJudge)
    embedder = reader.sentence_embedder()
    stored = embedder.embedder  # type: ignore[attr-defined]  # the StoredEmbedder under the LRU
    seen: list[str] = []
    base = stored.embedder

    class Spy:
        model_id = base.model_id

        def embed(self, texts: list[str]) -> np.ndarray:
            seen.extend(texts)
            return np.asarray(base.embed(texts))

    stored.embedder = Spy()
    assert np.allclose(reader.score(QUESTION, candidates), fresh, atol=0.01)
    assert seen == [QUESTION]
