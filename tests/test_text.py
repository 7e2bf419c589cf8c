"""Tests for ``rag.text``: sentence and paragraph spans with offsets, and word normalisation."""

from __future__ import annotations

import random

import pytest

from rag.text import (
    STOPWORDS,
    content_terms,
    is_furniture,
    paragraph_spans,
    sentence_spans,
    stem,
    verb_forms,
    words,
)


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


def assert_well_formed_spans(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are non-empty, stripped, in order, non-overlapping and cover all non-space text."""
    previous_end = 0
    covered = [False] * len(text)
    for start, end in spans:
        assert 0 <= previous_end <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()
        for i in range(start, end):
            covered[i] = True
        previous_end = end
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


SAMPLE_TEXTS = [
    "The European Union has a message to the world: let’s work together on tech. It agreed.",
    "Mr. Smith went to Washington. Dr. Jones stayed home!\nA new line starts here",
    "“Europe has huge potential,,” said Kaja Kallas. “We are ready.”",
    "  Leading and trailing spaces.   Two spaces between.  ",
    "Growth was 3.5 percent in 2024. Is that enough? Nobody knows!",
    "First paragraph. Still first.\n\nSecond paragraph.\n\n\n  Third, after extra blank lines.",
    "",
    "No full stop at all",
]


@pytest.mark.parametrize("text", SAMPLE_TEXTS)
def test_sentence_spans_are_stripped_ordered_and_cover_all_text(text: str) -> None:
    assert_well_formed_spans(text, sentence_spans(text))


@pytest.mark.parametrize("text", SAMPLE_TEXTS)
def test_no_sentence_spans_a_line_break(text: str) -> None:
    assert all("\n" not in sentence for sentence in sentences(text))


def test_sentence_offsets_point_at_the_sentence_text() -> None:
    text = "  The bloc doubled down.  It wants partners. "
    spans = sentence_spans(text)
    assert spans == [(2, 24), (26, 44)]
    assert [text[s:e] for s, e in spans] == ["The bloc doubled down.", "It wants partners."]


def test_sentence_spans_of_a_slice_are_offsets_into_the_whole_text() -> None:
    text = "Ignored prefix. One here. Two here. Ignored suffix."
    start = text.index("One")
    end = text.index(" Ignored suffix")
    spans = sentence_spans(text, start, end)
    assert [text[s:e] for s, e in spans] == ["One here.", "Two here."]
    assert all(start <= s < e <= end for s, e in spans)


def test_plain_full_stops_split_sentences() -> None:
    assert sentences("The bloc met. It agreed. Then it left.") == [
        "The bloc met.",
        "It agreed.",
        "Then it left.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went home. He slept.", ["Mr. Smith went home.", "He slept."]),
        (
            "Talks with Dr. Jones ended. Nothing followed.",
            ["Talks with Dr. Jones ended.", "Nothing followed."],
        ),
        (
            "It hurt the U.S. economy badly. Markets fell.",
            ["It hurt the U.S. economy badly.", "Markets fell."],
        ),
        ("The U.S. Senate voted. It passed.", ["The U.S. Senate voted.", "It passed."]),
        (
            "Some rules, e.g. this one, stay. Others go.",
            ["Some rules, e.g. this one, stay.", "Others go."],
        ),
        ("Apply rules, i.e. Article 5. Then wait.", ["Apply rules, i.e. Article 5.", "Then wait."]),
    ],
)
def test_abbreviations_do_not_end_a_sentence(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_an_initial_does_not_end_a_sentence() -> None:
    assert sentences("J. Smith said so. Others disagreed.") == [
        "J. Smith said so.",
        "Others disagreed.",
    ]
    assert sentences("The report by Mark J. Scott came out. It was long.") == [
        "The report by Mark J. Scott came out.",
        "It was long.",
    ]


def test_curly_quoted_sentences_split_after_the_closing_quote() -> None:
    text = "“Europe has huge potential,,” said Kaja Kallas. “We are ready.”"
    assert sentences(text) == ["“Europe has huge potential,,” said Kaja Kallas.", "“We are ready.”"]


def test_a_closing_quote_after_the_full_stop_stays_with_its_sentence() -> None:
    assert sentences("“We are ready.” She left the room.") == [
        "“We are ready.”",
        "She left the room.",
    ]


def test_question_and_exclamation_marks_end_sentences() -> None:
    assert sentences("Is it enough? No! Not yet.") == ["Is it enough?", "No!", "Not yet."]


def test_a_question_mark_followed_by_lower_case_does_not_split() -> None:
    assert sentences("“Why?” she asked. Nobody answered.") == [
        "“Why?” she asked.",
        "Nobody answered.",
    ]


def test_line_breaks_always_end_a_sentence() -> None:
    text = "Home\nDonate\nPerspective without a stop\nMark Scott / Jun 5, 2025"
    assert sentences(text) == [
        "Home",
        "Donate",
        "Perspective without a stop",
        "Mark Scott / Jun 5, 2025",
    ]


def test_a_line_break_ends_a_sentence_even_after_an_abbreviation() -> None:
    assert sentences("He met Mr.\nSmith later.") == ["He met Mr.", "Smith later."]


@pytest.mark.parametrize(
    "text",
    [
        "The economy grew 3.5 percent last year.",
        "Prices rose by 0.25 points, or 1.5%, in May.",
        "Version 2.0.1 shipped on time.",
    ],
)
def test_decimal_numbers_do_not_split(text: str) -> None:
    assert sentences(text) == [text]


def test_a_sentence_may_start_with_a_number() -> None:
    assert sentences("It fell. 27 countries agreed.") == ["It fell.", "27 countries agreed."]


def test_ellipsis_ends_a_sentence_before_a_capital() -> None:
    assert sentences("We waited... Nothing came.") == ["We waited...", "Nothing came."]


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \t\n "])
def test_empty_or_blank_text_has_no_sentences(text: str) -> None:
    assert sentence_spans(text) == []
    assert paragraph_spans(text) == []


def test_text_without_a_full_stop_is_one_sentence() -> None:
    assert sentences("Why Europe Should Double Down On Its Global Tech Ties") == [
        "Why Europe Should Double Down On Its Global Tech Ties"
    ]


_WORDS = "the bloc said Europe data rules Mr. U.S. e.g. J. 3.5 percent “quoted” ready tech".split()


@pytest.mark.parametrize("seed", range(20))
def test_random_texts_give_well_formed_sentence_spans(seed: int) -> None:
    rng = random.Random(seed)
    parts: list[str] = []
    for _ in range(rng.randint(0, 40)):
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 12)))
        parts.append(sentence.capitalize() + rng.choice([".", "!", "?", "", ".”"]))
        parts.append(rng.choice([" ", "  ", "\n", "\n\n", " \n \n "]))
    text = "".join(parts)
    spans = sentence_spans(text)
    assert_well_formed_spans(text, spans)
    assert all("\n" not in text[s:e] for s, e in spans)


def test_paragraph_spans_split_on_blank_lines_and_are_stripped() -> None:
    text = "  First para.\nSame para.  \n\nSecond.\n \n\n   Third.  "
    spans = paragraph_spans(text)
    assert [text[s:e] for s, e in spans] == ["First para.\nSame para.", "Second.", "Third."]
    assert_well_formed_spans(text, spans)


def test_a_single_line_break_does_not_split_a_paragraph() -> None:
    assert paragraph_spans("one\ntwo") == [(0, 7)]


def test_every_sentence_lies_inside_one_paragraph() -> None:
    text = SAMPLE_TEXTS[5]
    paragraphs = paragraph_spans(text)
    for s, e in sentence_spans(text):
        assert sum(ps <= s and e <= pe for ps, pe in paragraphs) == 1


def test_words_are_lower_cased_with_numbers_and_hyphenated_words_kept_whole() -> None:
    assert words("Europe’s well-known AI, 3.5% and 1,000.") == [
        "europe's",
        "well-known",
        "ai",
        "3.5%",
        "and",
        "1,000",
    ]


def test_content_terms_drop_stopwords_and_stem() -> None:
    terms = content_terms("The companies are running quickly, said the officials")
    assert terms == ["compani", "run", "quick", "offici"]


def test_content_terms_match_inflected_forms() -> None:
    assert content_terms("partnerships") == content_terms("partnership")
    assert content_terms("regulating") == content_terms("regulates")


def test_content_terms_keep_numbers_but_drop_single_letters() -> None:
    assert content_terms("a I x 5 2025 3.5%") == ["5", "2025", "3.5%"]


def test_content_terms_never_contain_a_stopword() -> None:
    text = "What did the author say about the strategy that they would have announced?"
    terms = content_terms(text)
    assert terms == ["strategi", "announc"]
    assert not set(terms) & {stem(w) for w in STOPWORDS}


def test_content_terms_of_only_stopwords_is_empty() -> None:
    assert content_terms("What is it that they said about the") == []
    assert content_terms("") == []


def test_furniture_glued_into_a_paragraph_is_a_sentence_of_its_own() -> None:
    # Scraped news pages glue a share bar or a player notice into the text, mid-line; the
    # words after it must start a sentence that can be quoted without it.
    text = (
        "Police questioned him. Send Facebook Twitter Google+ Whatsapp Tumblr linkedin stumble"
        " Digg reddit Newsvine Permalink http://dw.com/p/2Wx5C The man had flown from Dubai."
        " Share this with Media playback is not supported on this device Cook says it is fine."
    )
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert [s for s in sentences if not is_furniture(s)] == [
        "Police questioned him.",
        "The man had flown from Dubai.",
        "Cook says it is fine.",
    ]
    assert len(sentences) == 5


def test_a_title_glued_to_the_closing_quote_before_it_does_not_end_a_sentence() -> None:
    # Scraped text often loses the space (or the curly quote) between a quote and its
    # attribution: the quote must stay with the name it is attributed to.
    text = '"It is hard to imagine a worse choice,"?Sen. Elizabeth Warren said. She left.'
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        '"It is hard to imagine a worse choice,"?Sen. Elizabeth Warren said.',
        "She left.",
    ]


@pytest.mark.parametrize(
    ("word", "forms"),
    [("grew", ("grow", "grown")), ("growing", ("grew", "grown")), ("Rose", ("rise", "risen"))],
)
def test_an_irregular_verb_has_its_other_forms(word: str, forms: tuple[str, ...]) -> None:
    assert verb_forms(word) == forms


@pytest.mark.parametrize("word", ["economy", "founded", "left", "born", "said"])
def test_other_words_and_ambiguous_forms_have_none(word: str) -> None:
    assert verb_forms(word) == ()
