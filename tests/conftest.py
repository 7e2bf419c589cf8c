"""Shared fixtures: a deterministic fake embedder registered through the real registry, and
settings that keep every test's index in its own temporary directory."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import anyio
import numpy as np
import pytest

from rag.config import Settings
from rag.embed import Vectors, register_embedder
from rag.judge import register_judge
from rag.text import content_terms

# anyio imports its parts lazily, on first use, and pytest rewrites anyio's modules (anyio is
# a pytest plugin): first used in a server's worker thread, that rewrite's ast.parse raced
# another thread's in CPython 3.11.7 ("AST constructor recursion depth mismatch", a 500 in
# test_chat_is_mounted_with_frame_ancestors once in a full run). Import them all here, once.
for _name in dir(anyio):
    getattr(anyio, _name)

# No test may reach a model hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
SEED_ID = "46ce722664604c9f"


class HashEmbedder:
    """Bag-of-stemmed-words vectors from SHA-256 seeded random projections.

    Deterministic, instant, and texts that share words get similar vectors, which is enough
    to test ranking, refusal and follow-ups without a model.
    """

    dimensions = 64

    @property
    def model_id(self) -> str:
        return "fake/hash-64"

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = [self._vector(t) for t in texts]
        return np.stack(rows) if rows else np.zeros((0, self.dimensions), np.float32)

    def _vector(self, text: str) -> np.ndarray:
        total = np.zeros(self.dimensions, dtype=np.float32)
        for term in content_terms(text) or ["<empty>"]:
            seed = int.from_bytes(hashlib.sha256(term.encode()).digest()[:8], "little")
            total += np.random.default_rng(seed).standard_normal(self.dimensions).astype(np.float32)
        return total / (np.linalg.norm(total) or 1.0)


register_embedder("fake-hash", lambda settings: HashEmbedder())


def unrelated_texts(count: int) -> list[str]:
    """``count`` texts that share no word with each other or with ordinary words.

    Filler for tests that need Chroma to move chunks into its HNSW index. Texts that share a
    word ("filler 1", "filler 2", ...) crowd the fake embedder's vectors into one cluster, and
    the graph then keeps too few links to a point outside it: a search for that point's own
    text missed it in about 1 of 40 builds (3 of 120 measured; 0 of 120 with these texts).
    """

    def word(n: int) -> str:
        return "".join(chr(97 + (n // 26**place) % 26) for place in range(3))

    return [f"{word(n)}filler {word(7 * n + 3)}note" for n in range(count)]


class OverlapJudge:
    """A stand-in for the trained answer judge: the share of the question's content words
    that the candidate sentence (the part before its context) contains. Deterministic."""

    threshold = 0.34

    @property
    def model_id(self) -> str:
        return "fake/overlap"

    def score(self, question: str, candidates: Sequence[str]) -> np.ndarray:
        asked = set(content_terms(question))
        scores = []
        for candidate in candidates:
            sentence = candidate.split(" || ", 1)[0]
            shared = asked & set(content_terms(sentence))
            scores.append(len(shared) / len(asked) if asked else 0.0)
        return np.asarray(scores, dtype=np.float32)


register_judge("fake-overlap", lambda model_dir, vectors=None: OverlapJudge())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for the fake embedder with the index in a fresh temporary directory."""
    return Settings(
        data_dir=tmp_path / "index",
        embedding_provider="fake-hash",
        min_evidence=0.3,
        judge="fake-overlap",
    )


@pytest.fixture
def real_settings(tmp_path: Path) -> Settings:
    """Settings for the real packaged model, index in a fresh temporary directory."""
    return Settings(data_dir=tmp_path / "index")


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
