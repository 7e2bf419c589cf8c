"""Follow-up resolution: what is searched for when a question leans on the conversation."""

from __future__ import annotations

import pytest

from rag.analyze import QuestionAnalyzer
from rag.followup import is_greeting, resolve_follow_up

ANALYZER = QuestionAnalyzer()


def resolve(question: str, *history: str) -> tuple[str, str]:
    resolution = resolve_follow_up(question, history, ANALYZER)
    return resolution.query, resolution.kind


def test_a_complete_question_is_never_merged_with_the_one_before() -> None:
    history = ("Which countries does Brussels want to reinforce relationships with?",)
    for question in (
        "Why is the EU hesitant to pass new digital laws?",
        "Why did the bloc spend five years on legislation?",
        "How many member states does the bloc have?",
    ):
        assert resolve(question, *history) == (question, "standalone")


def test_a_pronoun_is_replaced_by_the_person_asked_about_before() -> None:
    assert resolve("What did she say?", "Who is Kaja Kallas?") == (
        "What did Kaja Kallas say?",
        "substituted",
    )


def test_and_in_japan_reasks_the_previous_question_about_japan() -> None:
    assert resolve("and in Japan?", "What happened in Germany?") == (
        "What happened in Japan?",
        "swapped",
    )
    assert resolve("What about the BBC?", "What articles do you have from CNN?")[1] == "swapped"


def test_a_follow_up_noun_phrase_replaces_the_phrase_with_its_head_noun() -> None:
    assert resolve("And the Dutch economy?", "How much did Japan's economy grow in 2016?") == (
        "How much did the Dutch economy grow in 2016?",
        "swapped",
    )
    assert resolve("and the Senate vote?", "What was the House vote on the bill?") == (
        "What was the Senate vote on the bill?",
        "swapped",
    )


def test_a_follow_up_role_replaces_the_last_person_named() -> None:
    previous = "When was Trump due to meet Angela Merkel at the White House?"
    assert resolve("and the Japanese prime minister?", previous) == (
        "When was Trump due to meet the Japanese prime minister at the White House?",
        "swapped",
    )


def test_what_did_she_say_next_reasks_the_previous_question_as_next() -> None:
    query, kind = resolve("What did she say next?", "What did Kaja Kallas say?")
    assert (query, kind) == ("What did Kaja Kallas say?", "next")


def test_an_elliptical_question_is_joined_with_the_one_it_follows() -> None:
    assert resolve("Why?", "Why is the EU hesitant to pass new digital laws?") == (
        "Why is the EU hesitant to pass new digital laws? Why?",
        "joined",
    )


def test_chains_resolve_through_every_turn() -> None:
    query, _ = resolve("What did she say next?", "Who is Kaja Kallas?", "What did she say?")
    assert query == "What did Kaja Kallas say?"


def test_without_history_or_for_a_greeting_nothing_changes() -> None:
    assert resolve("What did she say?") == ("What did she say?", "standalone")
    assert resolve("Thanks!", "Who is Kaja Kallas?") == ("Thanks!", "standalone")
    resolution = resolve_follow_up("Thanks!", ["Who is Kaja Kallas?"], ANALYZER)
    assert not resolution.changed


@pytest.mark.parametrize("text", ["Hi", "hello there!", "Thanks a lot", "Good morning", "ok"])
def test_greetings_are_recognised(text: str) -> None:
    assert is_greeting(text)
