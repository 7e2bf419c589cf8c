"""Answer judges: ``P(this sentence answers the question)`` for candidate sentences.

A judge reads pairs (question, candidate), where a candidate is the text ``judge_input`` builds
for one sentence: the sentence first, then its context (the article title, the sentence before
and the sentence after). Judges are registered by name and chosen with ``create_judge``:

- ``trained`` (the default, ``rag.judge_features.FeatureJudge``) is shipped in
  ``rag/models/judge``: a small network trained here on squad-train over MiniLM similarities
  and word features, with an answerability head (``train/features.py`` rebuilds it; its
  ``MODEL_CARD.md`` says how well it does). Its calibrated ``threshold`` is the score at or
  above which a sentence counts as answering.
- ``cross-encoder`` (``OnnxJudge``) is a cross-encoder fine-tuned from all-MiniLM-L6-v2 on the
  same data (``train/judge.py``, ``make train-cross-encoder``), exported to int8 ONNX. It is
  not shipped: on this project's 2 CPU cores half an epoch was all that fitted, and it scored
  below the feature judge (``train/CROSS_ENCODER.md``). Build it where a GPU is lent.

This module does not pick sentences, retrieve passages or decide what to answer; it only scores
what it is given. Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rag.embed import cpu_session
from rag.errors import ProviderError
from rag.files import file_sha256

if TYPE_CHECKING:
    from rag.embed import Embedder
    from rag.vectors import VectorFile

PACKAGED_JUDGE_DIR = Path(__file__).resolve().parent / "models" / "judge"
CROSS_ENCODER_DIR = Path(__file__).resolve().parent / "models" / "cross-encoder"
DEFAULT_MAX_LENGTH = 160
# A question longer than this share of the token budget is cut (rare); below it, only the
# candidate's tail (its context) is ever cut.
_QUESTION_SHARE = 0.5


def judge_input(sentence: str, *, title: str = "", before: str = "", after: str = "") -> str:
    """The text_b the judge reads for one candidate: the sentence first, then its context
    (title, the sentence before, the sentence after). Used by training and runtime alike.

    The sentence comes first so that cutting the text to the model's length drops context,
    never the sentence's start.
    """
    context = " ".join(
        part.strip() for part in (f"{title.strip()}." if title.strip() else "", before, after)
    ).strip()
    sentence = " ".join(sentence.split())
    context = " ".join(context.split())
    return f"{sentence} || {context}" if context else sentence


@runtime_checkable
class AnswerJudge(Protocol):
    """Scores candidate sentences (``judge_input`` texts) against a question."""

    @property
    def model_id(self) -> str: ...

    @property
    def threshold(self) -> float:
        """The calibrated probability at or above which a sentence counts as answering."""
        ...

    def score(self, question: str, candidates: Sequence[str]) -> NDArray[np.float32]:
        """``P(answers)`` in [0, 1], one per candidate, in the same order; empty in, empty out."""
        ...


@runtime_checkable
class PreparingJudge(AnswerJudge, Protocol):
    """A judge that can store, at ingest, what it will need per candidate (the ``trained``
    judge's sentence vectors, ``rag.vectors``), so questions do not pay for it."""

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        """The ids of ``articles`` (``id -> content hash``) not prepared in this version."""
        ...

    def prepare(self, article_id: str, content_hash: str, candidates: Sequence[str]) -> int:
        """Prepare one article's candidates (``judge_input`` texts); how many were new."""
        ...

    def forget(self, article_ids: Sequence[str]) -> None:
        """Drop what was prepared for ``article_ids`` (replaced or removed)."""
        ...

    def sentence_embedder(self) -> Embedder:
        """The embedder (reading the prepared vectors) the judge embeds sentences with."""
        ...


JudgeFactory = Callable[..., AnswerJudge]
_REGISTRY: dict[str, JudgeFactory] = {}


def register_judge(name: str, factory: JudgeFactory) -> None:
    """Make ``factory`` available as ``create_judge(name)``; it is called with the model dir
    (or None for its default) and, as ``vectors``, the index's ``VectorFile`` (or None)."""
    _REGISTRY[name] = factory


def available_judges() -> list[str]:
    import rag.judge_features  # noqa: F401  (registers "trained")

    return sorted(_REGISTRY)


def create_judge(
    name: str = "trained", model_dir: Path | None = None, vectors: VectorFile | None = None
) -> AnswerJudge:
    """The judge registered as ``name``, loaded from ``model_dir`` (its default when None);
    ``vectors`` is where a judge that prepares at ingest keeps what it prepared."""
    import rag.judge_features  # noqa: F401  (registers "trained")

    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ProviderError(
            f"unknown answer judge {name!r}; available: {', '.join(available_judges())}"
        ) from None
    return factory(model_dir, vectors=vectors)


def sha256(model_dir: Path = PACKAGED_JUDGE_DIR) -> str:
    """Hex SHA-256 of ``model_dir/model.onnx`` (the value judge.json and the model card carry)."""
    return file_sha256(model_dir / "model.onnx")


def encode_pairs(
    tokenizer: Any, question: str, candidates: Sequence[str], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """``[CLS] question [SEP] candidate [SEP]`` token ids and type ids, one pair per candidate.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (BERT WordPiece, no padding or truncation set).
    The candidate is cut from its end (its context goes first); the question only when it alone
    would take more than half of ``max_length``. Training uses this too, so both read the same.
    """
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    question_ids = tokenizer.encode(question, add_special_tokens=False).ids
    question_ids = question_ids[: int(max_length * _QUESTION_SHARE)]
    room = max(max_length - len(question_ids) - 3, 1)
    head = [cls_id, *question_ids, sep_id]
    rows: list[tuple[list[int], list[int]]] = []
    for encoding in tokenizer.encode_batch(list(candidates), add_special_tokens=False):
        tail = [*encoding.ids[:room], sep_id]
        rows.append((head + tail, [0] * len(head) + [1] * len(tail)))
    return rows


def _tokenizer_for_pairs(tokenizer_file: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    # The base model's file pads to a fixed 128 and cuts there; encode_pairs does both itself.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class OnnxJudge:
    """A cross-encoder exported to ONNX (one logit per row out), run with onnxruntime on the CPU.

    ``model_dir`` holds ``model.onnx``, ``tokenizer.json`` and ``judge.json`` (max_length,
    threshold, sha256...). The metadata is read here, so a missing or broken directory fails at
    once; the session and the tokenizer load on the first ``score`` call, once per object (a lock
    makes concurrent first calls safe). Candidates are sorted by token count and batched, so a
    batch pads only to its own longest row; scores come back in the caller's order.
    """

    def __init__(
        self,
        model_dir: Path = CROSS_ENCODER_DIR,
        *,
        threads: int = 2,
        batch_size: int = 32,
        threshold: float | None = None,
    ) -> None:
        if threads < 1:
            raise ProviderError(f"judge threads must be at least 1. Currently: {threads}")
        if batch_size < 1:
            raise ProviderError(f"judge batch_size must be at least 1. Currently: {batch_size}")
        self._dir = model_dir
        for name in ("model.onnx", "tokenizer.json", "judge.json"):
            if not (model_dir / name).is_file():
                raise ProviderError(
                    f"no answer judge model at {model_dir} (missing {name}; build it with"
                    " `make train-cross-encoder`; models are never downloaded)"
                )
        try:
            meta = json.loads((model_dir / "judge.json").read_text(encoding="utf-8"))
            self._max_length = int(meta.get("max_length", DEFAULT_MAX_LENGTH))
            self._threshold = float(meta["threshold"] if threshold is None else threshold)
            digest = str(meta.get("sha256", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ProviderError(f"unreadable judge.json in {model_dir}: {e}") from e
        self._model_id = f"trained-judge:{digest[:12] or model_dir.resolve()}"
        self._threads = threads
        self._batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._load_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def max_length(self) -> int:
        return self._max_length

    def _loaded(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._session is None:
                try:
                    import onnxruntime  # noqa: F401  (a clear error when it is missing)
                except ImportError as e:
                    raise ProviderError(
                        f"the trained answer judge needs onnxruntime and tokenizers: {e}"
                    ) from e
                try:
                    tokenizer = _tokenizer_for_pairs(self._dir / "tokenizer.json")
                    session = cpu_session(self._dir / "model.onnx", self._threads)
                except Exception as e:  # onnxruntime and tokenizers raise their own types
                    message = " ".join(str(e).split())
                    raise ProviderError(
                        f"could not load the answer judge from {self._dir}: {message}"
                    ) from e
                self._input_names = frozenset(i.name for i in session.get_inputs())
                self._tokenizer = tokenizer
                self._session = session
            return self._session, self._tokenizer

    def score(self, question: str, candidates: Sequence[str]) -> NDArray[np.float32]:
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        session, tokenizer = self._loaded()
        rows = encode_pairs(tokenizer, question, candidates, self._max_length)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        logits = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            width = max(len(rows[i][0]) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                token_ids, type_ids = rows[i]
                ids[row, : len(token_ids)] = token_ids
                types[row, : len(type_ids)] = type_ids
                mask[row, : len(token_ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self._input_names}
            out = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
            logits[batch] = out.reshape(len(batch))
        probabilities: NDArray[np.float32] = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return probabilities


def _cross_encoder(model_dir: Path | None, vectors: object = None) -> AnswerJudge:
    return OnnxJudge(model_dir or CROSS_ENCODER_DIR)


register_judge("cross-encoder", _cross_encoder)
