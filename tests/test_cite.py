"""Tests for ``rag.cite``: numbering citations and checking the citation invariant."""

from __future__ import annotations

import dataclasses

import pytest

from rag.cite import MARKER, Evidence, citation_problems, number_citations
from rag.schema import Answer, Citation, Passage

PROPOSALS = (
    "In proposals published on June 5, the executive branch of the 27-country bloc doubled down "
    "on international partnerships. The announcement is dubbed the International Digital Strategy."
)
KALLAS = "“Europe has huge potential,,” said Kaja Kallas. “We are ready.”"
TIES = "Brussels wants to reinforce existing relationships with India, South Korea and Japan."


def passage(chunk_id: str, text: str, article_id: str = "art-1", score: float = 0.8) -> Passage:
    return Passage(
        chunk_id=chunk_id,
        article_id=article_id,
        text=text,
        title=f"Title of {article_id}",
        author="Mark Scott",
        date="2025-06-05",
        publisher="Tech Policy Press",
        url=f"https://example.org/{article_id}",
        start=0,
        end=len(text),
        score=score,
    )


P1 = passage("c1", PROPOSALS)
P2 = passage("c2", KALLAS)
P3 = passage("c3", TIES, article_id="art-2")
Q1 = PROPOSALS[: PROPOSALS.index(" The announcement")]
Q2 = "“We are ready.”"
Q3 = TIES


def answer(
    text: str,
    citations: tuple[Citation, ...],
    passages: tuple[Passage, ...] = (P1, P2, P3),
    refused: bool = False,
) -> Answer:
    return Answer(
        question="What did the EU propose?",
        answer=text,
        refused=refused,
        citations=citations,
        passages=passages,
        timings_ms={"total": 1.0},
    )


def well_formed() -> Answer:
    text, citations = number_citations(
        [Evidence(P1, Q1, 0.9), Evidence(P2, Q2, 0.7), Evidence(P3, Q3, 0.5)]
    )
    return answer(text, citations)


def test_number_citations_numbers_in_order_of_first_use() -> None:
    text, citations = number_citations(
        [Evidence(P2, Q2, 0.5), Evidence(P1, Q1, 0.9), Evidence(P3, Q3, 0.1)]
    )
    assert [c.n for c in citations] == [1, 2, 3]
    assert [c.quote for c in citations] == [Q2, Q1, Q3]
    assert [int(n) for n in MARKER.findall(text)] == [1, 2, 3]


def test_number_citations_puts_the_marker_after_each_quote() -> None:
    text, _ = number_citations([Evidence(P1, Q1, 0.9), Evidence(P2, Q2, 0.7)])
    assert text == f"{Q1} [1] {Q2} [2]"


def test_citations_carry_the_passage_metadata_and_a_rounded_score() -> None:
    _, (citation,) = number_citations([Evidence(P3, Q3, 0.123456789)])
    assert citation == Citation(
        n=1,
        article_id="art-2",
        title="Title of art-2",
        author="Mark Scott",
        date="2025-06-05",
        url="https://example.org/art-2",
        quote=Q3,
        chunk_id="c3",
        score=0.1235,
        publisher=P3.publisher,
    )


def test_the_same_quote_from_the_same_article_is_cited_once() -> None:
    overlapping = passage("c1-overlap", PROPOSALS + " More text follows.")
    text, citations = number_citations(
        [Evidence(P1, Q1, 0.9), Evidence(P2, Q2, 0.7), Evidence(overlapping, Q1, 0.6)]
    )
    assert [c.quote for c in citations] == [Q1, Q2]
    assert citations[0].chunk_id == "c1"  # the first chunk it came through
    assert text == f"{Q1} [1] {Q2} [2]"
    assert text.count(Q1) == 1


def test_the_same_quote_from_two_articles_is_cited_twice() -> None:
    other = passage("c9", TIES, article_id="art-9")
    text, citations = number_citations([Evidence(P3, Q3, 0.5), Evidence(other, Q3, 0.4)])
    assert [(c.n, c.article_id) for c in citations] == [(1, "art-2"), (2, "art-9")]
    assert text == f"{Q3} [1] {Q3} [2]"


def test_number_citations_rejects_a_quote_not_in_its_passage() -> None:
    with pytest.raises(ValueError, match="c2"):
        number_citations([Evidence(P1, Q1, 0.9), Evidence(P2, "We are not ready.", 0.7)])


def test_number_citations_of_no_evidence_is_empty() -> None:
    assert number_citations([]) == ("", ())


def test_numbered_citations_have_no_problems() -> None:
    assert citation_problems(well_formed()) == []


def test_a_refusal_without_citations_has_no_problems() -> None:
    refusal = answer("The articles do not say.", (), refused=True)
    assert citation_problems(refusal) == []


def test_a_marker_without_citation_is_reported() -> None:
    good = well_formed()
    bad = dataclasses.replace(good, answer=good.answer + " And more [4].")
    assert citation_problems(bad) == ["marker [4] has no citation"]


def test_a_quote_that_is_not_verbatim_is_reported() -> None:
    good = well_formed()
    altered = dataclasses.replace(good.citations[1], quote="“We are so ready.”")
    bad = dataclasses.replace(good, citations=(good.citations[0], altered, good.citations[2]))
    assert citation_problems(bad) == ["citation [2] quote is not verbatim in its passage"]


def test_an_empty_quote_is_reported() -> None:
    good = well_formed()
    empty = dataclasses.replace(good.citations[0], quote="")
    bad = dataclasses.replace(good, citations=(empty, *good.citations[1:]))
    assert citation_problems(bad) == ["citation [1] quote is not verbatim in its passage"]


def test_a_citation_to_a_passage_not_retrieved_is_reported() -> None:
    good = well_formed()
    bad = dataclasses.replace(good, passages=(P1, P2))
    assert citation_problems(bad) == ["citation [3] names a passage that was not retrieved"]


def test_a_citation_naming_the_wrong_article_is_reported() -> None:
    good = well_formed()
    wrong = dataclasses.replace(good.citations[0], article_id="art-2")
    bad = dataclasses.replace(good, citations=(wrong, *good.citations[1:]))
    assert citation_problems(bad) == ["citation [1] names the wrong article"]


def test_an_unused_citation_is_reported() -> None:
    good = well_formed()
    bad = dataclasses.replace(good, answer=good.answer.replace(" [2]", ""))
    assert citation_problems(bad) == ["citation [2] is never used in the answer"]


def test_citation_1_is_not_used_by_marker_11() -> None:
    good = well_formed()
    one = good.citations[0]
    eleven = dataclasses.replace(one, n=11)
    bad = dataclasses.replace(good, answer=f"{Q1} [11]", citations=(one, eleven))
    assert citation_problems(bad) == ["citation [1] is never used in the answer"]


def test_a_refusal_with_citations_is_reported() -> None:
    good = well_formed()
    bad = dataclasses.replace(good, refused=True)
    assert citation_problems(bad) == ["a refusal carries citations"]


def test_an_answer_without_citations_is_reported() -> None:
    bad = answer("The bloc doubled down on partnerships.", ())
    assert citation_problems(bad) == ["an answer carries no citation"]


def test_every_problem_of_a_thoroughly_broken_answer_is_reported() -> None:
    good = well_formed()
    altered = dataclasses.replace(good.citations[0], quote="made up")
    bad = dataclasses.replace(
        good,
        answer="Made up [1] and [7].",
        citations=(altered, good.citations[1]),
        passages=(P1,),
        refused=True,
    )
    assert sorted(citation_problems(bad)) == sorted(
        [
            "marker [7] has no citation",
            "citation [1] quote is not verbatim in its passage",
            "citation [2] names a passage that was not retrieved",
            "citation [2] is never used in the answer",
            "a refusal carries citations",
        ]
    )


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2), (2, 0, 1)])
def test_number_citations_output_always_passes_the_check(order: tuple[int, ...]) -> None:
    items = [Evidence(P1, Q1, 0.9), Evidence(P2, Q2, 0.7), Evidence(P3, Q3, 0.5)]
    evidence = [items[i] for i in order] + [items[order[0]]]  # and a repeat
    text, citations = number_citations(evidence)
    assert len(citations) == 3
    assert citation_problems(answer(text, citations)) == []
    for citation in citations:
        assert text.index(citation.quote) < text.index(f"[{citation.n}]")
