"""Citations: numbering the sources of an answer and checking that they hold.

An answer cites with markers ``[n]``; each ``n`` is a ``Citation`` whose ``quote`` is verbatim
text of the retrieved passage it names. ``number_citations`` assigns the numbers in order of
first use; ``citation_problems`` checks the invariant (every marker resolves, every quote is in
its passage) and is used by tests, the eval harness and any answerer that did not build its
citations itself. This module does not choose what to cite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.schema import Answer, Citation, Passage

MARKER = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Evidence:
    """One answer sentence and where it comes from: ``quote`` is verbatim in ``passage``."""

    passage: Passage
    quote: str
    score: float


def number_citations(evidence: Sequence[Evidence]) -> tuple[str, tuple[Citation, ...]]:
    """The answer text (each quote followed by its marker) and the numbered citations.

    The same quote from the same article is cited once, whatever chunk it came through.
    """
    citations: list[Citation] = []
    numbers: dict[tuple[str, str], int] = {}
    sentences: list[str] = []
    for item in evidence:
        if item.quote not in item.passage.text:
            raise ValueError(f"quote is not in passage {item.passage.chunk_id}: {item.quote!r}")
        key = (item.passage.article_id, item.quote)
        if key not in numbers:
            numbers[key] = len(citations) + 1
            citations.append(citation_for(numbers[key], item))
        else:
            continue  # already said
        sentences.append(f"{item.quote} [{numbers[key]}]")
    return " ".join(sentences), tuple(citations)


def citation_for(n: int, item: Evidence) -> Citation:
    """Citation number ``n`` for ``item``: its quote, passage and article."""
    passage = item.passage
    return Citation(
        n=n,
        article_id=passage.article_id,
        title=passage.title,
        author=passage.author,
        date=passage.date,
        url=passage.url,
        quote=item.quote,
        chunk_id=passage.chunk_id,
        score=round(item.score, 4),
        publisher=passage.publisher,
    )


def citation_problems(answer: Answer) -> list[str]:
    """Every way ``answer`` breaks the citation invariant; empty when it holds."""
    problems: list[str] = []
    passages = {p.chunk_id: p for p in answer.passages}
    numbers = {c.n for c in answer.citations}
    for marker in MARKER.findall(answer.answer):
        if int(marker) not in numbers:
            problems.append(f"marker [{marker}] has no citation")
    for citation in answer.citations:
        passage = passages.get(citation.chunk_id)
        if passage is None:
            problems.append(f"citation [{citation.n}] names a passage that was not retrieved")
        elif citation.kind == "metadata":
            if citation.quote not in (passage.title, passage.article_id):
                problems.append(f"citation [{citation.n}] does not quote its article's headline")
        elif not citation.quote or citation.quote not in passage.text:
            problems.append(f"citation [{citation.n}] quote is not verbatim in its passage")
        elif passage.article_id != citation.article_id:
            problems.append(f"citation [{citation.n}] names the wrong article")
        if f"[{citation.n}]" not in answer.answer:
            problems.append(f"citation [{citation.n}] is never used in the answer")
    if answer.refused and answer.citations:
        problems.append("a refusal carries citations")
    if not answer.refused and not answer.citations:
        problems.append("an answer carries no citation")
    return problems
