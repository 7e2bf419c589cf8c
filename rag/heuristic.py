"""The heuristic answerer (``--answerer heuristic``): quotes chosen by hand-written rules.

It was the offline default before the trained answer model (``rag.extract``) and stays
selectable for comparison (``rag eval --compare-answerers``). It never writes a word of its
own: it picks the passage sentences that best answer the question, quotes them
verbatim and cites each one. Before it answers it checks that the evidence is strong enough:

* every name or number in the question appears in the retrieved passages (or their metadata);
* the best sentence is close enough to the question (embedding similarity, shared content
  words, and how well its passage matched);
* names the question asks about that most passages do not (clues, not the topic) stand in
  the sentence or next to it; the sentence shares a word with what is asked (not only with
  whom it is about) or is very close to it in meaning; and it carries
  a date for "when" questions, a number for "how much/many" questions and a statement for
  "what did ... say" questions.

Otherwise it says it cannot find the answer in the articles. It does not retrieve, resolve
follow-ups (``rag.followup``) or generate text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.analyze import mentions as _mentions
from rag.analyze import question_names
from rag.answer import AnswerRequest, Draft, refusal, register_answerer, stream_whole
from rag.cite import Evidence, number_citations
from rag.config import AnswerSettings
from rag.embed import CachedEmbedder, Embedder
from rag.schema import AnswerDelta, Passage
from rag.text import content_terms, sentence_spans, words

_MONTHS = (
    "january february march april may june july august september october november december"
    " jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_DATE = re.compile(
    r"\b(?:(?:19|20)\d{2}|" + "|".join(_MONTHS) + r"|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|yesterday|today|last (?:week|month|year)|next (?:week|month|year)"
    r"|(?:this|that) (?:week|month|year)|decade|century)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty"
    r"|forty|fifty|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|percent)\b",
    re.IGNORECASE,
)
# Dates are not amounts: "June 5" does not answer "how much".
_DAY = re.compile(
    r"\b(?:(?:" + "|".join(_MONTHS) + r")\.? \d{1,2}(?:st|nd|rd|th)?(?:, \d{4})?"
    r"|\d{1,2}(?:st|nd|rd|th)? (?:" + "|".join(_MONTHS) + r")(?: \d{4})?|(?:19|20)\d{2})\b",
    re.IGNORECASE,
)
_WHEN = re.compile(
    r"^\s*(?:when|since when|until when)\b|\b(?:what|which) (?:date|day|year|month)\b",
    re.IGNORECASE,
)
_SAYS = re.compile(r"\b(?:say|says|said|saying|tell|told|quote|quoted|statement)\b", re.IGNORECASE)
_SPEECH = re.compile(
    r"[“”\"]|\b(?:said|says|told|stated|according to|warned|argued)\b", re.IGNORECASE
)
_HOW_MUCH = re.compile(
    r"\bhow (?:much|many|large|big|long)\b|\bwhat (?:percentage|share|amount|number|sum)\b",
    re.IGNORECASE,
)
_SENTENCE_CACHE_SIZE = 50_000
_STRONG_SIMILARITY = 0.55  # a sentence this close to the question needs no shared word
_TOPICAL_SHARE = 0.5  # a name in at least this share of the passages is the topic, not a clue
_MIN_SENTENCE_WORDS = 4


@dataclass(frozen=True, slots=True)
class _Candidate:
    passage: Passage
    sentence: str
    window: str  # the sentence with its neighbours in the passage, lower-cased
    score: float
    similarity: float
    overlap: float  # share of the query's content words the sentence contains
    shares_predicate: bool  # contains a content word of the question that is not a name


class HeuristicAnswerer:
    """Answers by quoting retrieved sentences, or declines (rules, no trained model)."""

    def __init__(
        self,
        settings: AnswerSettings,
        embedder: Embedder,
        sentences: Callable[[], Embedder | None] | None = None,
    ) -> None:
        """``sentences`` gives the embedder for sentence vectors when it is not ``embedder``
        (the answer judge's, which reads the vectors ingest stored); the question is then
        embedded with it too, so that both sides of every similarity come from one model."""
        self.settings = settings
        self.embedder = embedder
        self._own = CachedEmbedder(embedder, _SENTENCE_CACHE_SIZE)
        self._sentence_source = sentences

    def answer(self, request: AnswerRequest) -> Draft:
        return self.answer_passages(
            request.question, request.search_query, request.passages, request.query_vector
        )

    def stream(self, request: AnswerRequest) -> Iterator[AnswerDelta | Draft]:
        yield from stream_whole(self.answer(request))

    def answer_passages(
        self,
        question: str,
        search_query: str,
        passages: Sequence[Passage],
        query_vector: np.ndarray,
    ) -> Draft:
        if not passages:
            return refusal()
        haystack = "\n".join(
            f"{p.title}\n{p.author}\n{p.publisher}\n{p.text}" for p in passages
        ).lower()
        missing = [name for name in question_names(question) if not _mentions(haystack, name)]
        if missing:
            return refusal(f"None of the passages found mention “{missing[0]}”.")

        candidates = self._score(search_query, passages, query_vector)
        chosen = self._choose(question, search_query, candidates)
        if not chosen:
            return refusal()
        evidence = [Evidence(c.passage, c.sentence, c.score) for c in chosen]
        text, citations = number_citations(evidence)
        return Draft(text, False, citations)

    # -- scoring --------------------------------------------------------------------------------

    def _score(
        self, search_query: str, passages: Sequence[Passage], query_vector: np.ndarray
    ) -> list[_Candidate]:
        triples: list[tuple[Passage, str, str]] = []
        seen: set[str] = set()
        for passage in passages:
            spans = sentence_spans(passage.text)
            for i, (start, end) in enumerate(spans):
                sentence = passage.text[start:end]
                if sentence in seen or len(words(sentence)) < _MIN_SENTENCE_WORDS:
                    continue
                seen.add(sentence)
                window = passage.text[
                    spans[max(i - 1, 0)][0] : spans[min(i + 1, len(spans) - 1)][1]
                ]
                triples.append((passage, sentence, window.lower()))
        if not triples:
            return []
        query_terms = set(content_terms(search_query))
        name_terms = set(content_terms(" ".join(question_names(search_query))))
        predicate_terms = query_terms - name_terms
        lexical: list[tuple[float, float, bool]] = []  # (score without similarity, overlap, shares)
        for passage, sentence, _ in triples:
            sentence_terms = set(content_terms(sentence))
            overlap = len(query_terms & sentence_terms) / len(query_terms) if query_terms else 0.0
            passage_similarity = passage.dense_score if passage.dense_score is not None else 0.0
            shares = not predicate_terms or bool(predicate_terms & sentence_terms)
            lexical.append((0.3 * overlap + 0.2 * passage_similarity, overlap, shares))
        # Embedding sentences is most of the answer's cost: embed only the most promising
        # ones by the cheap part of the score (shared words, passage strength).
        order = sorted(range(len(triples)), key=lambda i: lexical[i][0], reverse=True)
        kept = order[: self.settings.sentences_embedded]
        sentences = self._sentences()
        if sentences.model_id != self.embedder.model_id:
            query_vector = sentences.embed([search_query])[0]
        similarities = sentences.embed([triples[i][1] for i in kept]) @ query_vector
        candidates = []
        for i, similarity in zip(kept, similarities, strict=True):
            passage, sentence, window = triples[i]
            partial, overlap, shares = lexical[i]
            score = 0.5 * float(similarity) + partial
            candidates.append(
                _Candidate(passage, sentence, window, score, float(similarity), overlap, shares)
            )
        candidates.sort(key=lambda c: c.score, reverse=True)
        return candidates

    def _sentences(self) -> Embedder:
        """Where sentence vectors come from: cached, the same passages come back for related
        questions."""
        given = self._sentence_source() if self._sentence_source else None
        return given or self._own

    # -- choosing -------------------------------------------------------------------------------

    def _choose(
        self, question: str, search_query: str, candidates: list[_Candidate]
    ) -> list[_Candidate]:
        threshold = self.settings.min_evidence
        passages = list({c.passage.chunk_id: c.passage for c in candidates}.values())
        texts = [f"{p.title}\n{p.text}".lower() for p in passages]
        # A name most passages mention is the topic ("EU" in an EU story) and says nothing about
        # which sentence answers; a rarer name ("Africa") is a clue the answer must stand near.
        clues = [
            name
            for name in question_names(search_query)
            if sum(_mentions(t, name) for t in texts) < _TOPICAL_SHARE * len(texts)
        ]
        needs_date = bool(_WHEN.search(question))
        needs_number = bool(_HOW_MUCH.search(question))
        needs_speech = bool(_SAYS.search(question))

        def fits(candidate: _Candidate) -> bool:
            # Near = in the sentence or a neighbour ("The announcement — dubbed the International
            # Digital Strategy" / "In proposals published on June 5"), or in the title.
            title = candidate.passage.title.lower()
            near = f"{title}\n{candidate.window}"
            if not all(_mentions(near, name) for name in clues):
                return False
            # The sentence must speak to what is asked, not only to whom it is about.
            if not (candidate.shares_predicate or candidate.similarity >= _STRONG_SIMILARITY):
                return False
            if needs_date and not _DATE.search(candidate.sentence):
                return False
            if needs_speech and not _SPEECH.search(candidate.sentence):
                return False
            return not (needs_number and not _NUMBER.search(_DAY.sub("", candidate.sentence)))

        strong = [c for c in candidates if c.score >= threshold and fits(c)]
        if needs_date:
            # "June 5" answers "on what date" better than "last month" does.
            strong.sort(key=lambda c: not _DAY.search(c.sentence))
        lead = strong[0] if strong else None
        if lead is None:
            return []
        chosen = [lead]
        floor = max(threshold, lead.score - 0.1)
        for candidate in candidates:
            if len(chosen) >= self.settings.max_answer_sentences or candidate.score < floor:
                break
            relevant = candidate.overlap > 0 or candidate.similarity > 0.5
            if candidate is not lead and relevant and fits(candidate):
                chosen.append(candidate)
        return chosen


register_answerer("heuristic", lambda parts: HeuristicAnswerer(parts.settings, parts.embedder))
