"""The core (rag.assistant) with deterministic fakes through the real registries: how the
conversation shapes what is searched."""

from __future__ import annotations

from rag.assistant import Assistant
from rag.config import Settings
from rag.schema import Article

_HARBOUR = Article(
    "harbour",
    "Council publishes the harbour plan",
    "The Bristol council published the harbour plan on Monday, after two years of work.\n\n"
    "The writer thinks this approach is wrong because trade matters more than tourism.",
)
_TAX = Article(
    "tax",
    "Opinion: the council tax",
    "The author thinks the council tax is wrong, and says so every year.\n\n"
    "Bristol residents paid the council tax in April.",
)


def _assistant(settings: Settings) -> Assistant:
    assistant = Assistant.open(settings)
    assistant.add_articles([_HARBOUR, _TAX])
    return assistant


def test_a_follow_up_is_asked_first_of_the_article_the_previous_answer_quoted(
    settings: Settings,
) -> None:
    assistant = _assistant(settings)
    previous = assistant.ask("What did the council publish about the harbour?")
    assert {c.article_id for c in previous.citations} == {"harbour"}
    question = "Why does the author think it is wrong?"
    alone = assistant.ask(question)
    assert alone.citations[0].article_id == "tax"  # the archive's best match comes first
    follow_up = assistant.ask(question, ["What did the council publish about the harbour?"])
    assert not follow_up.refused
    assert {c.article_id for c in follow_up.citations} == {"harbour"}
    assert any("the previous answer quoted" in n for n in follow_up.notices)


def test_a_follow_up_its_article_does_not_answer_is_asked_of_the_whole_archive(
    settings: Settings,
) -> None:
    assistant = _assistant(settings)
    follow_up = assistant.ask(
        "When did its residents pay the council tax in April?",
        ["What did the Bristol council publish about the harbour?"],
    )
    assert not follow_up.refused
    assert {c.article_id for c in follow_up.citations} == {"tax"}
    assert not any("the previous answer quoted" in n for n in follow_up.notices)
