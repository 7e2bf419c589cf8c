"""Tests for ``rag.chunk.chunk_article``: offsets, coverage, size limits, overlap and ids."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from rag.chunk import chunk_article
from rag.schema import Article, Chunk
from rag.text import paragraph_spans, sentence_spans

CHUNK_CHARS = 200

INTRO = (
    "The European Union has a message to the world: let’s work together on tech. "
    "In proposals published on June 5, the bloc doubled down on international partnerships."
)
MIDDLE = (
    "That includes forking out billions of euros for digital infrastructure. "
    "It also includes a growing wariness to pass new digital rules. "
    "Mr. Smith, a U.S. official, said the plan was “ambitious.” "
    "“Europe has huge potential,,” said Kaja Kallas. “We are ready.” "
    "Growth was 3.5 percent last year. Is that enough? Nobody knows!"
)
OUTRO = "Brussels wants to reinforce ties with India, South Korea and Japan."
HEADER = "Home\n\nDonate\nPerspective\n\nMark Scott / Jun 5, 2025"

HAND_BUILT = [
    INTRO,
    f"{INTRO}\n\n{MIDDLE}\n\n{OUTRO}",
    f"{HEADER}\n\n{INTRO}\n\n{MIDDLE}\n\n{MIDDLE}\n\n{OUTRO}",
    "A single short sentence.",
    "word " * 120 + "end of an over-long sentence without a stop",
    f"{OUTRO}\n\n" + "x" * 450 + f"\n\n{OUTRO}",
]

_VOCAB = (
    "the bloc said Europe data rules partners digital strategy Brussels China India tech "
    "officials billions euros infrastructure Mr. U.S. e.g. 3.5 percent quantum semiconductors"
).split()


def random_text(seed: int) -> str:
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(rng.randint(1, 8)):
        sentences = []
        for _ in range(rng.randint(1, 9)):
            n_words = rng.choice([rng.randint(1, 15), rng.randint(1, 15), rng.randint(30, 80)])
            sentence = " ".join(rng.choice(_VOCAB) for _ in range(n_words))
            sentences.append(sentence.capitalize() + rng.choice([".", ".", "?", "!", ""]))
        paragraphs.append(rng.choice([" ", "  ", "\n"]).join(sentences))
    return rng.choice(["\n\n", "\n\n\n", "\n \n"]).join(paragraphs)


CASES = [(text, CHUNK_CHARS) for text in HAND_BUILT] + [
    (random_text(seed), random.Random(seed).choice([200, 300, 500, 900])) for seed in range(40)
]


def article(text: str, article_id: str = "art-1") -> Article:
    return Article(article_id=article_id, title="Why Europe Should Double Down", text=text)


def chunks_of(text: str, chunk_chars: int = CHUNK_CHARS, overlap: int = 1) -> list[Chunk]:
    return chunk_article(article(text), chunk_chars, overlap)


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_chunk_offsets_slice_the_article_text(text: str, chunk_chars: int) -> None:
    a = article(text)
    for chunk in chunk_article(a, chunk_chars):
        assert a.text[chunk.start : chunk.end] == chunk.text
        assert chunk.article_id == a.article_id


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_chunks_are_in_reading_order_with_indexes_0_to_n(text: str, chunk_chars: int) -> None:
    chunks = chunks_of(text, chunk_chars)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for before, after in pairwise(chunks):
        assert before.start < after.start
        assert before.end < after.end


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_chunks_are_stripped_and_never_empty(text: str, chunk_chars: int) -> None:
    for chunk in chunks_of(text, chunk_chars):
        assert chunk.text
        assert chunk.text == chunk.text.strip()


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_every_sentence_is_covered_by_the_chunks(text: str, chunk_chars: int) -> None:
    chunks = chunks_of(text, chunk_chars)
    for s_start, s_end in sentence_spans(text):
        if s_end - s_start <= chunk_chars:
            assert any(c.start <= s_start and s_end <= c.end for c in chunks), text[s_start:s_end]
    covered = [False] * len(text)
    for c in chunks:
        covered[c.start : c.end] = [True] * (c.end - c.start)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_no_chunk_is_longer_than_chunk_chars(text: str, chunk_chars: int) -> None:
    for chunk in chunks_of(text, chunk_chars):
        assert len(chunk.text) <= chunk_chars


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_chunks_never_cut_a_sentence_that_fits(text: str, chunk_chars: int) -> None:
    chunks = chunks_of(text, chunk_chars)
    for s_start, s_end in sentence_spans(text):
        if s_end - s_start > chunk_chars:
            continue
        for c in chunks:
            # A chunk either contains the sentence whole or does not touch it.
            assert (c.start <= s_start and s_end <= c.end) or c.end <= s_start or s_end <= c.start


def test_short_paragraphs_are_packed_together() -> None:
    text = "First paragraph.\n\nSecond paragraph.\n\nThird paragraph."
    chunks = chunks_of(text)
    assert [c.text for c in chunks] == [text]


def test_empty_article_has_no_chunks() -> None:
    assert chunks_of("") == []
    assert chunks_of("  \n\n  ") == []


def test_a_sentence_longer_than_chunk_chars_is_cut_at_whitespace() -> None:
    text = " ".join(f"word{i:03d}" for i in range(100)) + "."
    chunks = chunks_of(text)
    assert len(chunks) > 1
    tokens = text.split()
    for c in chunks:
        assert len(c.text) <= CHUNK_CHARS
        # Every piece starts and ends on a whole token.
        assert c.text.split()[0] in tokens and c.text.split()[-1] in tokens
        assert text[c.start - 1].isspace() if c.start else True
        assert c.end == len(text) or text[c.end].isspace()
    assert " ".join(c.text for c in chunks) == text


def test_pieces_of_a_long_sentence_with_double_spaces_are_stripped() -> None:
    text = "  ".join(["alpha"] * 60) + "."  # 60 words, two spaces between each
    chunks = chunks_of(text)
    assert len(chunks) > 1
    assert [c.text for c in chunks] == [c.text.strip() for c in chunks]


def test_an_unbroken_run_longer_than_chunk_chars_is_cut_hard() -> None:
    text = "x" * 450
    chunks = chunks_of(text)
    assert [len(c.text) for c in chunks] == [200, 200, 50]
    assert "".join(c.text for c in chunks) == text


def sentences_of(chunk: Chunk, text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text, chunk.start, chunk.end)]


def long_paragraph(n: int, tag: str = "P") -> str:
    return " ".join(
        f"{tag} sentence number {i} talks about the European tech plan." for i in range(n)
    )


def test_overlap_repeats_the_last_sentence_inside_a_paragraph() -> None:
    text = long_paragraph(10)
    chunks = chunks_of(text, overlap=1)
    assert len(chunks) > 2
    for before, after in pairwise(chunks):
        assert sentences_of(after, text)[0] == sentences_of(before, text)[-1]
        assert after.start < before.end


def test_no_overlap_when_overlap_sentences_is_zero() -> None:
    text = long_paragraph(10)
    chunks = chunks_of(text, overlap=0)
    for before, after in pairwise(chunks):
        assert before.end < after.start
    assert " ".join(c.text for c in chunks) == text


def test_overlap_is_not_carried_across_a_paragraph_break() -> None:
    first = long_paragraph(3, "A")  # ~170 chars: fills a chunk on its own
    second = long_paragraph(3, "B")
    text = f"{first}\n\n{second}"
    chunks = chunks_of(text, overlap=1)
    assert [c.text for c in chunks] == [first, second]


@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_overlap_never_repeats_text_from_a_previous_paragraph(overlap: int) -> None:
    """With any overlap, the repeated text between two chunks stays inside one paragraph."""
    first = (
        "Alpha sentence one of the first paragraph is here now. "
        "Bravo sentence two ends the first paragraph here."
    )
    second = (
        "Charlie opens the second paragraph. "
        "Delta is a much longer sentence that pushes the chunk past its limit of characters."
    )
    text = f"{first}\n\n{second}"
    chunks = chunks_of(text, overlap=overlap)
    for before, after in pairwise(chunks):
        repeated = text[after.start : before.end] if after.start < before.end else ""
        assert "\n\n" not in repeated, (overlap, repeated)


@pytest.mark.parametrize("seed", range(20))
def test_overlap_regions_lie_inside_one_paragraph_in_random_texts(seed: int) -> None:
    text = random_text(seed)
    paragraphs = paragraph_spans(text)
    chunks = chunks_of(text, 300, overlap=1)
    for before, after in pairwise(chunks):
        if after.start < before.end:
            assert any(ps <= after.start and before.end <= pe for ps, pe in paragraphs)


@pytest.mark.parametrize(("text", "chunk_chars"), CASES[:10])
def test_chunk_ids_are_deterministic(text: str, chunk_chars: int) -> None:
    first = chunk_article(article(text), chunk_chars)
    second = chunk_article(article(text), chunk_chars)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert first == second


@pytest.mark.parametrize(("text", "chunk_chars"), CASES)
def test_chunk_ids_are_unique_within_an_article(text: str, chunk_chars: int) -> None:
    ids = [c.chunk_id for c in chunks_of(text, chunk_chars)]
    assert len(ids) == len(set(ids))


def test_chunk_ids_depend_on_the_article_id() -> None:
    one = chunk_article(article(INTRO, "one"), CHUNK_CHARS)
    two = chunk_article(article(INTRO, "two"), CHUNK_CHARS)
    assert [c.text for c in one] == [c.text for c in two]
    assert not {c.chunk_id for c in one} & {c.chunk_id for c in two}


def test_editing_one_paragraph_changes_only_the_ids_of_its_chunks() -> None:
    paragraphs = [long_paragraph(2, tag) for tag in "ABCDE"]  # one chunk each
    text = "\n\n".join(paragraphs)
    edited_paragraphs = list(paragraphs)
    edited_paragraphs[2] = paragraphs[2].replace("European", "Japanese")  # same length
    edited = "\n\n".join(edited_paragraphs)
    before = chunks_of(text)
    after = chunks_of(edited)
    assert [(c.start, c.end) for c in before] == [(c.start, c.end) for c in after]
    changed = [
        i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b.chunk_id != a.chunk_id
    ]
    containing = [i for i, c in enumerate(after) if "Japanese" in c.text]
    assert containing and changed == containing


def test_a_repeated_paragraph_gets_distinct_chunk_ids() -> None:
    quote = long_paragraph(3, "Q")  # a pull quote that fills a chunk on its own
    text = f"{quote}\n\n{quote}\n\n{quote}"
    chunks = chunks_of(text)
    repeats = [c for c in chunks if c.text == quote]
    assert len(repeats) == 3
    assert len({c.chunk_id for c in repeats}) == 3
    # ...and the ids are still deterministic.
    assert [c.chunk_id for c in chunks_of(text)] == [c.chunk_id for c in chunks]
