"""Split articles into chunks: the units that are embedded, indexed and retrieved.

Chunks follow the text's own structure: whole paragraphs are packed together up to
``chunk_chars``; a paragraph longer than that is split between sentences, with the last
``overlap_sentences`` sentences repeated at the start of the next chunk so that a fact spread
over a sentence boundary is still found. A chunk never cuts a sentence unless that sentence
alone is longer than a chunk. Every chunk keeps its character offsets into the article text
and an id derived from its content. This module does not read files or embed anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rag.schema import Article, Chunk, content_hash
from rag.text import paragraph_spans, sentence_spans


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of an over-long one) and the paragraph it belongs to."""

    start: int
    end: int
    paragraph: int


def chunk_article(article: Article, chunk_chars: int, overlap_sentences: int = 1) -> list[Chunk]:
    """Chunks of ``article``, in reading order, covering all of its text."""
    units = _units(article.text, chunk_chars)
    spans = _pack(units, chunk_chars, overlap_sentences)
    seen: Counter[str] = Counter()
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(spans):
        text = article.text[start:end]
        # The same text twice in one article (a repeated pull quote) still gets distinct ids.
        seen[text] += 1
        suffix = "" if seen[text] == 1 else str(seen[text])
        chunk_id = content_hash(article.article_id, text, suffix)
        chunks.append(Chunk(chunk_id, article.article_id, text, start, end, index))
    return chunks


def _units(text: str, chunk_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph, (p_start, p_end) in enumerate(paragraph_spans(text)):
        for s_start, s_end in sentence_spans(text, p_start, p_end):
            for piece in _split_long(text, s_start, s_end, chunk_chars):
                units.append(_Unit(piece[0], piece[1], paragraph))
    return units


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than ``limit`` at whitespace (tables, lists without stops)."""
    pieces: list[tuple[int, int]] = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        piece_end = cut
        while piece_end > start and text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((start, piece_end))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        pieces.append((start, end))
    return pieces


def _pack(units: list[_Unit], chunk_chars: int, overlap: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    current: list[_Unit] = []
    for unit in units:
        if current and unit.end - current[0].start > chunk_chars:
            spans.append((current[0].start, current[-1].end))
            # Overlap only inside a paragraph: across a paragraph break it adds little context.
            carried = (
                [u for u in current[-overlap:] if u.paragraph == unit.paragraph] if overlap else []
            )
            if carried and unit.end - carried[0].start > chunk_chars:
                carried = []
            current = [*carried, unit]
        else:
            current.append(unit)
    if current:
        spans.append((current[0].start, current[-1].end))
    return spans


def reassemble(pieces: Iterable[tuple[int, int, str]]) -> str:
    """An article's text rebuilt from ``(start, end, text)`` pieces cut from it (chunks or
    passages) by their character offsets.

    Pieces may overlap (a repeated sentence) or leave out the whitespace between them (a
    paragraph break between packed paragraphs, a space between sentences of a split one):
    overlaps are taken once, and a gap is refilled with the whitespace normalised text has
    there, so the offsets of every piece, and so of every citation, still hold.
    """
    parts: list[str] = []
    position = 0
    for start, end, text in sorted(pieces, key=lambda piece: (piece[0], piece[1])):
        if end <= position:
            continue
        if start > position:
            gap = start - position
            parts.append("\n\n" if gap == 2 else " " * gap)
            position = start
        parts.append(text[position - start :])
        position = end
    return "".join(parts)
