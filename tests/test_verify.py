"""The verifier: every generated sentence must cite a given passage and be supported by it."""

from __future__ import annotations

import pytest

from rag.cite import MARKER, citation_problems
from rag.schema import Answer, Passage
from rag.verify import (
    MIN_OVERLAP,
    best_quote,
    says_it_does_not_know,
    split_sentences,
    verify_answer,
)

TITLE = "Why Europe Should Double Down On Its Global Tech Ties"
PROPOSALS = (
    "In proposals published on June 5, the executive branch of the 27-country bloc doubled down"
    " on international partnerships. The European Union has a message to the world."
)
PARTNERS = (
    "In its globe-spanning commitments, Brussels wants to reinforce existing relationships with"
    " the likes of India, South Korea and Japan. As part of the proposals announced on June 5,"
    " Brussels said it would expand its support for digital infrastructure and regulation across"
    " Latin America, Asia and Africa."
)
KALLAS = (
    "“Europe has huge potential to expand its geopolitical reach on digital issues,” said Kaja"
    " Kallas, the High Representative of the European Union for Foreign Affairs and Security"
    " Policy. Officials spent 1,200 hours and 12 percent of the budget on the talks."
)


def passage(text: str, chunk_id: str, article_id: str = "eu", date: str = "2025-06-05") -> Passage:
    return Passage(
        chunk_id=chunk_id,
        article_id=article_id,
        text=text,
        title=TITLE,
        author="Mark Scott",
        date=date,
        publisher="Tech Policy Press",
        url="https://example.org/eu",
        start=0,
        end=len(text),
        score=0.5,
    )


PASSAGES = (passage(PROPOSALS, "c1"), passage(PARTNERS, "c2"), passage(KALLAS, "c3"))


def as_answer(text: str, citations: tuple[object, ...]) -> Answer:
    return Answer("q", text, False, citations, PASSAGES, {})  # type: ignore[arg-type]


def test_a_faithful_cited_answer_is_kept_and_its_quotes_are_verbatim() -> None:
    result = verify_answer(
        "Brussels wants to reinforce relationships with India, South Korea and Japan [2].",
        PASSAGES,
    )
    assert result.usable and not result.removed and not result.declined
    assert result.text == (
        "Brussels wants to reinforce relationships with India, South Korea and Japan. [1]"
    )
    (citation,) = result.citations
    assert (citation.n, citation.chunk_id, citation.article_id) == (1, "c2", "eu")
    assert citation.quote.startswith("In its globe-spanning commitments")
    assert citation.quote in PARTNERS
    assert citation_problems(as_answer(result.text, result.citations)) == []


def test_an_invented_figure_is_removed_with_its_reason() -> None:
    result = verify_answer(
        "Brussels will support Latin America, Asia and Africa [2]."
        " The EU set aside EUR 1.5 billion for Africa [2].",
        PASSAGES,
    )
    assert result.kept == 1 and "1.5" not in result.text and "billion" not in result.text
    (removed,) = result.removed
    assert removed.sentence == "The EU set aside EUR 1.5 billion for Africa."
    assert "1.5" in removed.reason


def test_a_marker_to_a_passage_that_was_not_given_is_never_shown() -> None:
    result = verify_answer(
        "Brussels wants to reinforce relationships with India and Japan [2][9].", PASSAGES
    )
    assert result.kept == 1 and result.dropped_markers == (9,)
    assert MARKER.findall(result.text) == ["1"] and "[9]" not in result.text
    only_bad = verify_answer("Brussels wants ties with India [9].", PASSAGES)
    assert only_bad.kept == 0 and not only_bad.usable
    assert "[9]" in only_bad.removed[0].reason and "not given" in only_bad.removed[0].reason


def test_markers_are_renumbered_in_order_of_first_use() -> None:
    result = verify_answer(
        "Kaja Kallas said Europe has huge potential to expand its geopolitical reach [3]."
        " Brussels wants to reinforce relationships with India, South Korea and Japan [2]."
        " Kallas is the High Representative of the European Union [3].",
        PASSAGES,
    )
    assert result.kept == 3
    assert MARKER.findall(result.text) == ["1", "2", "1"]
    assert [(c.n, c.chunk_id) for c in result.citations] == [(1, "c3"), (2, "c2")]
    assert citation_problems(as_answer(result.text, result.citations)) == []


def test_a_sentence_without_a_marker_is_removed() -> None:
    result = verify_answer(
        "Brussels wants to reinforce relationships with India [2]. Europe is doing well.",
        PASSAGES,
    )
    assert result.kept == 1
    assert [(r.sentence, r.reason) for r in result.removed] == [
        ("Europe is doing well.", "cites no passage")
    ]


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    assert split_sentences("It said so. [1] It also said this [2].") == [
        "It said so. [1]",
        "It also said this [2].",
    ]
    result = verify_answer(
        "Brussels wants to reinforce relationships with India. [2] It backs Africa [9].",
        PASSAGES,
    )
    assert result.kept == 1 and result.text.endswith("[1]")
    assert "not given" in result.removed[0].reason


@pytest.mark.parametrize(
    ("sentence", "in_reason"),
    [
        ("The proposals were published on June 5, 2021 [1].", "2021"),  # wrong year
        ("The proposals were published on July 5 [1].", "July"),  # wrong month
        ("The proposals were published on a Monday [1].", "monday"),
        ("The bloc has three hundred partnerships [1].", "three"),
        ("Prime Minister Kallas said Europe has huge potential [3].", "Prime"),
        ("The proposals came from the OECD and its partners [1].", "OECD"),
        ("The bloc doubled down on international partnerships with 40 million euros [1].", "40"),
        ("Officials spent 1,200 hours and 15 percent of the budget on the talks [3].", "15"),
        (
            "The proposals doubled taxes, banned cars and closed every airport in Spain [1].",
            "Spain",
        ),
        ("Taxes were doubled, cars were banned and every airport was closed [1].", "too little"),
    ],
)
def test_unsupported_numbers_dates_names_and_claims_are_removed(
    sentence: str, in_reason: str
) -> None:
    result = verify_answer(sentence, PASSAGES)
    assert result.kept == 0 and len(result.removed) == 1
    assert in_reason in result.removed[0].reason


@pytest.mark.parametrize(
    "sentence",
    [
        "The proposals were published on June 5, 2025 [1].",  # the year is the article's date
        "The proposals were published on 5 June [1].",
        "The 27-country bloc doubled down on international partnerships [1].",
        "The EU has a message to the world [1].",  # acronym of "European Union"
        "Officials spent 1200 hours and 12% of the budget on the talks [3].",
        "Kaja Kallas said “Europe has huge potential” on digital issues [3].",
        "Brussels wants to reinforce relationships with Japanese and Indian partners [2].",
        "According to the passage, Brussels wants to reinforce relationships with Japan [2].",
        "- Brussels wants to reinforce relationships with India [2]",
    ],
)
def test_supported_paraphrases_are_kept(sentence: str) -> None:
    result = verify_answer(sentence, PASSAGES)
    assert result.kept == 1, result.removed


def test_support_is_judged_against_the_cited_passage_only() -> None:
    # True of passage 2, but it cites passage 1.
    result = verify_answer("Brussels wants to reinforce relationships with India [1].", PASSAGES)
    assert result.kept == 0 and "India" in result.removed[0].reason


@pytest.mark.parametrize(
    "reply",
    [
        "I don't know.",
        "I do not know based on these passages.",
        "The passages do not say how much money was allocated.",
        "This information is not in the articles.",
        "I cannot answer this question from the provided passages.",
        "There is no information about this in the context.",
    ],
)
def test_saying_it_does_not_know_is_a_refusal(reply: str) -> None:
    assert says_it_does_not_know(reply)
    result = verify_answer(reply, PASSAGES)
    assert result.declined and result.kept == 0 and not result.removed


def test_a_refusal_with_an_invented_claim_is_still_a_refusal_and_reports_the_claim() -> None:
    result = verify_answer("I don't know. The EU gave EUR 1.5 billion to Africa [2].", PASSAGES)
    assert result.declined and len(result.removed) == 1


def test_ordinary_answers_are_not_mistaken_for_refusals() -> None:
    for text in (
        "Brussels wants to reinforce relationships with India [2].",
        "Kallas said Europe knows its potential [3].",
        "The proposals were published on June 5 [1].",
    ):
        assert not says_it_does_not_know(text)


def test_garbage_and_empty_replies_leave_nothing_usable() -> None:
    for reply in ("", "   ", "asdf qwer zxcv", "[1] [2]", "{'choices': []}"):
        result = verify_answer(reply, PASSAGES)
        assert result.kept == 0 and not result.usable and result.text == ""
        assert result.citations == ()


def test_too_little_surviving_is_not_usable() -> None:
    invented = " ".join(f"Officials spent {n} million euros on the talks [3]." for n in range(4, 8))
    kept = "Brussels wants to reinforce relationships with India [2]."
    result = verify_answer(f"{kept} {invented}", PASSAGES)
    assert result.kept == 1 and len(result.removed) == 4 and not result.usable
    assert verify_answer(f"{kept} {invented.split('. ')[0]}.", PASSAGES).usable


def test_repeated_sentences_are_said_once() -> None:
    sentence = "Brussels wants to reinforce relationships with India [2]."
    result = verify_answer(f"{sentence} {sentence}", PASSAGES)
    assert result.kept == 1 and result.text.count("India") == 1


def test_best_quote_is_the_passage_sentence_closest_to_the_answer() -> None:
    p = PASSAGES[1]
    assert best_quote(p, "support for Africa and Asia").startswith("As part of the proposals")
    assert best_quote(p, "relationships with Japan").startswith("In its globe-spanning")
    assert best_quote(passage("No full stop here", "c9"), "anything") == "No full stop here"


def test_the_overlap_threshold_is_a_parameter() -> None:
    sentence = "Brussels wants closer ties with Japan, Korea and many other democracies [2]."
    assert verify_answer(sentence, PASSAGES, min_overlap=0.0).kept == 1
    assert verify_answer(sentence, PASSAGES, min_overlap=1.0).kept == 0
    assert 0.0 < MIN_OVERLAP < 1.0
