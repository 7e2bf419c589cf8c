"""The ``trained`` answer judge (the default): a small network over MiniLM and word features.

For each candidate (a ``judge_input`` text: the sentence, then its headline and neighbours) it
computes ``FEATURES``: the cosine similarity of the question to the sentence and to the
sentence with its context (all-MiniLM-L6-v2, the packaged int8 ONNX build), how far each is
from the best candidate of the same question, the share of the question's words and names the
sentence and its context hold, whether the sentence carries a year or a figure when the
question asks when or how many, the question word, and the share of the question's rarer
words (held by few of the candidates: what is asked, not the topic) in the sentence and its
context. A two-layer network trained here on ``squad-train`` (``train/features.py``;
``rag/models/judge/MODEL_CARD.md``) turns them into ``P(the sentence answers the question)``;
it is shipped as int8 ONNX and run with onnxruntime. Its threshold was calibrated on the dev
articles.

This module does not retrieve or choose sentences; it only scores what it is given.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rag.analyze import mentions, question_names, question_word
from rag.embed import Embedder
from rag.errors import ProviderError
from rag.judge import PACKAGED_JUDGE_DIR, register_judge, sha256
from rag.text import content_terms, sentence_spans, words
from rag.vectors import StoredEmbedder, VectorFile, pending

_CACHE_SIZE = 50_000
PACKAGED_FEATURES_DIR = PACKAGED_JUDGE_DIR  # rag/models/judge: the judge shipped with the code
_WH = ("when", "how_many", "who", "where", "why", "say", "how", "which")
FEATURES = (
    "cos_sentence",
    "cos_window",
    "cos_sentence_gap",
    "cos_window_gap",
    "cos_rank",
    "overlap_sentence",
    "overlap_window",
    "overlap_gap",
    "names_sentence",
    "names_window",
    "question_has_names",
    "when_and_date",
    "how_many_and_figure",
    "who_and_name",
    "sentence_length",
    "numbers_present",
    *(f"wh_{wh}" for wh in _WH),
    "rare_sentence",
    "rare_window",
    "rare_sentence_gap",
    "rare_window_gap",
)
_RARE = FEATURES.index("rare_sentence")  # then rare_window and the two gaps
_MONTH = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november"
    r"|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.I,
)
_YEAR = re.compile(r"\b(?:1[0-9]|20)\d{2}s?\b|\bcentury\b", re.I)
_FIGURE = re.compile(
    r"\d|\b(?:hundreds?|thousands?|millions?|billions?|trillions?|dozens?|percent|half)\b", re.I
)
_INNER_NAME = re.compile(r"(?<=\s)[A-Z][a-z]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# What an article's record in the vector file says was stored for it: change this when
# ``window_parts`` or ``candidates`` change, and the next ingest prepares every article again.
# parts-2: sentences split apart from glued site furniture and from a title glued to a quote
# (rag.text); re-preparing embeds and labels only the sentences not already stored.
_PREP_FORMAT = "parts-2"


def _prepared_as(content_hash: str) -> str:
    return f"{content_hash}/{_PREP_FORMAT}"


def split_candidate(candidate: str) -> tuple[str, str]:
    """``(sentence, context)`` of a ``judge_input`` text."""
    sentence, _, context = candidate.partition(" || ")
    return sentence, context


def features(
    question: str,
    sentences: Sequence[str],
    contexts: Sequence[str],
    question_vector: NDArray[np.float32],
    sentence_vectors: NDArray[np.float32],
    window_vectors: NDArray[np.float32],
) -> NDArray[np.float32]:
    """One row of ``FEATURES`` per candidate (the same code trains and serves)."""
    n = len(sentences)
    rows = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return rows
    cos_s = sentence_vectors @ question_vector
    cos_w = window_vectors @ question_vector
    asked = set(content_terms(question))
    names = question_names(question)
    numbers = set(_NUMBER.findall(question))
    wh = question_word(question)
    order = np.argsort(-cos_s)
    rank = np.empty(n, dtype=np.float32)
    rank[order] = np.arange(n, dtype=np.float32)
    overlaps = []
    held: list[tuple[set[str], set[str]]] = []
    for sentence, context in zip(sentences, contexts, strict=True):
        terms = set(content_terms(sentence))
        # The context's terms, piece by piece: each piece (headline, neighbour) recurs across
        # candidates and questions, so its terms come from content_terms' cache.
        window_terms = terms.union(*(content_terms(p) for p in context_pieces(context)))
        held.append((terms, window_terms))
        overlaps.append(
            (
                len(asked & terms) / len(asked) if asked else 0.0,
                len(asked & window_terms) / len(asked) if asked else 0.0,
            )
        )
    best_overlap = max(o[0] for o in overlaps)
    # The question's words weighted by how few candidates hold them: the ones every candidate
    # has are the topic ("Kim Jong Nam"); the rare ones are what is asked about it ("face").
    weight = {t: 1.0 - sum(t in w for _, w in held) / n for t in asked}
    total = sum(weight.values()) or 1.0
    rare = np.asarray(
        [
            (
                sum(weight[t] for t in asked & terms) / total,
                sum(weight[t] for t in asked & window_terms) / total,
            )
            for terms, window_terms in held
        ],
        dtype=np.float32,
    )
    rows[:, _RARE : _RARE + 2] = rare
    rows[:, _RARE + 2 : _RARE + 4] = rare - rare.max(axis=0, keepdims=True)
    for i, (sentence, context) in enumerate(zip(sentences, contexts, strict=True)):
        lowered, window = sentence.lower(), f"{context}\n{sentence}".lower()
        row = rows[i]
        row[0], row[1] = cos_s[i], cos_w[i]
        row[2], row[3] = cos_s[i] - cos_s.max(), cos_w[i] - cos_w.max()
        row[4] = rank[i] / max(n - 1, 1)
        row[5], row[6] = overlaps[i]
        row[7] = overlaps[i][0] - best_overlap
        if names:
            row[8] = sum(mentions(lowered, name) for name in names) / len(names)
            row[9] = sum(mentions(window, name) for name in names) / len(names)
            row[10] = 1.0
        else:
            row[8] = row[9] = 1.0
        row[11] = float(wh == "when" and bool(_MONTH.search(sentence) or _YEAR.search(sentence)))
        row[12] = float(wh == "how_many" and bool(_FIGURE.search(sentence)))
        row[13] = float(wh == "who" and bool(_INNER_NAME.search(sentence)))
        row[14] = math.log1p(len(words(sentence))) / 4.0
        row[15] = float(all(number in window for number in numbers)) if numbers else 1.0
        if wh in _WH:
            row[16 + _WH.index(wh)] = 1.0
    return rows


# What the answerability head reads of a whole candidate set: how sure the sentence model is
# of its best candidate and how far ahead of the rest, and the best candidate's own features.
SET_FEATURES = (
    "best",
    "second",
    "margin",
    "mean_top5",
    *(f"best_{name}" for name in FEATURES),
)
_TOP = 5  # the set is summarised by its best few, so its size (9 in training, 20 when serving)
# does not shift the head


def set_features(
    rows: NDArray[np.float32], probabilities: NDArray[np.float32]
) -> NDArray[np.float32]:
    """One ``SET_FEATURES`` row for a question's candidates and their sentence probabilities."""
    ordered = np.sort(probabilities)[::-1]
    second = float(ordered[1]) if len(ordered) > 1 else 0.0
    best = int(np.argmax(probabilities))
    head = [float(ordered[0]), second, float(ordered[0]) - second, float(ordered[:_TOP].mean())]
    return np.asarray([*head, *rows[best].tolist()], dtype=np.float32)


def scale(probabilities: NDArray[np.float32], answerable: float) -> NDArray[np.float32]:
    """``P(answerable) x P(this one | the best)``: the best candidate scores ``answerable``,
    the others in proportion, so the ranking is the sentence model's and the threshold the
    head's."""
    top = float(probabilities.max()) or 1.0
    return np.asarray(probabilities / top * answerable, dtype=np.float32)


def combined_scores(sentence: Any, head: Any, rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Run both networks (onnxruntime sessions) over one question's feature rows."""
    (logits,) = sentence.run(None, {"features": rows})
    probabilities = np.asarray(1.0 / (1.0 + np.exp(-logits.reshape(-1))), dtype=np.float32)
    (answer_logit,) = head.run(None, {"set_features": set_features(rows, probabilities)[None, :]})
    answerable = float(1.0 / (1.0 + np.exp(-float(answer_logit.reshape(-1)[0]))))
    return scale(probabilities, answerable)


def window_parts(sentence: str, context: str) -> list[str]:
    """The texts whose vectors make a candidate's window: the sentence and the pieces of its
    context (headline, the sentence before, the sentence after), cut by the runtime's splitter.

    Each is a sentence the article already has (or its headline), so ingest can store them
    all with one short embedding each, instead of one long embedding per window.
    """
    return [sentence, *context_pieces(context)]


def context_pieces(context: str) -> list[str]:
    """A candidate's context cut into its headline and neighbouring sentences."""
    pieces = [context[a:b] for a, b in sentence_spans(context)] if context else []
    return [p for p in pieces if p.strip()]


def window_vectors(
    embed: Callable[[Sequence[str]], NDArray[np.float32]],
    sentences: Sequence[str],
    contexts: Sequence[str],
) -> NDArray[np.float32]:
    """One vector per candidate for its window: the normalised mean of its parts' vectors
    (``window_parts``). Training and serving both compute it here."""
    parts = [window_parts(s, c) for s, c in zip(sentences, contexts, strict=True)]
    unique = list(dict.fromkeys(p for group in parts for p in group))
    if not unique:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = embed(unique)
    row = {text: i for i, text in enumerate(unique)}
    windows = np.stack([vectors[[row[p] for p in group]].mean(axis=0) for group in parts])
    norms = np.linalg.norm(windows, axis=1, keepdims=True)
    return np.asarray(windows / np.maximum(norms, 1e-12), dtype=np.float32)


class FeatureJudge:
    """Scores candidates with the feature network; embeds with the packaged int8 MiniLM.

    With a ``VectorFile`` (``rag.vectors``) the sentence and window vectors that ingest stored
    (``prepare``) are read from it instead of being embedded per question.
    """

    def __init__(
        self,
        model_dir: Path = PACKAGED_FEATURES_DIR,
        threads: int = 2,
        vectors: VectorFile | None = None,
    ) -> None:
        self._dir = model_dir
        self._threads = threads
        self._vectors = vectors
        for name in ("model.onnx", "answerable.onnx", "judge.json"):
            if not (model_dir / name).is_file():
                raise ProviderError(
                    f"no feature judge at {model_dir} (missing {name}; rebuild it with"
                    " `make train`; models are never downloaded)"
                )
        try:
            self._config = json.loads((model_dir / "judge.json").read_text("utf-8"))
            self._threshold = float(self._config["threshold"])
        except (OSError, ValueError, KeyError) as e:
            raise ProviderError(f"unreadable {model_dir / 'judge.json'}: {e}") from e
        if tuple(self._config.get("features", ())) != FEATURES:
            raise ProviderError(f"{model_dir} was trained on other features; rebuild it")
        self._session: Any = None
        self._embedder: Any = None
        self._stored: StoredEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"features:{self._config.get('sha256', '')[:12]}"

    @property
    def threshold(self) -> float:
        return self._threshold

    def sha256(self) -> str:
        return sha256(self._dir)

    def _loaded(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                from rag.config import IndexSettings
                from rag.embed import CachedEmbedder, cpu_session, create_embedder

                try:
                    self._session = tuple(
                        cpu_session(self._dir / name, self._threads)
                        for name in ("model.onnx", "answerable.onnx")
                    )
                except Exception as e:  # onnxruntime raises its own types for a bad file
                    raise ProviderError(f"could not load {self._dir / 'model.onnx'}: {e}") from e
                base = create_embedder(IndexSettings(embedding_provider="onnx-int8"))
                if self._vectors is not None:
                    self._stored = StoredEmbedder(base, self._vectors)
                self._embedder = CachedEmbedder(self._stored or base, _CACHE_SIZE)
            return self._session, self._embedder

    def score(self, question: str, candidates: Sequence[str]) -> NDArray[np.float32]:
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        session, _ = self._loaded()
        return combined_scores(session[0], session[1], self.feature_rows(question, candidates))

    def feature_rows(self, question: str, candidates: Sequence[str]) -> NDArray[np.float32]:
        """The ``FEATURES`` rows the networks read for these candidates (``judge_input``
        texts); training reads them too, for candidates retrieved from an archive."""
        _, embedder = self._loaded()
        split = [split_candidate(c) for c in candidates]
        sentences = [s for s, _ in split]
        contexts = [c for _, c in split]
        vectors = embedder.embed([question, *sentences])
        windows = window_vectors(embedder.embed, sentences, contexts)
        return features(question, sentences, contexts, vectors[0], vectors[1:], windows)

    # -- ingest-time preparation (rag.index.ArticlePrep) --------------------------------------

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        """Ids of ``articles`` (``id -> content hash``) whose vectors are not all stored."""
        if self._vectors is None:
            return []
        return pending(self._vectors, {a: _prepared_as(h) for a, h in articles.items()})

    def prepare(self, article_id: str, content_hash: str, candidates: Sequence[str]) -> int:
        """Store the vectors ``score`` will need for these candidates of one article (its
        ``judge_input`` texts); returns how many texts were embedded."""
        return self.prepare_many([(article_id, content_hash, candidates)])

    def prepare_many(self, articles: Sequence[tuple[str, str, Sequence[str]]]) -> int:
        """``prepare`` for several articles (``(id, content hash, candidates)``) at once:
        their texts are embedded in one call, which sorts them all by length (each text's
        vector is the same as when its article is prepared alone); every article is
        recorded as prepared once all of their vectors are stored."""
        if self._vectors is None or not articles:
            return 0
        self._loaded()
        assert self._stored is not None
        texts = [
            (article_id, [t for c in candidates for t in window_parts(*split_candidate(c))])
            for article_id, _, candidates in articles
        ]
        embedded = self._stored.store_many(texts)
        for article_id, content_hash, _ in articles:
            self._vectors.mark(article_id, _prepared_as(content_hash))
        return embedded

    def forget(self, article_ids: Sequence[str]) -> None:
        if self._vectors is not None:
            self._vectors.forget(article_ids)

    def sentence_embedder(self) -> Embedder:
        """The packaged int8 MiniLM, reading stored vectors first, with an LRU cache."""
        embedder: Embedder = self._loaded()[1]
        return embedder


def _trained(model_dir: Path | None, vectors: VectorFile | None = None) -> FeatureJudge:
    return FeatureJudge(model_dir or PACKAGED_FEATURES_DIR, vectors=vectors)


register_judge("trained", _trained)
