"""The verifier: what a language model wrote is checked against the passages it was given.

Small models invented sums and dates for this corpus ("EUR 1.5 billion for Africa"), so no
generated sentence is shown unchecked. ``verify_answer(reply, passages)`` splits the reply into
sentences (``rag.text.sentence_spans``) and keeps a sentence only when

* it cites at least one passage it was given (markers ``[n]``, 1 <= n <= len(passages));
* every number in it (digits, and words such as "three", "billion", "percent") appears in
  a passage it cites, or in that passage's title or date;
* every month or weekday it names appears there too;
* every name in it (a capitalised word that does not start the sentence, or an acronym)
  appears there too (an acronym may stand for the initials of a phrase, "EU" for "European
  Union"; "European" matches "Europe");
* at least ``MIN_OVERLAP`` of its content words (``rag.text.content_terms``) are in what it cites.

Removed sentences are reported with the first rule they broke. Markers that point to passages
not given are dropped, and the rest are renumbered 1..m in order of first use. Each cited passage
becomes one ``Citation`` whose ``quote`` is the passage sentence that best matches the answer
sentences citing it, copied verbatim (so ``rag.cite.citation_problems`` holds). A reply that says
it does not know (``says_it_does_not_know``) is a refusal. ``Verification.usable`` says whether
enough survived to show. This module is pure: it calls no model and reads no settings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.schema import Citation, Passage, RemovedSentence
from rag.text import NUMBER_WORDS, content_terms, sentence_spans, stem, words

# At least this share of a sentence's content words must be in what it cites.
MIN_OVERLAP = 0.5
# Below this share of surviving sentences, the whole generated answer is not shown.
MIN_KEPT_SHARE = 0.25

# "[1]", "[1, 2]", "[1][2]", "[Passage 3]"
_MARKER = re.compile(r"\[\s*(?:passages?\s*)?(\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.IGNORECASE)
_LEADING_MARKERS = re.compile(r"^(?:\s*" + _MARKER.pattern + r")+[.,;:!?]*", re.IGNORECASE)
_LIST_PREFIX = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MAGNITUDES = frozenset(
    "hundred hundreds thousand thousands million millions billion billions trillion trillions"
    " dozen dozens percent per-cent".split()
)
_MONTHS = {
    "january": "january", "jan": "january", "february": "february", "feb": "february",
    "march": "march", "april": "april", "apr": "april", "may": "may", "june": "june",
    "jun": "june", "july": "july", "jul": "july", "august": "august", "aug": "august",
    "september": "september", "sep": "september", "sept": "september", "october": "october",
    "oct": "october", "november": "november", "nov": "november", "december": "december",
    "dec": "december",
}  # fmt: skip
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
).split()
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_CAPITALISED = re.compile(r"[A-Z][\w’'.-]*")
# Words a sentence may use about the passages themselves without claiming anything.
_SELF_REFERENCE = frozenset(content_terms("passage passages text source sources"))
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_DONT_KNOW = re.compile(
    r"\bi (?:do not|don't|dont|did not|didn't) (?:know|have (?:enough )?information)\b"
    r"|\bnot (?:found |mentioned |stated |specified |provided |given |available |covered )?"
    r"in (?:the |these |any of the )?(?:given |provided )?(?:passages?|articles?|context|text"
    r"|sources?)\b"
    r"|\b(?:passages?|articles?|context|text|sources?) (?:provided |given )?"
    r"(?:do|does|did)(?: not|n't) (?:say|mention|contain|provide|specify|state|include"
    r"|answer|give|explain|tell|discuss|cover)\b"
    r"|\b(?:no|not enough|insufficient) information\b"
    r"|\b(?:cannot|can't|can not|unable to|not able to) (?:answer|find|determine|tell|say"
    r"|know|be determined)\b"
    r"|\bthere is no mention\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Verification:
    """What survived of a generated answer.

    ``text`` holds the kept sentences with renumbered markers (empty when none survived),
    ``citations`` one entry per cited passage, ``removed`` each removed sentence with its
    reason, ``declined`` whether the model said it does not know (and nothing was kept),
    ``dropped_markers`` the marker numbers that named passages it was not given.
    """

    text: str
    citations: tuple[Citation, ...]
    removed: tuple[RemovedSentence, ...]
    declined: bool
    kept: int
    dropped_markers: tuple[int, ...] = ()

    @property
    def usable(self) -> bool:
        """Enough survived to show: at least one sentence, and ``MIN_KEPT_SHARE`` of them."""
        total = self.kept + len(self.removed)
        return self.kept > 0 and self.kept / total >= MIN_KEPT_SHARE


@dataclass(frozen=True, slots=True)
class _Claim:
    text: str  # the sentence without its markers
    cited: tuple[int, ...]  # valid passage numbers (1-based, as given), in order


def says_it_does_not_know(text: str) -> bool:
    """Whether ``text`` declines to answer ("I don't know", "the passages do not say ...")."""
    return bool(_DONT_KNOW.search(_MARKER.sub(" ", text).replace("’", "'")))


def split_sentences(reply: str) -> list[str]:
    """The sentences of ``reply``; markers after a full stop stay with the sentence before
    ("... Japan. [2] It also ..." gives "... Japan. [2]" and "It also ...")."""
    sentences: list[str] = []
    for start, end in sentence_spans(reply):
        sentence = reply[start:end]
        lead = _LEADING_MARKERS.match(sentence)
        if sentences and lead:
            sentences[-1] = f"{sentences[-1]} {lead.group().strip()}"
            sentence = sentence[lead.end() :].strip()
        if sentence:
            sentences.append(sentence)
    return sentences


def verify_answer(
    reply: str, passages: Sequence[Passage], *, min_overlap: float = MIN_OVERLAP
) -> Verification:
    """Check every sentence of ``reply`` against the ``passages`` it was given as [1]..[k]."""
    removed: list[RemovedSentence] = []
    claims: list[_Claim] = []
    dropped: list[int] = []
    declined = False
    seen: set[str] = set()
    for sentence in split_sentences(reply):
        numbers = [int(n) for group in _MARKER.findall(sentence) for n in re.findall(r"\d+", group)]
        valid = tuple(dict.fromkeys(n for n in numbers if 1 <= n <= len(passages)))
        invalid = sorted({n for n in numbers if not 1 <= n <= len(passages)})
        dropped.extend(n for n in invalid if n not in dropped)
        claim = _claim_text(sentence)
        if not words(claim):
            continue  # only markers or punctuation
        if says_it_does_not_know(claim):
            declined = True
            continue
        if claim.lower() in seen:
            continue
        seen.add(claim.lower())
        if not valid:
            reason = (
                f"cites only passages that were not given: {', '.join(f'[{n}]' for n in invalid)}"
                if invalid
                else "cites no passage"
            )
            removed.append(RemovedSentence(claim, reason))
            continue
        problem = _unsupported(claim, [passages[n - 1] for n in valid], min_overlap)
        if problem:
            removed.append(RemovedSentence(claim, problem))
            continue
        claims.append(_Claim(claim, valid))
    text, citations = _renumber(claims, passages)
    return Verification(
        text=text,
        citations=citations,
        removed=tuple(removed),
        declined=declined and not claims,
        kept=len(claims),
        dropped_markers=tuple(dropped),
    )


# -- one sentence ----------------------------------------------------------------------------------


def _claim_text(sentence: str) -> str:
    text = _LIST_PREFIX.sub("", _MARKER.sub(" ", sentence))
    text = " ".join(text.replace("**", "").split())
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return text.strip(" ,;:")


def _unsupported(claim: str, cited: Sequence[Passage], min_overlap: float) -> str:
    """Why ``claim`` is not supported by the ``cited`` passages; "" when it is."""
    source = "\n".join(_source_text(p) for p in cited)
    source_words = words(source)
    vocabulary = set(source_words)
    vocabulary_stems = {stem(w) for w in vocabulary}
    source_numbers = {_plain_number(n) for n in _NUMBER.findall(source)}
    source_numbers |= {NUMBER_WORDS[w] for w in vocabulary if w in NUMBER_WORDS}
    claim_words = words(claim)

    for number in _NUMBER.findall(claim):
        if _plain_number(number) not in source_numbers:
            return f"the number {number!r} is not in the cited passages"
    for word in claim_words:
        if (
            word in NUMBER_WORDS
            and word not in vocabulary
            and NUMBER_WORDS[word] not in source_numbers
        ):
            return f"the number {word!r} is not in the cited passages"
        if (
            word in _MAGNITUDES
            and stem(word) not in vocabulary_stems
            and not (word.startswith("percent") and "%" in source)
        ):
            return f"the amount {word!r} is not in the cited passages"
    for word in claim_words:
        if word in _WEEKDAYS and word not in vocabulary:
            return f"the day {word!r} is not in the cited passages"
    for token in re.findall(r"[A-Za-z]+", claim):
        month = _MONTHS.get(token.lower())
        if (
            month
            and token[0].isupper()
            and month not in vocabulary
            and token.lower() not in vocabulary
        ):
            if token.lower() == "may":
                continue  # "May" opens sentences as a verb as often as it names a month
            return f"the date {token!r} is not in the cited passages"
    for name in _names(claim):
        if not _name_in(name, vocabulary, source):
            return f"the name {name!r} is not in the cited passages"

    terms = set(content_terms(claim)) - _SELF_REFERENCE
    if terms:
        share = len(terms & set(content_terms(source))) / len(terms)
        if share < min_overlap:
            return (
                f"too little of it is in the cited passages ({share:.0%} of its content words,"
                f" needs {min_overlap:.0%})"
            )
    return ""


def _source_text(passage: Passage) -> str:
    """What a citation of ``passage`` vouches for: its text, title, author, publisher, date."""
    parts = [passage.title, passage.author, passage.publisher, passage.text]
    match = _ISO_DATE.match(passage.date)
    if match:
        year, month, day = int(match[1]), int(match[2]), int(match[3])
        if 1 <= month <= 12:
            parts.append(f"{_MONTH_NAMES[month - 1]} {day} {year} {passage.date}")
    elif passage.date:
        parts.append(passage.date)
    return "\n".join(p for p in parts if p)


def _plain_number(number: str) -> str:
    """The digits of ``number`` without thousands separators: "1,000" reads as "1000"."""
    return number.replace(",", "").rstrip(".")


def _names(claim: str) -> list[str]:
    """Capitalised words and acronyms of ``claim`` that name something.

    The first word is a name only when it is an acronym or the next word is capitalised too
    ("Kaja Kallas said"); month and weekday names are checked as dates.
    """
    tokens = list(_CAPITALISED.finditer(claim))
    names: list[str] = []
    for i, match in enumerate(tokens):
        token = re.sub(r"['’]s$", "", match.group()).strip(".’'-")
        if not token or token.lower() in _MONTHS or token.lower() in _WEEKDAYS:
            continue
        if token == "I" or token.lower() in _STOPWORD_NAMES:
            continue
        first = match.start() == 0 or claim[: match.start()].rstrip().endswith((".", "!", "?", ":"))
        if first:
            following = (
                i + 1 < len(tokens) and claim[match.end() : tokens[i + 1].start()].strip() == ""
            )
            if not (token.isupper() and len(token) > 1) and not following:
                continue
        names.append(token)
    return names


def _name_in(name: str, vocabulary: set[str], source: str) -> bool:
    parts = words(name)
    if not parts:
        return True
    if all(_word_known(part, vocabulary) for part in parts):
        return True
    # An acronym may stand for a capitalised phrase of the source: "EU" for "European Union".
    letters = re.sub(r"[^A-Za-z]", "", name)
    if letters.isupper() and 2 <= len(letters) <= 6:
        initials = r"\s+".join(rf"{ch}[\w’'-]*" for ch in letters)
        return bool(re.search(rf"\b{initials}\b", source))
    return False


def _word_known(word: str, vocabulary: set[str]) -> bool:
    if word in vocabulary:
        return True
    # "European" for "Europe", "Japanese" for "Japan": one word is the other plus a suffix.
    root = stem(word)
    return len(root) >= 4 and any(
        w.startswith(root) or (len(w) >= 4 and root.startswith(stem(w))) for w in vocabulary
    )


# Function words that are capitalised at the start of a clause after a colon or a quote.
_STOPWORD_NAMES = frozenset(
    "the a an this that these those it its in on at for of and but or".split()
)


# -- renumbering and quotes ------------------------------------------------------------------------


def _renumber(
    claims: Sequence[_Claim], passages: Sequence[Passage]
) -> tuple[str, tuple[Citation, ...]]:
    """The kept sentences with markers 1..m in order of first use, and one citation per
    cited passage quoting its sentence that best matches the sentences citing it."""
    new_number: dict[int, int] = {}
    for claim in claims:
        for n in claim.cited:
            new_number.setdefault(n, len(new_number) + 1)
    sentences = []
    for claim in claims:
        text = (
            claim.text if claim.text.endswith((".", "!", "?", "…", "”", '"')) else f"{claim.text}."
        )
        markers = "".join(f"[{new_number[n]}]" for n in claim.cited)
        sentences.append(f"{text} {markers}")
    citations = []
    for old, new in new_number.items():
        passage = passages[old - 1]
        citing = " ".join(c.text for c in claims if old in c.cited)
        citations.append(
            Citation(
                n=new,
                article_id=passage.article_id,
                title=passage.title,
                author=passage.author,
                date=passage.date,
                url=passage.url,
                quote=best_quote(passage, citing),
                chunk_id=passage.chunk_id,
                score=round(passage.score, 4),
            )
        )
    return " ".join(sentences), tuple(citations)


def best_quote(passage: Passage, answer_text: str) -> str:
    """The sentence of ``passage`` (verbatim) that shares most with ``answer_text``: numbers
    count double, ties go to the earlier sentence."""
    terms = set(content_terms(answer_text))
    numbers = {_plain_number(n) for n in _NUMBER.findall(answer_text)}
    best, best_score = "", -1.0
    for start, end in sentence_spans(passage.text):
        sentence = passage.text[start:end]
        sentence_numbers = {_plain_number(n) for n in _NUMBER.findall(sentence)}
        score = len(terms & set(content_terms(sentence))) + 2.0 * len(numbers & sentence_numbers)
        if score > best_score:
            best, best_score = sentence, score
    return best or passage.text.strip()
