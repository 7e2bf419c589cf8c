"""Text utilities shared by chunking, lexical search and answering.

Sentence spans (with character offsets, so quotes stay verbatim), paragraph spans, and the
word normalisation used to compare questions with passages. Deliberately rule-based: it must
be fast, deterministic and offline. It does not try to be a full linguistic tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import Stemmer

# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs etc e.g i.e u.s u.k u.n e.u inc ltd co corp gov sen
    rep gen col lt sgt jan feb mar apr jun jul aug sep sept oct nov dec no fig approx dept
    est""".split()
)
# A sentence ends at . ! ? (or …), optionally followed by closing quotes/brackets, then space.
_SENTENCE_END = re.compile(r"""[.!?…]+["'”’»)\]]*(?=\s+|$)""")
_NEXT_STARTS_SENTENCE = re.compile(r"""\s+["'“‘«(\[]*[A-Z0-9À-ÖØ-Þ]""")
_TRAILING_WORD = re.compile(r"[^\W_](?:[^\W_]|\.)*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LINE_BREAK = re.compile(r"\s*\n\s*")
# Site furniture that scraping glued into a paragraph, mid-line: a share bar ("Send Facebook
# Twitter ... Permalink <url>", 156 of the news articles), a player notice ("Share this with
# Media playback is not supported on this device", 182). Each run is a sentence of its own
# (so the words after it start a clean sentence) that ``is_furniture`` recognises.
_GLUED_MARKERS = ("Facebook Twitter", "Share this", "Media playback")  # one is in every run
_GLUED_FURNITURE = re.compile(
    r"Send Facebook Twitter\b.{0,160}?\bPermalink(?:\s+https?://\S+)?"
    r"|(?:Share this with\s+)?Media playback is not supported on this device"
    r"|\bShare this with(?=\s)"
)
_WORD = re.compile(r"[0-9]+(?:[.,][0-9]+)*%?|[^\W\d_]+(?:[-'’][^\W\d_]+)*", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can cannot could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself let me more most my myself no nor not of off on once only or other
    ought our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours
    yourself yourselves also s t according said says say tell told article articles author
    does did do whose""".split()
)

_stemmer = Stemmer.Stemmer("english")


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each paragraph (blocks separated by blank lines), stripped."""
    spans: list[tuple[int, int]] = []
    position = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.extend(_stripped_span(text, position, match.start()))
        position = match.end()
    spans.extend(_stripped_span(text, position, len(text)))
    return spans


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text[start:end]``, offsets into ``text``.

    Line breaks always end a sentence (article text keeps one paragraph or list item per line
    block); a full stop after a known abbreviation or a single capital (an initial) does not.
    """
    return list(_sentence_spans(text, start, len(text) if end is None else end))


# Answering splits and tokenises the same passages and sentences several times per question
# (candidates, their neighbours, the judge's features), and again for related questions.
@lru_cache(maxsize=16384)
def _sentence_spans(text: str, start: int, end: int) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    for para_start, para_end in _stripped_span(text, start, end):
        for block_start, block_end in _blocks(text, para_start, para_end):
            spans.extend(_split_block(text, block_start, block_end))
    return tuple(spans)


def _blocks(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    for match in _LINE_BREAK.finditer(text, start, end):
        yield from _unglued(text, position, match.start())
        position = match.end()
    yield from _unglued(text, position, end)


def _unglued(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The line ``text[start:end]`` in pieces, each run of glued furniture a piece of its own."""
    if not any(text.find(marker, start, end) >= 0 for marker in _GLUED_MARKERS):
        yield from _stripped_span(text, start, end)  # the common case: no regex run
        return
    position = start
    for match in _GLUED_FURNITURE.finditer(text, start, end):
        yield from _stripped_span(text, position, match.start())
        yield from _stripped_span(text, match.start(), match.end())
        position = match.end()
    yield from _stripped_span(text, position, end)


def _split_block(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    sentence_start = start
    for match in _SENTENCE_END.finditer(text, start, end):
        boundary = match.end()
        if not _NEXT_STARTS_SENTENCE.match(text, boundary, end) and boundary < end:
            continue
        if text[match.start()] == "." and _is_abbreviation(text, sentence_start, match.start()):
            continue
        spans.extend(_stripped_span(text, sentence_start, boundary))
        sentence_start = boundary
    spans.extend(_stripped_span(text, sentence_start, end))
    return spans


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    word_start = dot
    while word_start > sentence_start and not text[word_start - 1].isspace():
        word_start -= 1
    # The letters before the dot: 'choice,"?Sen.' (a quote glued to its attribution) ends
    # in the title "Sen.", as '"Sen.' does.
    trailing = _TRAILING_WORD.search(text, word_start, dot)
    word = trailing.group(0).lower() if trailing else ""
    if len(word) == 1 and word.isalpha():
        return True  # an initial, as in "J. Smith"
    return word in _ABBREVIATIONS


def _stripped_span(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if start < end else []


# Number words and the digits they stand for. "one" is left out: "one of", "the one that"
# are rarely a count.
NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
}  # fmt: skip


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens of ``text``."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


# Irregular verbs: a stemmer keeps "grew" apart from "grow", so "How much did the economy grow?"
# never finds "the economy grew by 2.1%". Each entry is one verb's forms. Verbs whose forms
# are mostly other words ("found", "left", "meeting" -> "met", "deal") or that say little
# ("make", "take", "think", "spend") are left out: each form added to a search also finds
# every text that uses it.
_IRREGULAR_VERBS = """beat beaten; bite bit bitten; bleed bled; blow blew blown; break broke broken;
    breed bred; build built; burn burnt; buy bought; catch caught; choose chose chosen;
    dig dug; drink drank drunk; drive drove driven; eat ate eaten; fall fell fallen;
    fight fought; flee fled; fly flew flown; forbid forbade forbidden; forget forgot forgotten;
    forgive forgave forgiven; freeze froze frozen; grow grew grown; hang hung; hide hid hidden;
    lose lost; mislead misled; overcome overcame; overtake overtook overtaken;
    overthrow overthrew overthrown; pay paid; prove proven; ride rode ridden; rise rose risen;
    seek sought; sell sold; send sent; shake shook shaken; shoot shot; shrink shrank shrunk;
    sing sang sung; sink sank sunk; slay slew slain; sleep slept; slide slid; speak spoke spoken;
    steal stole stolen; sting stung; strike struck stricken; swear swore sworn; swim swam swum;
    teach taught; tear tore torn; throw threw thrown; undergo underwent undergone;
    uphold upheld; wear wore worn; weep wept; win won; withdraw withdrew withdrawn;
    withhold withheld; write wrote written"""


def _verb_forms() -> dict[str, tuple[str, ...]]:
    forms: dict[str, tuple[str, ...]] = {}
    for line in _IRREGULAR_VERBS.split(";"):
        verb = tuple(line.split())
        for word in verb:
            forms[stem(word)] = tuple(dict.fromkeys((*forms.get(stem(word), ()), *verb)))
    return forms


_VERB_FORMS = _verb_forms()


def verb_forms(word: str) -> tuple[str, ...]:
    """The other forms of an irregular verb ("grew" -> "grow", "grown"); empty for any other
    word. What a lexical search adds to a question, not to what it indexes."""
    key = stem(word.lower())
    return tuple(w for w in _VERB_FORMS.get(key, ()) if stem(w) != key)


def content_terms(text: str) -> list[str]:
    """Stemmed non-stopword tokens: what two texts must share to be about the same thing."""
    return list(_content_terms(text))


@lru_cache(maxsize=65536)
def _content_terms(text: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit()))


# Site furniture that news pages glue into their text (a link to another story, a newsletter
# box): "READ MORE: <another headline> <the next sentence>", "Follow us on Facebook ...".
# A sentence holding it is never a quote: it mixes another story's headline into the text.
_FURNITURE = re.compile(
    r"\b(?:READ MORE|RELATED|WATCH|ALSO READ|MORE ON THIS)\s*:"
    r"|^\W*(?:Follow us on|Sign up for|Subscribe to|Share this slide|Want more updates)\b"
    rf"|^(?:{_GLUED_FURNITURE.pattern})$"
)


def word_key(text: str) -> tuple[str, ...]:
    """``text``'s words, lower-cased: two quotes with the same key say the same thing (a
    story syndicated to two articles), whatever their spacing and punctuation."""
    return tuple(words(text.lower()))


def is_furniture(sentence: str) -> bool:
    """Whether ``sentence`` carries site furniture rather than only the article's words."""
    return bool(_FURNITURE.search(sentence))
