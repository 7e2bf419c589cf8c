"""The archive's catalogue: its articles (headline, byline, outlet, date) and its names.

``Catalog`` is read from the lexical index (records and names only; an article's passages
are read again when asked for) and answers the questions that are about the archive rather
than inside an article: which articles there are from an outlet, the newest ones, an
article's passages in reading order, and which archive name a misspelt question name stands
for ("Devoss" -> "DeVos", by fuzzy matching with rapidfuzz). When the index version changes
it reads only the articles that changed (``updated``). It does not search text (retrieval
does) and never writes.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.schema import Passage
from rag.store import StoredChunk, by_article
from rag.text import STOPWORDS

if TYPE_CHECKING:
    from rag.lexical import LexicalSearch

_NAME_TOKEN = re.compile(r"\b[A-Z][\w’'-]*[\w]")
_LOWER_TOKEN = re.compile(r"\b[a-z][\w’'-]*[\w]")
_PLAIN_WORD = re.compile(r"\b[a-z][a-z0-9]*\b")
_PROPER_SHARE = 0.8  # written capitalised at least this often: a name ("kim" -> "Kim")
_NAME_PAIR = re.compile(r"\b([A-Z][\w’'-]*[\w]) (?=([A-Z][\w’'-]*[\w])\b)")
_MIN_FUZZY_CHARS = 4
_MIN_MOVED_CHARS = 6  # a moved letter is a typo only in a name this long
_FUZZY_CUTOFF = 85.0


@dataclass(frozen=True, slots=True)
class ArticleInfo:
    """One article's record as stored with its chunks."""

    article_id: str
    title: str
    author: str
    date: str
    publisher: str
    url: str


@dataclass(frozen=True, slots=True)
class Correction:
    """A question word that the archive spells differently."""

    typed: str
    meant: str


Reader = Callable[[Collection[str]], list[StoredChunk]]  # the chunks of these articles
_ARTICLES_PER_READ = 500
_RECENT_ARTICLES = 512  # articles whose passages a catalogue keeps at hand
# A catalogue updated in place keeps the names of the versions it replaced (adding is exact,
# subtracting would need the old text): past this share of articles replaced or removed since
# it was read whole, it is read whole again.
_REBUILD_SHARE = 0.1


class Catalog:
    """Articles and names of one version of the index.

    ``Catalog(chunks)`` holds the given chunks in memory (a small archive, tests);
    ``Catalog.of_index(lexical)`` keeps only the records and names of what a lexical index
    holds, reading passages from it when asked, and ``updated`` follows it to a new version
    reading only the articles that changed.
    """

    def __init__(self, chunks: Sequence[StoredChunk], version: str = "") -> None:
        held = by_article(chunks)
        self._start(version, lambda ids: [c for a in ids for c in held.get(a, [])], {})
        self._take(held)

    def _start(self, version: str, read: Reader, hashes: Mapping[str, str]) -> None:
        self.version = version
        self._read = read
        self._hashes = dict(hashes)
        self._stale = 0
        self.articles: dict[str, ArticleInfo] = {}
        # lower-cased -> (most frequent spelling, how often the archive writes it)
        self._names: dict[str, tuple[str, int]] = {}
        self._counts: Counter[str] = Counter()  # how often each spelling is written
        self._lowercase: Counter[str] = Counter()  # how often a name is written lower-cased
        self._words: set[str] = set()  # every word the archive writes lower-cased ("mark")
        self._pairs: Counter[tuple[str, str]] = Counter()  # adjacent names ("kaja", "kallas")
        self._recent: OrderedDict[str, list[Passage]] = OrderedDict()  # passages_of's cache
        self._recent_lock = threading.Lock()
        self._publishers: list[str] | None = None

    @classmethod
    def of_index(cls, lexical: LexicalSearch) -> Catalog:
        """The catalogue of what ``lexical`` holds, read article batch by batch; the chunks'
        text is not kept (``passages`` reads them again)."""
        catalog = cls.__new__(cls)
        hashes = lexical.article_hashes()
        catalog._start(lexical.version, lexical.article_chunks, hashes)
        ids = sorted(hashes)
        for i in range(0, len(ids), _ARTICLES_PER_READ):
            catalog._take(by_article(lexical.article_chunks(ids[i : i + _ARTICLES_PER_READ])))
        return catalog

    def updated(self, lexical: LexicalSearch) -> Catalog:
        """A catalogue of ``lexical``'s version built from this one: the articles whose
        version changed are read, the others kept (one aggregate read of the article
        hashes finds them). This one is left as it was, for questions still reading it."""
        hashes = lexical.article_hashes()
        changed = [a for a, h in hashes.items() if self._hashes.get(a) != h]
        removed = [a for a in self._hashes if a not in hashes]
        stale = self._stale + len(removed) + sum(a in self._hashes for a in changed)
        if stale > _REBUILD_SHARE * max(len(hashes), 1):
            return Catalog.of_index(lexical)
        catalog = Catalog.__new__(Catalog)
        catalog._start(lexical.version, lexical.article_chunks, hashes)
        catalog._stale = stale
        catalog.articles = {a: i for a, i in self.articles.items() if a in hashes}
        catalog._names = dict(self._names)
        catalog._counts = self._counts.copy()
        catalog._lowercase = self._lowercase.copy()
        catalog._words = set(self._words)
        catalog._pairs = self._pairs.copy()
        for i in range(0, len(changed), _ARTICLES_PER_READ):
            batch = changed[i : i + _ARTICLES_PER_READ]
            catalog._take(by_article(lexical.article_chunks(batch)))
        return catalog

    def _take(self, groups: Mapping[str, Sequence[StoredChunk]]) -> None:
        """Add these articles' records, and their names to the vocabulary."""
        counts: Counter[str] = Counter()
        lowercase: Counter[str] = Counter()
        for article_id, group in groups.items():
            self.articles[article_id] = _info(article_id, group[0])
            meta = group[0].metadata
            head = f"{meta.get('title', '')} {meta.get('author', '')} "
            counts.update(_NAME_TOKEN.findall(head + str(meta.get("publisher", ""))))
            for chunk in group:
                counts.update(_NAME_TOKEN.findall(chunk.text))
                lowercase.update(_LOWER_TOKEN.findall(chunk.text))
                self._pairs.update(
                    (a.lower(), b.lower()) for a, b in _NAME_PAIR.findall(chunk.text)
                )
        for token, count in counts.items():
            self._counts[token] += count
            lowered = token.lower()
            best, total = self._names.get(lowered, (token, 0))
            if self._counts[token] > self._counts[best]:
                best = token
            self._names[lowered] = (best, total + count)
        # Lower-cased counts only of words that are also written capitalised: what truecasing
        # needs, a vocabulary no larger than the names'.
        for token, count in lowercase.items():
            if token in self._names:
                self._lowercase[token] += count
        self._words.update(lowercase)

    # -- articles -------------------------------------------------------------------------------

    def newest(self, n: int, publishers: Iterable[str] = ()) -> list[ArticleInfo]:
        """The ``n`` newest articles (undated last), optionally only from ``publishers``."""
        wanted = {p.lower() for p in publishers}
        pool = [a for a in self.articles.values() if not wanted or a.publisher.lower() in wanted]
        pool.sort(key=lambda a: (a.date or "", a.title), reverse=True)
        return pool[:n]

    def publishers(self) -> list[str]:
        """The archive's outlets, sorted (read once per catalogue: every question asks)."""
        if self._publishers is None:
            self._publishers = sorted({a.publisher for a in self.articles.values() if a.publisher})
        return self._publishers

    def match_publisher(self, text: str) -> str:
        """The archive's outlet that ``text`` names ("the BBC", "abc" -> "ABC News"), or ""."""
        wanted = " ".join(w for w in re.findall(r"[\w.’'-]+", text.lower()) if w != "the")
        if not wanted:
            return ""
        for publisher in self.publishers():
            name = publisher.lower()
            if name == wanted or name.replace(" ", "") == wanted.replace(" ", ""):
                return publisher
        for publisher in self.publishers():
            first = publisher.lower().split()[0]
            if first == wanted.split()[0] and len(first) >= 2:
                return publisher
        return ""

    def publishers_in(self, question: str) -> list[str]:
        """Outlets of the archive that ``question`` names."""
        found = []
        lowered = f" {question.lower()} "
        for publisher in self.publishers():
            forms = _name_forms(publisher)
            if any(re.search(rf"(?<![\w]){re.escape(f)}(?![\w])", lowered) for f in forms):
                found.append(publisher)
        return found

    def named_sources(self, question: str) -> list[str]:
        """Outlets that ``question`` names as the source of what it asks: "the CNN story
        about ...", "according to the BBC", "what did Al Jazeera report", "RTÉ's profile".
        (A bare mention, as in "what did Trump say about CNN?", is not one.)"""
        found = []
        for publisher in self.publishers_in(question):
            for form in _name_forms(publisher):
                f = re.escape(form)
                if re.search(
                    rf"\b(?:according to|did|does|do|has|have|in|from|by|on) (?:the )?{f}(?![\w])"
                    rf"|(?<![\w]){f}(?:'s|’s)? (?:\w+ )?(?:story|stories|articles?|pieces?"
                    rf"|reports?|reported|reporting|coverage|obituar(?:y|ies)|profiles?"
                    rf"|interviews?|wrote|writes|says|said)\b",
                    question.lower(),
                ):
                    found.append(publisher)
                    break
        return found

    def passages(self, article_id: str) -> list[Passage]:
        """Every chunk of the article as a passage, in reading order (score 0)."""
        return self.passages_of([article_id]).get(article_id, [])

    def passages_of(self, article_ids: Iterable[str]) -> dict[str, list[Passage]]:
        """Each article's passages (as ``passages``), read in one go; the most recently
        asked articles of this version are kept (answering reads the same ones again)."""
        from rag.retrieve import passage_from_chunk

        wanted = list(dict.fromkeys(article_ids))
        found: dict[str, list[Passage]] = {}
        with self._recent_lock:
            for a in wanted:
                if a in self._recent:
                    self._recent.move_to_end(a)
                    found[a] = self._recent[a]
        missing = [a for a in wanted if a not in found]
        if missing:
            read = by_article(self._read(missing))
            fresh = {a: [passage_from_chunk(c) for c in read.get(a, [])] for a in missing}
            with self._recent_lock:
                self._recent.update(fresh)
                while len(self._recent) > _RECENT_ARTICLES:
                    self._recent.popitem(last=False)
            found.update(fresh)
        return {a: found[a] for a in wanted}

    def lead_passage(self, article_id: str) -> Passage | None:
        passages = self.passages(article_id)
        return passages[0] if passages else None

    # -- names ----------------------------------------------------------------------------------

    def truecased(self, question: str) -> str:
        """``question`` with the names in it capitalised as the archive writes them, when it
        was typed all in lower case ("what was found on kim jong nam's face?" -> "... Kim Jong
        Nam's face?"): the question's names, spaCy's entities and the name checks all read
        capitals. A word counts as a name when the archive writes it capitalised at least
        80% of the time (so "face", capitalised in headlines, stays as typed); right after a
        name, half the time will do ("nam" of "Kim Jong-nam"), and so will a misspelling of
        a name ("chuck bery" -> "Chuck Bery", which the spelling correction then reads).
        A question with any capital is left as the user cased it."""
        if any(ch.isupper() for ch in question):
            return question
        out: list[str] = []
        position = 0
        after_name = False
        for match in _PLAIN_WORD.finditer(question):
            word = match.group(0)
            between = question[position : match.start()]
            position = match.end()
            after_name = after_name and between.strip() == ""
            spelled, capitalised = self._names.get(word, ("", 0))
            share = capitalised / ((capitalised + self._lowercase[word]) or 1)
            if word in STOPWORDS or len(word) < 2:
                name = ""
            elif spelled and share >= (0.5 if after_name else _PROPER_SHARE):
                name = spelled
            elif after_name and not spelled and self._misspells_a_name(word):
                name = word.capitalize()
            else:
                name = ""
            out.append(between + (name or word))
            after_name = bool(name)
        return "".join(out) + question[position:]

    def _misspells_a_name(self, word: str) -> bool:
        """Whether ``word`` is one letter off a word the archive writes as a name."""
        for correction in self.correct([word.capitalize()]):
            meant = correction.meant.lower()
            capitalised = self._names.get(meant, ("", 0))[1]
            if capitalised >= _PROPER_SHARE * (capitalised + self._lowercase[meant]):
                return True
        return False

    def knows(self, word: str) -> bool:
        return word.lower() in self._names

    def correct(self, names: Sequence[str]) -> list[Correction]:
        """Archive spellings for the words of ``names`` that the archive does not hold."""
        from rapidfuzz import fuzz, process

        vocabulary = self._names
        corrections: list[Correction] = []
        for name in names:
            typed = re.findall(r"[\w’'-]+", name)
            for position, word in enumerate(typed):
                lowered = word.lower()
                before = typed[position - 1].lower() if position else ""
                after = typed[position + 1].lower() if position + 1 < len(typed) else ""
                if (
                    len(lowered) < _MIN_FUZZY_CHARS
                    or lowered in vocabulary
                    or lowered in self._words  # a word, not a typo: "Mark" is not "Marek"
                    or lowered in STOPWORDS
                    or not word[0].isupper()
                    # Half of a name the archive writes as one word: "Le Grande" (LeGrande)
                    # is not a typo of "Grand".
                    or before + lowered in vocabulary
                    or lowered + after in vocabulary
                ):
                    continue
                # A typo, not another name (``_typo_of``), with the same first letter
                # ("Devoss" -> "DeVos", "Kalas" -> "Kallas", "Merkle" -> "Merkel", "Ghandi"
                # -> "Gandhi"; not "Australia" -> "Austria"). Of several, the one the archive
                # writes next to the other words of the typed name ("Kaja Kalas": Kallas,
                # not Klaas), then the one it writes most often (a reader who typed "Merkle"
                # more likely meant Merkel than Senator Merkley).
                close = [
                    candidate
                    for candidate, _, _ in process.extract(
                        lowered,
                        vocabulary.keys(),
                        scorer=fuzz.ratio,
                        limit=10,
                        score_cutoff=_FUZZY_CUTOFF - 5,
                    )
                    if candidate[0] == lowered[0] and _typo_of(lowered, candidate)
                ]
                if close:
                    best = max(
                        close,
                        key=lambda c, b=before, a=after: (  # type: ignore[misc]
                            self._pairs[(b, c)] + self._pairs[(c, a)],
                            vocabulary[c][1],
                        ),
                    )
                    corrections.append(Correction(word, vocabulary[best][0]))
        return corrections


def _typo_of(typed: str, name: str) -> bool:
    """Whether ``typed`` is a typo of ``name``: one letter more, less, changed or two
    swapped (optimal string alignment distance 1), or, in a longer name, one letter moved
    ("Ghandi" for "Gandhi": the same letters, distance 2)."""
    from rapidfuzz.distance import OSA

    distance = OSA.distance(typed, name)
    return distance <= 1 or (
        distance == 2
        and len(name) >= _MIN_MOVED_CHARS
        and typed.isalpha()  # a word, not a formula: "R-OOC-R" is not "R-COO-R"
        and sorted(typed) == sorted(name)
    )


def _info(article_id: str, chunk: StoredChunk) -> ArticleInfo:
    meta = chunk.metadata
    return ArticleInfo(
        article_id=article_id,
        title=str(meta.get("title", "")),
        author=str(meta.get("author", "")),
        date=str(meta.get("date", "")),
        publisher=str(meta.get("publisher", "")),
        url=str(meta.get("url", "")),
    )


def _name_forms(publisher: str) -> set[str]:
    """How a question may name an outlet, lower-cased: in full, or by its first word when
    that has three letters or more ("abc" for "ABC News"; "Al Jazeera" only in full)."""
    name = publisher.lower()
    first = name.split()[0]
    return {name, first} if len(first) >= 3 else {name}
