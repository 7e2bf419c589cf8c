"""Question analysis with spaCy: intents, answer types, entities, language."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.analyze import (
    QuestionAnalyzer,
    is_english,
    lexical_query,
    question_names,
    question_word,
    topic_of,
)

ANALYZER = QuestionAnalyzer()


@pytest.mark.parametrize(
    ("question", "intent", "topic"),
    [
        ("Who wrote this article?", "author", ""),
        ("Who is the author of the piece?", "author", ""),
        ("When was the article about the harbour wall published?", "published", "harbour wall"),
        ("Which outlet published the story about the Kabul attack?", "publisher", "Kabul attack"),
        ("What articles do you have about Trump?", "list", "Trump"),
        ("What articles do you have from the BBC?", "list", "BBC"),
        ("What is the latest article?", "latest", ""),
        ("What does the archive say about Trump?", "broad", "Trump"),
        ("What happened in Japan?", "broad", "Japan"),
        ("Summarise the article about the EU digital strategy", "summary", "EU digital strategy"),
        ("Compare how CNN and ABC covered the DeVos vote", "compare", "DeVos vote"),
        ("How many member states does the bloc have?", "fact", ""),
        ("Why is the EU hesitant to pass new digital laws?", "fact", ""),
        ("Which BBC articles cover Chuck Berry's death?", "list", "BBC Chuck Berry's death"),
        ("List the Al Jazeera pieces about Kim Jong-nam", "list", "Al Jazeera Kim Jong-nam"),
        ("What did the reports say?", "fact", ""),
        ("Who reported that a postman won damages?", "publisher", "postman won damages"),
        ("What's been written about Geert Wilders?", "broad", "Geert Wilders"),
        ("When did the BBC run its story on the DeVos vote?", "published", "BBC DeVos vote"),
        ("When did the marathon run?", "fact", ""),
        # The author of something in the text is a fact, not the article's byline.
        ("Who wrote the poem The Mask of Anarchy?", "fact", ""),
        ("Who wrote that a definition is hard to give?", "fact", ""),
        ("Who is the author of Walden?", "fact", ""),
        ("Who wrote it?", "author", ""),
        ("Who wrote the Reuters story about the DeVos vote?", "author", "Reuters DeVos vote"),
        # The date of something in the text is a fact, not the article's publication date.
        ("When did the second edition of the book come out?", "fact", ""),
        ("When was the study on sequenced genomes published?", "fact", ""),
        ("When was it published?", "published", ""),
        ("When did the piece come out?", "published", ""),
    ],
)
def test_intents_and_topics(question: str, intent: str, topic: str) -> None:
    analysis = ANALYZER.analyze(question)
    assert (analysis.intent, analysis.topic) == (intent, topic)


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("How much was bail set at for Lee Jae-yong?", ("bail",)),
        ("How many passengers were on the flight?", ("passeng",)),
        ("When will Kim Jong Nam's funeral be held?", ("funer",)),
        ("Where was the summit held?", ("summit",)),
        ("How many people died in the attack?", ()),  # too general to require
        ("What gift did Merkel bring Trump?", ()),  # answered by a kind of gift
        ("When was the Eiffel Tower built?", ()),  # a name: missing names are checked apart
    ],
)
def test_the_focus_is_the_noun_whose_figure_date_or_place_is_asked(
    question: str, focus: tuple[str, ...]
) -> None:
    assert ANALYZER.analyze(question).focus == focus


def test_a_comparison_names_both_outlets() -> None:
    assert ANALYZER.analyze("Compare how CNN and ABC covered the vote").outlets == ("CNN", "ABC")
    assert ANALYZER.analyze("How did CNN and ABC cover the vote?").outlets == ("CNN", "ABC")


def test_possessive_outlets_and_differ_are_comparisons_too() -> None:
    differ = ANALYZER.analyze("How did CNN's and ABC's obituaries of Chuck Berry differ?")
    assert (differ.intent, differ.outlets, differ.topic) == (
        "compare",
        ("CNN", "ABC"),
        "obituaries Chuck Berry",
    )
    reports = ANALYZER.analyze("Compare CNN's and ABC's reports on the Orly shooting")
    assert (reports.outlets, reports.topic) == (("CNN", "ABC"), "Orly shooting")


@pytest.mark.parametrize(
    ("question", "wh", "label"),
    [
        ("Who is the EU's foreign policy chief?", "who", "PERSON"),
        ("When did the Commission publish its strategy?", "when", "DATE"),
        ("On what date were the proposals published?", "when", "DATE"),
        ("How many member states does the bloc have?", "how_many", "CARDINAL"),
        ("How much money was set aside?", "how_many", "MONEY"),
        ("Where did the attack happen?", "where", "GPE"),
    ],
)
def test_question_words_give_the_answer_type(question: str, wh: str, label: str) -> None:
    analysis = ANALYZER.analyze(question)
    assert analysis.wh == wh and label in analysis.answer_types


@pytest.mark.parametrize(
    ("question", "wh"),
    [
        ("When will the vote be held?", "when"),
        ("When's the vote?", "when"),
        ("Since when has he been minister?", "when"),
        # A condition, not a time: no date is asked for.
        ("When can oxygen gas produce a toxic condition?", ""),
        ("When would a person be considered to be in contempt?", ""),
        ("When large groups refuse to pay taxes it can be considered?", ""),
        # A clause before the question: the main clause's question word counts.
        ("When violence is used, what is civil disobedience sometimes called?", "which"),
        ("When rich countries trade with poor countries, whose wages increase?", "who"),
        ("If the vote fails, how many seats does the party lose?", "how_many"),
        ("After the war ended, when did the troops leave?", "when"),
        ("When was the treaty signed, and by whom?", "when"),
    ],
)
def test_when_asks_for_a_time_only_as_a_question(question: str, wh: str) -> None:
    analysis = ANALYZER.analyze(question)
    assert question_word(question) == analysis.wh == wh
    assert ("DATE" in analysis.answer_types) == (wh == "when")


def test_what_did_someone_say_asks_for_a_statement_not_a_person() -> None:
    analysis = ANALYZER.analyze("Who is Elizabeth Warren quoted saying about DeVos?")
    assert analysis.wh == "say" and not analysis.answer_types
    assert ("Elizabeth Warren", "PERSON") in [(e.text, e.label) for e in analysis.entities]


def test_nationality_adjectives_stand_for_their_places() -> None:
    analysis = ANALYZER.analyze("Which Asian partners does Brussels want?")
    assert {"Japan", "India", "South Korea"} <= set(analysis.place_aliases)
    assert "US" in ANALYZER.analyze("What did the American president say?").place_aliases


@pytest.mark.parametrize(
    ("question", "refers_back"),
    [
        ("What did she say?", True),
        ("and in Japan?", True),
        ("Why?", True),
        ("Who wrote this article?", True),
        ("Why is the EU hesitant to pass new digital laws?", False),
        ("Which countries does Brussels want to work with?", False),
        ("What articles do you have about Trump?", False),
    ],
)
def test_what_leans_on_the_conversation(question: str, refers_back: bool) -> None:
    assert ANALYZER.analyze(question).refers_back is refers_back


@pytest.mark.parametrize(
    "question",
    [
        "Quand la stratégie a-t-elle été publiée ?",
        "Wann wurde die Strategie veröffentlicht?",
        "¿Cuándo se publicó la estrategia?",
        "Когда была опубликована стратегия?",
    ],
)
def test_questions_in_other_languages_are_recognised(question: str) -> None:
    assert not is_english(question)
    assert not ANALYZER.analyze(question).english


@pytest.mark.parametrize(
    "question", ["What did Le Pen say?", "Who is Kaja Kallas?", "Why?", "La Paz?"]
)
def test_english_questions_with_foreign_names_are_english(question: str) -> None:
    assert is_english(question)


def test_entity_labels_of_sentences() -> None:
    dated, counted = ANALYZER.entity_labels(
        ["The proposals were published on June 5, 2025.", "The bloc has 27 member states."]
    )
    assert "DATE" in dated and "CARDINAL" in counted


def test_labels_of_several_articles_stored_at_once_are_those_stored_one_by_one(
    tmp_path: Path,
) -> None:
    from rag.analyze import LABEL_MODEL
    from rag.vectors import VectorFile, text_key

    shared = "Kaja Kallas spoke in Tallinn on Monday."
    articles = [
        ("a1", ["The proposals were published on June 5, 2025.", shared]),
        ("a2", [shared, "The bloc has 27 member states.", "It rained."]),
    ]
    one, together = VectorFile(tmp_path / "one.sqlite"), VectorFile(tmp_path / "together.sqlite")
    for article in articles:
        ANALYZER.store_labels(one, [article])
    ANALYZER.store_labels(together, articles)
    keys = [text_key(LABEL_MODEL, s) for _, sentences in articles for s in sentences]
    assert together.get_labels(keys) == one.get_labels(keys)
    assert together.get_labels([text_key(LABEL_MODEL, shared)]) == {
        text_key(LABEL_MODEL, shared): frozenset({"PERSON", "GPE", "DATE"})
    }
    for file in (one, together):
        file.forget(["a1"])  # the shared sentence went with the first article that had it
    assert together.get_labels(keys) == one.get_labels(keys)
    assert len(together.get_labels(keys)) == 2


def test_question_word_and_topic_helpers() -> None:
    assert question_word("Since when has it been law?") == "when"
    assert topic_of("Tell me about the harbour flood wall") == "harbour flood wall"


@pytest.mark.parametrize(
    ("question", "wh"),
    [
        ("Which judge in Hawaii blocked the travel ban?", "who"),
        ("What French minister spoke first?", "who"),
        ("Which Asian countries does Brussels want closer ties with?", "where"),
        ("Which city hosts the summit?", "where"),
        ("Which state court ruled?", "which"),
        ("What other crisis has held back Europe?", "which"),
    ],
)
def test_which_with_a_role_asks_who_and_with_a_place_asks_where(question: str, wh: str) -> None:
    assert QuestionAnalyzer().analyze(question).wh == wh


def test_how_long_is_answered_by_a_duration_as_well_as_a_figure() -> None:
    types = ANALYZER.analyze("How long will the train drivers strike last?").answer_types
    assert {"DATE", "TIME"} <= types and "CARDINAL" in types
    assert "DATE" not in ANALYZER.analyze("How many drivers went on strike?").answer_types


def test_the_lexical_query_adds_a_nationalitys_country_and_a_verbs_other_forms() -> None:
    query = "How much did the Dutch economy grow in 2016?"
    assert lexical_query(query) == f"{query} Netherlands grew grown"
    # Regional adjectives stand for many places: none is added.
    assert lexical_query("Which Asian partners?") == "Which Asian partners?"


def test_the_lexical_query_drops_the_words_that_only_frame_the_question() -> None:
    assert "characterise" not in lexical_query("How does the author characterise geopolitics?")
    assert lexical_query("Summarise the piece") == "Summarise the piece"  # nothing else to find


def test_a_name_ends_with_its_sentence_but_not_with_an_abbreviation() -> None:
    asked = "He hid people in Nazi Germany. Citizens had been doing what?"
    assert question_names(asked) == ["Nazi Germany", "Citizens"]
    assert question_names("What did the U.S. and Mr. Smith say?") == ["U.S", "Mr Smith"]
