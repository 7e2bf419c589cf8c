"""Answers about an article itself: who wrote it, when it was published, which outlet ran it.

The article is the one retrieval ranked first for the question (with follow-ups, for the
conversation: "Who wrote this article?"). The answer is built from that article's stored
record (title, author, date, publisher), never from its text, and cites the article with a
``metadata`` citation whose quote is its headline. When the record lacks the field asked for,
the answer says so instead of guessing. This module does not retrieve.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from rag.answer import AnswerRequest, Draft, refusal
from rag.cite import Evidence, citation_for
from rag.schema import Citation, Passage


def human_date(iso_date: str) -> str:
    """``2025-06-05`` -> ``5 June 2025``; other text is returned unchanged."""
    try:
        day = dt.date.fromisoformat(iso_date)
    except ValueError:
        return iso_date
    return f"{day.day} {day:%B %Y}"


def byline(passage: Passage) -> str:
    """``Publisher, 5 June 2025`` (whichever of the two the article has)."""
    parts = [passage.publisher, human_date(passage.date) if passage.date else ""]
    return ", ".join(p for p in parts if p)


def metadata_citation(n: int, passage: Passage) -> Citation:
    """A citation of the article record itself; its quote is the headline."""
    quote = passage.title or passage.article_id
    return replace(citation_for(n, Evidence(passage, quote, passage.score)), kind="metadata")


def describe_article(request: AnswerRequest, articles: int = 1) -> Draft:
    """The answer to an author, publication-date or outlet question, about an archive of
    ``articles`` articles.

    "Who wrote this article?" names no article. Asked after other questions, it is about
    the one they found (follow-ups join it to them, ``rag.followup``); asked first, of an
    archive of one article, about that one; asked first of a larger archive, the answer asks
    which article is meant rather than describing whichever came first.
    """
    if not request.passages:
        return refusal()
    unnamed = not request.analysis.topic and request.search_query == request.question
    if unnamed and articles > 1:
        return refusal(
            f"Which article do you mean? The archive holds {articles:,} articles: name its"
            " headline or what it is about, as in “Who wrote the article about the EU's"
            " digital strategy?”."
        )
    passage = request.passages[0]
    title = f"“{passage.title}”" if passage.title else "The article"
    intent = request.analysis.intent
    where = f" ({byline(passage)})" if byline(passage) else ""
    if intent == "author":
        if not passage.author:
            return refusal(f"The archive's record of {title}{where} names no author.")
        sentence = f"{title} was written by {passage.author}{where}."
    elif intent == "published":
        if not passage.date:
            return refusal(f"The archive's record of {title} carries no publication date.")
        outlet = f" by {passage.publisher}" if passage.publisher else ""
        sentence = f"{title} was published{outlet} on {human_date(passage.date)} ({passage.date})."
    else:
        if not passage.publisher:
            return refusal(f"The archive's record of {title} names no outlet.")
        when = f" on {human_date(passage.date)}" if passage.date else ""
        sentence = f"{title} was published by {passage.publisher}{when}."
    return Draft(f"{sentence} [1]", False, (metadata_citation(1, passage),))
