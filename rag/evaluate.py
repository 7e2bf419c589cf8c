"""The evaluation harness behind ``rag eval``: hand-written questions in, deterministic scores out.

``load_questions`` reads and validates a YAML file of questions (see ``eval/questions.yaml``),
``run_eval`` puts each one through ``Assistant.ask`` with its history and ``score_answer``
scores the result without any model in the loop:

* retrieval: hit@k and MRR of the first retrieved passage that contains the question's
  ``support`` text (or, when it has none, comes from one of its gold ``sources``);
* answer: fact recall (share of expected facts stated in the answer text; a refusal states none),
  citation validity (``rag.cite.citation_problems`` finds nothing), citation support (each
  cited answer sentence shares its key words, numbers and names with what it cites);
* refusals: refusal accuracy on unanswerable questions, false-refusal rate on answerable ones;
* latency: p50/p95 of ``timings_ms["total"]``;
* verifier: ``verifier_removed``, the sentences the verifier took out of generated answers.

It does not retrieve or answer by itself, and it does not render anything: the tables, the HTML
report and the changes between two runs are ``rag.eval_report``'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rag.cite import MARKER, citation_problems
from rag.errors import RagError
from rag.schema import Answer, Passage
from rag.text import STOPWORDS, content_terms, words

if TYPE_CHECKING:
    from rag.assistant import Assistant

_KEYS = frozenset({"id", "question", "history", "answerable", "facts", "support", "sources"})
# Scores (higher is better) and rates (lower is better) a threshold may name.
SCORES = (
    "hit_at_k",
    "mrr",
    "fact_recall",
    "citation_validity",
    "citation_support",
    "refusal_accuracy",
)
RATES = ("false_refusal_rate", "latency_p50_ms", "latency_p95_ms", "verifier_removed")
METRICS = (*SCORES, *RATES)
# A cited sentence is supported when at least this share of its content words is in what it cites
# (and every number and name is).
SUPPORT_OVERLAP = 0.6
_MARKER_RUN = re.compile(r"(?:\s*\[\d+\])+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"\b[A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*")


# -- questions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One hand-written question with what a right answer contains."""

    id: str
    question: str
    history: tuple[str, ...] = ()
    answerable: bool = True
    facts: tuple[tuple[str, ...], ...] = ()  # each fact: acceptable spellings, any one counts
    support: str = ""  # text the right passage contains
    sources: tuple[str, ...] = ()  # gold article ids


def load_questions(path: Path) -> list[EvalQuestion]:
    """The questions of the YAML file at ``path``; a ``RagError`` names the file and bad item."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RagError(f"{path}: cannot read the questions file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise RagError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, list) or not raw:
        raise RagError(f"{path}: expected a non-empty list of questions")
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    for position, item in enumerate(raw, start=1):
        question = _parse_item(path, position, item)
        if question.id in seen:
            raise RagError(f"{path}: item {position}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions


def _parse_item(path: Path, position: int, item: object) -> EvalQuestion:
    where = f"{path}: item {position}"
    if not isinstance(item, dict):
        raise RagError(f"{where}: expected a mapping with id and question")
    qid = item.get("id")
    if isinstance(qid, str) and qid.strip():
        where = f"{path}: item {position} ({qid})"
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise RagError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_KEYS))}")
    if not isinstance(qid, str) or not qid.strip():
        raise RagError(f"{where}: missing id (a non-empty string)")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise RagError(f"{where}: missing question (a non-empty string)")
    history = item.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise RagError(f"{where}: history must be a list of strings")
    answerable = item.get("answerable", True)
    if not isinstance(answerable, bool):
        raise RagError(f"{where}: answerable must be true or false")
    facts = item.get("facts", [])
    if not isinstance(facts, list) or not all(
        isinstance(fact, list) and fact and all(isinstance(s, str) and s.strip() for s in fact)
        for fact in facts
    ):
        raise RagError(
            f"{where}: facts must be a list of lists of non-empty strings,"
            ' e.g. [["June 5", "5 June"], ["27"]]'
        )
    if facts and not answerable:
        raise RagError(f"{where}: an unanswerable question cannot list facts")
    support = item.get("support", "")
    if not isinstance(support, str):
        raise RagError(f"{where}: support must be a string")
    sources = item.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise RagError(f"{where}: sources must be a list of article ids")
    return EvalQuestion(
        id=qid.strip(),
        question=question.strip(),
        history=tuple(history),
        answerable=answerable,
        facts=tuple(tuple(fact) for fact in facts),
        support=support.strip(),
        sources=tuple(sources),
    )


# -- scoring one answer --------------------------------------------------------------------------


def _normal(text: str) -> str:
    """Lower-cased, straight quotes, single spaces: how facts and support are matched."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def fact_hits(answer_text: str, facts: Sequence[Sequence[str]]) -> list[bool]:
    """For each fact, whether the answer states one of its spellings (case-insensitive)."""
    haystack = _normal(answer_text)
    return [any(_normal(spelling) in haystack for spelling in fact) for fact in facts]


def support_rank(
    passages: Sequence[Passage], support: str = "", sources: Sequence[str] = ()
) -> int | None:
    """1-based rank of the first passage containing ``support`` (or, without support, from a
    gold source); ``None`` when no retrieved passage qualifies."""
    needle = _normal(support)
    for rank, passage in enumerate(passages, start=1):
        if needle:
            if needle in _normal(passage.text):
                return rank
        elif passage.article_id in sources:
            return rank
    return None


def _key_terms(text: str) -> tuple[set[str], set[str], set[str]]:
    """Content terms (stemmed), numbers and capitalised names (not sentence-initial) of
    ``text``; names are lower-cased word sequences without stopwords."""
    names: set[str] = set()
    for match in _NAME.finditer(text):
        if match.start() == 0 or text[: match.start()].rstrip().endswith((".", "!", "?")):
            continue
        name = " ".join(w for w in words(match.group()) if w not in STOPWORDS)
        if name:
            names.add(name)
    return set(content_terms(text)), set(_NUMBER.findall(text)), names


def cited_sentences(answer: Answer) -> list[tuple[str, list[int]]]:
    """Each stretch of answer text that ends in citation markers, with its marker numbers."""
    result: list[tuple[str, list[int]]] = []
    position = 0
    for run in _MARKER_RUN.finditer(answer.answer):
        claim = answer.answer[position : run.start()].strip(" \t\n.;,")
        numbers = [int(n) for n in MARKER.findall(run.group())]
        position = run.end()
        if words(claim):
            result.append((claim, numbers))
    return result


def sentence_is_supported(sentence: str, cited_text: str) -> bool:
    """Whether ``sentence`` shares its key content with ``cited_text``: every number, every
    name, and at least ``SUPPORT_OVERLAP`` of its content words."""
    terms, numbers, names = _key_terms(sentence)
    if not cited_text.strip():
        return False
    source_terms = set(content_terms(cited_text))
    source_numbers = set(_NUMBER.findall(cited_text))
    source_words = " " + " ".join(words(cited_text)) + " "
    if not numbers <= source_numbers:
        return False
    if any(f" {name} " not in source_words for name in names):
        return False
    return not terms or len(terms & source_terms) / len(terms) >= SUPPORT_OVERLAP


def citation_support(answer: Answer) -> tuple[int, int, list[str]]:
    """``(supported, cited sentences, unsupported sentences)`` of ``answer``.

    What a sentence cites is the quotes of its markers plus the passages they were taken from.
    """
    citations = {c.n: c for c in answer.citations}
    # What a sentence cites: the passage text and its article's record (headline, byline,
    # outlet, date), which digests and article-level answers state.
    passages = {p.chunk_id: f"{p.text}\n{_record(p)}" for p in answer.passages}
    supported = 0
    unsupported: list[str] = []
    sentences = cited_sentences(answer)
    for sentence, numbers in sentences:
        cited = [citations[n] for n in numbers if n in citations]
        text = "\n".join(f"{c.quote}\n{passages.get(c.chunk_id, '')}" for c in cited)
        if cited and sentence_is_supported(sentence, text):
            supported += 1
        else:
            unsupported.append(sentence)
    return supported, len(sentences), unsupported


def _record(passage: Passage) -> str:
    from rag.describe import human_date

    return "\n".join(
        (passage.title, passage.author, passage.publisher, passage.date, human_date(passage.date))
    )


@dataclass(slots=True)
class QuestionResult:
    """How one question fared."""

    id: str
    question: str
    history: list[str]
    answerable: bool
    refused: bool
    answer: str
    fact_hits: list[bool]
    support_rank: int | None  # None: support not retrieved (or nothing to look for)
    retrieval_scored: bool  # the question has support or sources
    citation_problems: list[str]
    cited_sentences: int
    supported_sentences: int
    latency_ms: float
    citations: list[dict[str, Any]] = field(default_factory=list)
    verifier_removed: int = 0  # sentences the verifier took out of a generated answer

    @property
    def fact_recall(self) -> float | None:
        if not self.answerable or not self.fact_hits:
            return None
        if self.refused:
            return 0.0
        return sum(self.fact_hits) / len(self.fact_hits)

    @property
    def ok(self) -> bool:
        """Unanswerable: refused. Answerable: answered, every fact stated, citations valid."""
        if not self.answerable:
            return self.refused
        return not self.refused and all(self.fact_hits) and not self.citation_problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fact_recall"] = self.fact_recall
        data["ok"] = self.ok
        data["latency_ms"] = round(self.latency_ms, 2)
        return data


def score_answer(question: EvalQuestion, answer: Answer) -> QuestionResult:
    """Score one ``answer`` to ``question``."""
    supported, cited, _ = citation_support(answer)
    return QuestionResult(
        id=question.id,
        question=question.question,
        history=list(question.history),
        answerable=question.answerable,
        refused=answer.refused,
        answer=answer.answer,
        fact_hits=(
            [False] * len(question.facts)
            if answer.refused
            else fact_hits(answer.answer, question.facts)
        ),
        support_rank=support_rank(answer.passages, question.support, question.sources),
        retrieval_scored=bool(question.support or question.sources),
        citation_problems=citation_problems(answer),
        cited_sentences=cited,
        supported_sentences=supported,
        latency_ms=float(answer.timings_ms.get("total", 0.0)),
        citations=[c.to_dict() for c in answer.citations],
        verifier_removed=len(answer.removed),
    )


# -- metrics -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def summarize(results: Sequence[QuestionResult], k: int) -> dict[str, Any]:
    """The metrics over ``results``; a metric with nothing to measure is ``None``."""
    retrieval = [r for r in results if r.retrieval_scored]
    recalls = [r.fact_recall for r in results if r.fact_recall is not None]
    # Refusals without citations trivially pass; they are judged by the refusal metrics.
    citing = [r for r in results if not r.refused or r.citations]
    cited = sum(r.cited_sentences for r in results)
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    latencies = [r.latency_ms for r in results]
    metrics: dict[str, Any] = {
        "hit_at_k": _mean(1.0 if r.support_rank else 0.0 for r in retrieval),
        "mrr": _mean(1.0 / r.support_rank if r.support_rank else 0.0 for r in retrieval),
        "fact_recall": _mean(recalls),
        "citation_validity": _mean(0.0 if r.citation_problems else 1.0 for r in citing),
        "citation_support": (
            sum(r.supported_sentences for r in results) / cited if cited else None
        ),
        "refusal_accuracy": _mean(1.0 if r.refused else 0.0 for r in unanswerable),
        "false_refusal_rate": _mean(1.0 if r.refused else 0.0 for r in answerable),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "verifier_removed": sum(r.verifier_removed for r in results) if results else None,
    }
    metrics = {name: None if v is None else round(v, 4) for name, v in metrics.items()}
    metrics["k"] = k
    metrics["questions"] = len(results)
    return metrics


@dataclass(slots=True)
class EvalReport:
    """Metrics and per-question results of one run."""

    metrics: dict[str, Any]
    questions: list[QuestionResult]
    retrieval: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrieval": self.retrieval,
            "metrics": self.metrics,
            "questions": [r.to_dict() for r in self.questions],
        }


def run_eval(
    assistant: Assistant, questions: Sequence[EvalQuestion], retrieval: str | None = None
) -> EvalReport:
    """Ask every question (with its history) and score the answers."""
    results = [
        score_answer(q, assistant.ask(q.question, q.history, retrieval=retrieval))
        for q in questions
    ]
    mode = retrieval or assistant.settings.retrieval.retrieval
    return EvalReport(summarize(results, assistant.settings.top_k), results, mode)


# -- thresholds ----------------------------------------------------------------------------------


def parse_thresholds(specs: Sequence[str], flag: str) -> dict[str, float]:
    """``["hit_at_k=0.8", ...]`` as a mapping; a ``RagError`` lists the valid names."""
    thresholds: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep:
            raise RagError(f"{flag} expects NAME=VALUE, got {spec!r}")
        if name not in METRICS:
            raise RagError(f"{flag}: unknown metric {name!r}; valid names: {', '.join(METRICS)}")
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise RagError(f"{flag}: {name} needs a number, got {value!r}") from None
    return thresholds


def threshold_failures(
    metrics: Mapping[str, Any], under: Mapping[str, float], over: Mapping[str, float]
) -> list[str]:
    """One line per metric that falls below its ``under`` or rises above its ``over`` bound."""
    failures: list[str] = []
    for bounds, below in ((under, True), (over, False)):
        for name, bound in bounds.items():
            value = metrics.get(name)
            if value is None:
                failures.append(f"{name} was not measured (bound {bound:g})")
            elif below and value < bound:
                failures.append(f"{name} {value:g} < {bound:g}")
            elif not below and value > bound:
                failures.append(f"{name} {value:g} > {bound:g}")
    return failures
