"""The archive's catalogue: its articles (headline, byline, outlet, date) and its names.

``Catalog`` is built from the stored chunks (what the lexical index already holds in memory)
and answers the questions that are about the archive rather than inside an article: which
articles there are from an outlet, the newest ones, an article's passages in reading order, and
which archive name a misspelt question name stands for ("Devoss" -> "DeVos", by fuzzy matching
with rapidfuzz). It is rebuilt whenever the index version changes. It does not search text
(retrieval does) and never writes.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.schema import Passage
from rag.store import StoredChunk
from rag.text import STOPWORDS

_NAME_TOKEN = re.compile(r"\b[A-Z][\w’'-]*[\w]")
_NAME_PAIR = re.compile(r"\b([A-Z][\w’'-]*[\w]) (?=([A-Z][\w’'-]*[\w])\b)")
_MIN_FUZZY_CHARS = 4
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


class Catalog:
    """Articles and names of one version of the index."""

    def __init__(self, chunks: Sequence[StoredChunk], version: str = "") -> None:
        self.version = version
        by_article: dict[str, list[StoredChunk]] = {}
        for chunk in chunks:
            by_article.setdefault(str(chunk.metadata.get("article_id", "")), []).append(chunk)
        self._chunks = {
            aid: sorted(group, key=lambda c: int(c.metadata.get("index", 0) or 0))
            for aid, group in by_article.items()
            if aid
        }
        self.articles = {aid: _info(aid, group[0]) for aid, group in self._chunks.items()}
        # lower-cased -> (most frequent spelling, how often the archive writes it)
        self._names: dict[str, tuple[str, int]] | None = None
        self._pairs: Counter[tuple[str, str]] = Counter()  # adjacent names ("kaja", "kallas")
        self._names_lock = threading.Lock()

    # -- articles -------------------------------------------------------------------------------

    def newest(self, n: int, publishers: Iterable[str] = ()) -> list[ArticleInfo]:
        """The ``n`` newest articles (undated last), optionally only from ``publishers``."""
        wanted = {p.lower() for p in publishers}
        pool = [a for a in self.articles.values() if not wanted or a.publisher.lower() in wanted]
        pool.sort(key=lambda a: (a.date or "", a.title), reverse=True)
        return pool[:n]

    def publishers(self) -> list[str]:
        return sorted({a.publisher for a in self.articles.values() if a.publisher})

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
        from rag.retrieve import passage_from_chunk

        return [passage_from_chunk(c) for c in self._chunks.get(article_id, [])]

    def lead_passage(self, article_id: str) -> Passage | None:
        chunks = self._chunks.get(article_id)
        if not chunks:
            return None
        from rag.retrieve import passage_from_chunk

        return passage_from_chunk(chunks[0])

    # -- names ----------------------------------------------------------------------------------

    def _vocabulary(self) -> dict[str, tuple[str, int]]:
        with self._names_lock:
            if self._names is None:
                counts: Counter[str] = Counter()
                for group in self._chunks.values():
                    meta = group[0].metadata
                    head = f"{meta.get('title', '')} {meta.get('author', '')} "
                    counts.update(_NAME_TOKEN.findall(head + str(meta.get("publisher", ""))))
                    for chunk in group:
                        counts.update(_NAME_TOKEN.findall(chunk.text))
                        self._pairs.update(
                            (a.lower(), b.lower()) for a, b in _NAME_PAIR.findall(chunk.text)
                        )
                spelling: dict[str, tuple[str, int]] = {}
                for token, count in counts.most_common():
                    lowered = token.lower()
                    first, total = spelling.get(lowered, (token, 0))
                    spelling[lowered] = (first, total + count)
                self._names = spelling
            return self._names

    def knows(self, word: str) -> bool:
        return word.lower() in self._vocabulary()

    def correct(self, names: Sequence[str]) -> list[Correction]:
        """Archive spellings for the words of ``names`` that the archive does not hold."""
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import OSA

        vocabulary = self._vocabulary()
        corrections: list[Correction] = []
        for name in names:
            typed = re.findall(r"[\w’'-]+", name)
            for position, word in enumerate(typed):
                lowered = word.lower()
                if (
                    len(lowered) < _MIN_FUZZY_CHARS
                    or lowered in vocabulary
                    or lowered in STOPWORDS
                    or not word[0].isupper()
                ):
                    continue
                # A typo, not another name: one letter more, less, changed or two swapped
                # (optimal string alignment distance 1), the same first letter ("Devoss" ->
                # "DeVos", "Kalas" -> "Kallas", "Merkle" -> "Merkel"; not "Australia" ->
                # "Austria"). Of several, the one the archive writes next to the other words
                # of the typed name ("Kaja Kalas": Kallas, not Klaas), then the one it writes
                # most often (a reader who typed "Merkle" more likely meant Merkel than
                # Senator Merkley).
                close = [
                    candidate
                    for candidate, _, _ in process.extract(
                        lowered,
                        vocabulary.keys(),
                        scorer=fuzz.ratio,
                        limit=10,
                        score_cutoff=_FUZZY_CUTOFF - 5,
                    )
                    if candidate[0] == lowered[0] and OSA.distance(candidate, lowered) <= 1
                ]
                if close:
                    before = typed[position - 1].lower() if position else ""
                    after = typed[position + 1].lower() if position + 1 < len(typed) else ""

                    best = max(
                        close,
                        key=lambda c, b=before, a=after: (  # type: ignore[misc]
                            self._pairs[(b, c)] + self._pairs[(c, a)],
                            vocabulary[c][1],
                        ),
                    )
                    corrections.append(Correction(word, vocabulary[best][0]))
        return corrections


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
