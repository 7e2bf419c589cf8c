"""The extractive answerer (the default): quotes the sentences the trained model says answer.

For a fact question it reads the retrieved passages sentence by sentence and:

1. declines at once when a name or number of the question appears in no passage (nationality
   adjectives count as their places: "Asian" is satisfied by "Japan");
2. ranks the candidate sentences cheaply (shared words, passage strength) and lets the trained
   answer judge (``rag.judge``) score the best ``judge_candidates`` of them, each read with its
   title and neighbouring sentences;
3. demotes a sentence that lacks the entity type the question asks for (who -> a person or
   organisation, when -> a date, how many -> a number, where -> a place; spaCy's labels), or a
   statement for "what did X say";
4. declines when no sentence reaches the judge's calibrated threshold (the judge's best score
   over the passages is its verdict on whether the answer is there at all) and the rule-based
   evidence check of ``rag.heuristic`` declines too;
5. quotes the best sentence, and up to ``max_answer_sentences - 1`` others that score nearly as
   well, each verbatim under its own citation. A sentence that leans on its neighbour (it opens
   with "That ...", "He said", is an attribution without the words, or the asked-for fact
   is in the next sentence) is quoted together with it, as one verbatim span.

"What did she say next?" (``AnswerRequest.after``) quotes the next statement in the same
article after the quotes already given. Questions about an article itself (who wrote it,
when, which outlet) go to ``rag.describe``, broad ones (a topic, a summary, a comparison, a
list) to ``rag.digest``. This module does not retrieve and never writes a word of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.analyze import QuestionAnalysis, QuestionAnalyzer, mentions, question_names
from rag.answer import (
    AnswererParts,
    AnswerRequest,
    Draft,
    refusal,
    register_answerer,
    stream_whole,
)
from rag.catalog import Catalog
from rag.cite import Evidence, number_citations
from rag.config import AnswerSettings
from rag.embed import Embedder
from rag.judge import AnswerJudge, PreparingJudge, judge_input
from rag.retrieve import passage_from_chunk
from rag.schema import AnswerDelta, Passage
from rag.text import content_terms, is_furniture, sentence_spans, word_key, words
from rag.vectors import VectorFile

if TYPE_CHECKING:
    from rag.index import ArticleChunks

_MIN_SENTENCE_WORDS = 4
_TYPED_CANDIDATES = 20  # sentences whose entity types are checked (labels stored at ingest)
_TYPE_PENALTY = 0.6  # a sentence without the asked-for type keeps this share of its score
_CLUE_PENALTY = 0.7  # ... and one far from a rare name of the question
_FIGURE_LABELS = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME"})
_ASKS_DATE = re.compile(r"\b(?:what|which) (?:year|date|day|month)\b", re.I)
# Two figures a count does not give. A person's age: "aged 90", "90-year-old", ", 46,",
# not the year they graduated. A share: a percentage or a fraction, not a number of seats.
_ASKS_AGE = re.compile(r"\b(?:how old|what age|at what age)\b", re.I)
_AGE = re.compile(
    r"\b\d{1,3}[- ]years?[- ]old\b|\baged?\s+\d{1,3}\b|\bage of \d{1,3}\b"
    r"|\bat \d{1,3}\b(?![:.,]?\d)|,\s*\d{1,3},|\bin (?:his|her|their) (?:early |mid-|late )?\d0s\b",
    re.I,
)
_ASKS_SHARE = re.compile(
    r"\bwhat (?:[\w'’]+ ){0,4}(?:percentage|share|proportion|fraction|per ?cent)\b", re.I
)
_SHARE = re.compile(
    r"\d\s*(?:%|percent\b|per cent\b|percentage point)"
    r"|\b(?:half|a third|two-thirds|a quarter|three-quarters|one in \w+|majority)\b",
    re.I,
)
_ANAPHOR = re.compile(
    r"^[\W]*(?:that|this|these|those|it|he|she|they|his|her|their|its|such|but|and|so|also"
    r"|however|yet|still|there|here|then|the move|the decision|the plan)\b",
    re.IGNORECASE,
)
# An expletive "there" or "it" points at nothing before it: "There have been debates as to
# ...", "It is usually recognized that ...".
_EXPLETIVE = re.compile(
    r"^[\W]*(?:there\s+(?:is|are|was|were|has|have|had|will|would|may|might|can|could"
    r"|seems?|appears?|remains?)\b"
    r"|it\s+(?:is|was|has been|had been|would be|seems|appears|remains)\s+(?:\w+ly\s+)?"
    r"(?:\w+ed|clear|unclear|likely|unlikely|possible|impossible|important|necessary|true"
    r"|difficult|hard|easy)\s+(?:that|to|whether|how|if)\b)",
    re.IGNORECASE,
)
_QUOTE_MARKS = re.compile(r"[“”\"]")
_SAY_VERB = re.compile(r"\b(?:say|said|saying|tell|told|quoted|argue|warn|claim)\b", re.I)
_SPEECH = re.compile(
    r"[“”\"]|\b(?:said|says|told|stated|according to|warned|argued|added|wrote|tweeted"
    r"|declared|insisted|urged|called|asked)\b",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(
    r"\b(?:said|says|wrote|writes|added|told|tweeted|stated|explained|declared|warned)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(?:1[5-9]|20)\d{2}\b")
_DIGIT = re.compile(r"\d")
_LARGE_NUMBER = re.compile(
    r"\b(?:hundreds?|thousands?|millions?|billions?|trillions?|dozens?|percent|half)\b", re.I
)

_SOME_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty"
    r"|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?"
    r"|dozens?|half|a few|several)\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sentence of a retrieved passage, with where it sits and how it scored."""

    passage: Passage
    start: int  # offsets of the sentence within passage.text
    end: int
    before: tuple[int, int] | None  # the neighbouring sentences' offsets, when there are any
    after: tuple[int, int] | None
    rank: int  # the passage's rank
    cheap: float = 0.0
    score: float = 0.0  # the judge's probability, after type and clue demotions
    extend_before: bool = False
    extend_after: bool = False
    typed: bool = True  # carries what the question asks for (a date, a figure, a statement...)
    clued: bool = True  # near every rare name of the question (see ``_clued``)

    @property
    def sentence(self) -> str:
        return self.passage.text[self.start : self.end]

    def neighbour(self, span: tuple[int, int] | None) -> str:
        return "" if span is None else self.passage.text[span[0] : span[1]]

    @property
    def quote(self) -> str:
        """The verbatim span quoted: the sentence, with a neighbour it leans on."""
        start = self.before[0] if self.extend_before and self.before else self.start
        end = self.after[1] if self.extend_after and self.after else self.end
        return self.passage.text[start:end]

    @property
    def judge_text(self) -> str:
        """What the judge reads of it: the sentence, its headline and neighbours."""
        return judge_input(
            self.sentence,
            title=self.passage.title,
            before=self.neighbour(self.before),
            after=self.neighbour(self.after),
        )

    @property
    def position(self) -> int:
        """Where the sentence starts in its article."""
        return self.passage.start + self.start


def candidates(passages: Sequence[Passage]) -> list[Candidate]:
    """Every sentence of ``passages`` long enough to answer, once (the first passage wins)."""
    found: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    for rank, passage in enumerate(passages):
        spans = sentence_spans(passage.text)
        for i, (start, end) in enumerate(spans):
            key = (passage.article_id, passage.text[start:end])
            if key in seen or len(words(key[1])) < _MIN_SENTENCE_WORDS or is_furniture(key[1]):
                continue
            seen.add(key)
            found.append(
                Candidate(
                    passage,
                    start,
                    end,
                    spans[i - 1] if i > 0 else None,
                    spans[i + 1] if i + 1 < len(spans) else None,
                    rank,
                )
            )
    return found


def shortlist(query: str, passages: Sequence[Passage], n: int) -> list[Candidate]:
    """The ``n`` candidates of ``passages`` the judge reads, by a cheap score: the share of the
    query's words each holds, its passage's similarity, its passage's rank. (Training builds
    its archive negatives with this too, ``train.features``.)"""
    query_terms = set(content_terms(query))
    cheap = []
    for c in candidates(passages):
        terms = set(content_terms(c.sentence))
        overlap = len(query_terms & terms) / len(query_terms) if query_terms else 0.0
        strength = c.passage.dense_score if c.passage.dense_score is not None else 0.0
        cheap.append(replace(c, cheap=overlap + 0.5 * strength - 0.02 * c.rank))
    cheap.sort(key=lambda c: c.cheap, reverse=True)
    return cheap[:n]


@runtime_checkable
class _PreparesMany(Protocol):
    """A preparing judge that takes several articles at once (``FeatureJudge``)."""

    def prepare_many(self, articles: Sequence[tuple[str, str, Sequence[str]]]) -> int: ...


class JudgePrep:
    """What ingest prepares for the extractive answerer (``rag.index.ArticlePrep``): the
    judge's inputs for every candidate sentence of each chunk, read as a passage of its own
    (as retrieval returns it), handed to a judge that can store what it needs for them.
    Several articles are prepared together: spaCy labels all of their sentences in one
    pass, and a judge that can (``_PreparesMany``) embeds them all in one call."""

    def __init__(
        self,
        judge: PreparingJudge,
        analyzer: QuestionAnalyzer | None = None,
        labels: VectorFile | None = None,
    ) -> None:
        """With ``analyzer`` and ``labels``, each sentence's spaCy entity labels are stored
        too (``_typed`` reads them)."""
        self.judge = judge
        self.analyzer = analyzer
        self.labels = labels

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        return self.judge.pending(articles)

    def prepare(self, articles: Sequence[ArticleChunks]) -> int:
        pools = [
            (a, [c for chunk in a.chunks for c in candidates([passage_from_chunk(chunk)])])
            for a in articles
        ]
        if self.analyzer is not None and self.labels is not None:
            self.analyzer.store_labels(
                self.labels, [(a.article_id, [c.sentence for c in pool]) for a, pool in pools]
            )
        # Last: the judge records each article as prepared once its vectors are in.
        inputs = [(a.article_id, a.content_hash, [c.judge_text for c in pool]) for a, pool in pools]
        if isinstance(self.judge, _PreparesMany):
            return self.judge.prepare_many(inputs)
        return sum(self.judge.prepare(*one) for one in inputs)

    def forget(self, article_ids: Sequence[str]) -> None:
        self.judge.forget(article_ids)


def missing_names(analysis: QuestionAnalysis, query: str, passages: Sequence[Passage]) -> list[str]:
    """Names and numbers of the question that no passage (text or metadata) mentions."""
    haystack = "\n".join(
        f"{p.title}\n{p.author}\n{p.publisher}\n{p.text}" for p in passages
    ).lower()
    demonyms = {e.text.lower() for e in analysis.entities if e.label == "NORP"}
    missing: list[str] = []
    for name in question_names(query):
        if mentions(haystack, name) or _year_said_relatively(name, passages):
            continue
        if name.lower() in demonyms and any(
            mentions(haystack, place) for place in analysis.place_aliases
        ):
            continue
        missing.append(name)
    return missing


_RELATIVE_YEARS = {-1: ("last year", "a year ago"), 0: ("this year",), 1: ("next year",)}


def _year_said_relatively(name: str, passages: Sequence[Passage]) -> bool:
    """Whether a year of the question is named relative to an article's date: a story
    dated 2017 that says "last year" speaks of 2016."""
    if not _YEAR.fullmatch(name):
        return False
    year = int(name)
    for p in passages:
        if not _YEAR.fullmatch(p.date[:4]):
            continue
        phrases = _RELATIVE_YEARS.get(year - int(p.date[:4]), ())
        text = p.text.lower()
        if any(phrase in text for phrase in phrases):
            return True
    return False


class ExtractiveAnswerer:
    """Quotes what the trained judge says answers; declines when nothing does."""

    def __init__(
        self,
        settings: AnswerSettings,
        analyzer: QuestionAnalyzer,
        judge: Callable[[], AnswerJudge],
        catalog: Callable[[], Catalog],
        rules: Callable[[AnswerRequest], Draft] | None = None,
    ) -> None:
        """``rules`` is a second opinion asked only when the judge's best score is under its
        threshold (the heuristic answerer); without it, the judge alone decides."""
        self.settings = settings
        self.analyzer = analyzer
        self._judge = judge
        self._catalog = catalog
        self._rules = rules

    def stream(self, request: AnswerRequest) -> Iterator[AnswerDelta | Draft]:
        yield from stream_whole(self.answer(request))

    def answer(self, request: AnswerRequest) -> Draft:
        intent = request.analysis.intent
        if intent in ("author", "published", "publisher"):
            from rag.describe import describe_article

            return describe_article(request, len(self._catalog().articles))
        if intent != "fact":
            from rag.digest import digest

            return digest(request, self._catalog())
        if request.after:
            return self._next_statement(request)
        return self.answer_fact(request)

    # -- fact questions -------------------------------------------------------------------------

    def answer_fact(self, request: AnswerRequest) -> Draft:
        passages = request.passages
        if not passages:
            return refusal()
        missing = missing_names(request.analysis, request.search_query, passages)
        if missing:
            return refusal(f"None of the passages found mention “{missing[0]}”.")
        scored = self.score_sentences(request.search_query, request.analysis, passages)
        if not scored:
            return refusal()
        threshold = self.settings.judge_threshold or self._judge().threshold
        # A figure, a year or a date asked for must be in the quote: a sentence without one
        # does not answer, however well it scores. (Not for every "when": "during the Roman
        # Empire" answers one.)
        strict = request.analysis.wh == "how_many" or bool(
            _ASKS_DATE.search(request.analysis.question)
        )
        if strict:
            counted = request.analysis.wh == "how_many"
            scored = [c for c in scored if c.typed or self._carries_figure(c, counted)]
        measure = _measure(request.analysis)
        if measure is not None:  # an age, a share: nothing else answers
            scored = [c for c in scored if measure.search(c.quote)]
        focus = request.analysis.focus
        if focus:  # "How much was bail set at?": a figure of something else does not answer
            scored = [c for c in scored if self._about_focus(c, focus)]
        # Every name of the question must be in the quote's own article: Trump's net worth
        # does not answer "What is Betsy DeVos's net worth?", nor Germany's jobless rate Japan's.
        # (The article, not the sentence: "they" in the sentence may be the name's.)
        scored = self._naming_every_name(scored, request)
        if not scored:
            return refusal()
        lead = scored[0]
        floor = max(threshold, lead.score * self.settings.answer_extra_ratio)
        if lead.score < threshold:
            # The judge alone is not sure. The rule-based evidence check (rag.heuristic) gets a
            # say: the bot declines only when both decline, since the judge, trained on
            # encyclopedia questions, under-scores paraphrased news questions.
            # The second opinion can only rescue a sentence that carries what is asked.
            if not lead.typed or self._rules is None or self._rules(request).refused:
                return refusal()
            floor = lead.score * self.settings.answer_extra_ratio
        chosen = [lead]
        for candidate in scored[1:]:
            if len(chosen) >= self.settings.max_answer_sentences or candidate.score < floor:
                break
            if not any(_overlaps(candidate, c) or _same_words(candidate, c) for c in chosen):
                chosen.append(candidate)
        evidence = [Evidence(c.passage, c.quote, c.score) for c in chosen]
        text, citations = number_citations(evidence)
        return Draft(text, False, citations)

    def score_sentences(
        self, query: str, analysis: QuestionAnalysis, passages: Sequence[Passage]
    ) -> list[Candidate]:
        """The candidate sentences of ``passages``, best first, scored by the judge."""
        kept = shortlist(query, passages, self.settings.judge_candidates)
        if not kept:
            return []
        texts = [c.judge_text for c in kept]
        probabilities = self._judge().score(query, texts)
        scored = [replace(c, score=float(p)) for c, p in zip(kept, probabilities, strict=True)]
        scored.sort(key=lambda c: c.score, reverse=True)
        head = [self._typed(c, analysis) for c in scored[:_TYPED_CANDIDATES]]
        head = [self._with_context(c, analysis) for c in head]
        head = self._clued(head, query, passages)
        result = head + scored[_TYPED_CANDIDATES:]
        result.sort(key=lambda c: c.score, reverse=True)
        return result

    def _typed(self, candidate: Candidate, analysis: QuestionAnalysis) -> Candidate:
        """``candidate`` demoted when it lacks what the question asks for, or extended to its
        next sentence when that is where the asked-for fact is."""
        if analysis.wh == "say":
            # The words must be the asked person's: their surname in the sentence or next to it.
            # The speaker is named before the verb: in "What did the minister say about
            # Lavrov?" Lavrov is what was talked about, not who talked.
            verb = _SAY_VERB.search(analysis.question)
            spoken = analysis.question[: verb.start()] if verb else analysis.question
            surnames = [
                e.text.split()[-1].lower()
                for e in analysis.entities
                if e.label == "PERSON" and e.text in spoken
            ]
            window = " ".join(
                (
                    candidate.neighbour(candidate.before),
                    candidate.sentence,
                    candidate.neighbour(candidate.after),
                )
            ).lower()
            if surnames and not any(mentions(window, name) for name in surnames):
                return replace(candidate, score=candidate.score * _TYPE_PENALTY, typed=False)
            if _SPEECH.search(candidate.sentence):
                return candidate
            if _QUOTE_MARKS.search(candidate.neighbour(candidate.after)):
                return replace(candidate, extend_after=True)
            return replace(candidate, score=candidate.score * _TYPE_PENALTY, typed=False)
        wanted = analysis.answer_types
        if not wanted:
            return candidate
        sentence, following = candidate.sentence, candidate.neighbour(candidate.after)
        labels, next_labels = self.analyzer.entity_labels([sentence, following or "."])
        if _has_type(sentence, labels, analysis):
            return candidate
        if following and _has_type(following, next_labels, analysis):
            return replace(candidate, extend_after=True)
        return replace(candidate, score=candidate.score * _TYPE_PENALTY, typed=False)

    def _naming_every_name(
        self, scored: list[Candidate], request: AnswerRequest
    ) -> list[Candidate]:
        """The candidates whose article mentions every name of the question."""
        names_all: dict[str, bool] = {}
        articles = self._catalog().passages_of(c.passage.article_id for c in scored)
        for article_id, held in articles.items():
            whole = held or [c.passage for c in scored if c.passage.article_id == article_id]
            missing = missing_names(request.analysis, request.search_query, whole)
            names_all[article_id] = not missing
        return [c for c in scored if names_all[c.passage.article_id]]

    @staticmethod
    def _about_focus(candidate: Candidate, focus: Sequence[str]) -> bool:
        """Whether the sentence, its neighbours or its headline name what the asked figure,
        date or place is of ("bail" for "How much was bail set at?")."""
        window = (
            candidate.passage.title,
            candidate.neighbour(candidate.before),
            candidate.sentence,
            candidate.neighbour(candidate.after),
        )
        terms = {t for part in window for t in content_terms(part)}
        return any(term in terms for term in focus)

    def _carries_figure(self, candidate: Candidate, counted: bool = False) -> bool:
        """Whether the quote holds any figure or date at all, spelled out included ("three
        people", "forty-eight hours"): too weak to rank by (a sentence about "two parties"
        does not give a vote count), enough not to refuse a sentence that may answer.
        For a count (``counted``: how many / much / old / long), a date counts only with a
        number in it ("90 years", "three weeks"), not "today" or "on Saturday"."""
        sentence, following = candidate.sentence, candidate.neighbour(candidate.after)
        labels, next_labels = self.analyzer.entity_labels([sentence, following or "."])
        found = labels | (next_labels if candidate.extend_after else frozenset())
        if counted and not _SOME_NUMBER.search(candidate.quote):
            found -= {"DATE", "TIME"}
        return bool(found & _FIGURE_LABELS)

    @staticmethod
    def _with_context(candidate: Candidate, analysis: QuestionAnalysis) -> Candidate:
        """Quote the sentence before when this one leans on it; the sentence after when this
        one only announces it (an attribution without the words, a colon)."""
        sentence = candidate.sentence
        before, after = candidate.neighbour(candidate.before), candidate.neighbour(candidate.after)
        leans = _ANAPHOR.match(sentence) and not _EXPLETIVE.match(sentence)
        if candidate.before and leans and not is_furniture(before):
            candidate = replace(candidate, extend_before=True)
        announces = sentence.rstrip().endswith(":") or (
            _ATTRIBUTION.search(sentence)
            and not _QUOTE_MARKS.search(sentence)
            and len(words(sentence)) <= 12
            and analysis.wh == "say"
        )
        if candidate.after and announces and not is_furniture(after):
            candidate = replace(candidate, extend_after=True)
        return candidate

    @staticmethod
    def _clued(head: list[Candidate], query: str, passages: Sequence[Passage]) -> list[Candidate]:
        """Demote sentences far from a rare name of the question ("Africa" in an EU story):
        a name most passages mention is the topic and says nothing about the sentence."""
        texts = [f"{p.title}\n{p.text}".lower() for p in passages]
        clues = [
            name
            for name in question_names(query)
            if sum(mentions(t, name) for t in texts) < 0.5 * len(texts)
        ]
        if not clues:
            return head
        out = []
        for c in head:
            near = f"{c.passage.title}\n{c.neighbour(c.before)}\n{c.sentence}\n"
            near = (near + c.neighbour(c.after)).lower()
            if not all(mentions(near, name) for name in clues):
                c = replace(c, score=c.score * _CLUE_PENALTY, clued=False)
            out.append(c)
        return out

    # -- "what did she say next?" ---------------------------------------------------------------

    def _next_statement(self, request: AnswerRequest) -> Draft:
        """The first statement in the article after the last quote already given."""
        article_id, last_quote = request.after[-1]
        given = {quote for _, quote in request.after}
        passages = self._catalog().passages(article_id) or [
            p for p in request.passages if p.article_id == article_id
        ]
        pool = candidates(passages)
        position = next(
            (c.position for c in pool if c.sentence in last_quote or last_quote in c.sentence),
            -1,
        )
        if position < 0:
            for passage in passages:
                found = passage.text.find(last_quote)
                if found >= 0:
                    position = passage.start + found
                    break
        following = sorted(
            (
                c
                for c in pool
                if c.position > position
                and _QUOTE_MARKS.search(c.sentence)
                and not any(c.sentence in q for q in given)
            ),
            key=lambda c: c.position,
        )
        if not following:
            return refusal("The article quotes nothing more after what was already shown.")
        lead = self._with_context(following[0], request.analysis)
        text, citations = number_citations([Evidence(lead.passage, lead.quote, 1.0)])
        return Draft(text, False, citations)


def _overlaps(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates quote overlapping text of the same article."""
    if a.passage.article_id != b.passage.article_id:
        return False
    return a.quote in b.quote or b.quote in a.quote or a.sentence in b.quote


def _same_words(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates quote the same words (a story syndicated to two articles):
    the answer quotes them once."""
    return word_key(a.quote) == word_key(b.quote)


def _measure(analysis: QuestionAnalysis) -> re.Pattern[str] | None:
    """What the quote must hold for a question after a person's age or a share, if it is one."""
    if _ASKS_SHARE.search(analysis.question):
        return _SHARE
    if _ASKS_AGE.search(analysis.question) and any(e.label == "PERSON" for e in analysis.entities):
        return _AGE
    return None


def _has_type(sentence: str, labels: frozenset[str], analysis: QuestionAnalysis) -> bool:
    """Whether ``sentence`` carries what the question asks for. For how many/much, a figure:
    digits or a large spelled-out number ("two parties" does not answer "how many votes");
    for when, spaCy's dates or a year."""
    if analysis.wh == "how_many":
        if _DIGIT.search(sentence) or _LARGE_NUMBER.search(sentence):
            return True
        # "How long ...?": a duration spelled out ("forty-eight hours") answers it.
        durations = labels & analysis.answer_types & {"DATE", "TIME"}
        return bool(durations) and bool(_SOME_NUMBER.search(sentence))
    if analysis.wh == "when" and _YEAR.search(sentence):
        return True
    return bool(labels & analysis.answer_types)


def _build(parts: AnswererParts) -> ExtractiveAnswerer:
    from rag.heuristic import HeuristicAnswerer

    def sentences() -> Embedder | None:
        judge = parts.judge()
        return judge.sentence_embedder() if isinstance(judge, PreparingJudge) else None

    rules = HeuristicAnswerer(parts.settings, parts.embedder, sentences)
    return ExtractiveAnswerer(
        parts.settings, parts.analyzer, parts.judge, parts.catalog, rules.answer
    )


register_answerer("extractive", _build)
