"""The extractive answerer over hand-built passages, with the deterministic overlap judge:
what it quotes (with context), what it refuses, and how it routes article-level and broad
questions to ``rag.describe`` and ``rag.digest``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rag.analyze import QuestionAnalyzer
from rag.answer import AnswererParts, AnswerRequest, Draft, create_answerer
from rag.catalog import Catalog
from rag.cite import citation_problems
from rag.config import Settings
from rag.digest import _central_sentences
from rag.extract import ExtractiveAnswerer, candidates, missing_names
from rag.schema import Answer, Passage
from rag.store import StoredChunk
from tests.conftest import HashEmbedder, OverlapJudge

ANALYZER = QuestionAnalyzer()

ARTICLES = {
    "eu": (
        "Why Europe Should Double Down On Its Global Tech Ties",
        "Mark Scott",
        "2025-06-05",
        "Tech Policy Press",
        [
            "In proposals published on June 5, the executive branch of the 27-country bloc"
            " doubled down on international partnerships. The announcement is dubbed the"
            " International Digital Strategy for the EU.",
            "Brussels wants to reinforce existing relationships with the likes of India, South"
            " Korea and Japan. That includes forking out billions of euros for digital"
            " infrastructure.",
            "“Europe has huge potential to expand its geopolitical reach on digital issues,”"
            " said Kaja Kallas, the High Representative. “We are ready to collaborate more"
            " closely with partners on shared digital challenges.”",
        ],
    ),
    "vote": (
        "Senate confirms DeVos as education secretary",
        "",
        "2017-02-07",
        "CNN",
        [
            "The Senate vote on Betsy DeVos was split evenly between the two parties. Vice"
            " President Mike Pence cast the tie-breaking vote, making the final tally 51-50.",
            "Senator Elizabeth Warren said: “She is the least qualified nominee in history.”",
        ],
    ),
    "kabul": (
        "Suicide bomber kills dozens near Kabul court",
        "",
        "2017-02-08",
        "Al Jazeera",
        ["A suicide bomber killed 20 people near the Supreme Court in Kabul on Tuesday."],
    ),
    "strike": (
        "Rail drivers strike over pay",
        "",
        "2017-01-09",
        "RTÉ",
        [
            "Train drivers across the country walked out on Monday in a dispute over pay. The"
            " union said the strike would last forty-eight hours."
        ],
    ),
}


Articles = dict[str, tuple[str, str, str, str, list[str]]]


def stored_chunks(articles: Articles = ARTICLES) -> list[StoredChunk]:
    chunks = []
    for article_id, (title, author, date, publisher, texts) in articles.items():
        offset = 0
        for index, text in enumerate(texts):
            meta = {
                "article_id": article_id,
                "title": title,
                "author": author,
                "date": date,
                "publisher": publisher,
                "url": f"https://news.example/{article_id}",
                "start": offset,
                "end": offset + len(text),
                "index": index,
            }
            chunks.append(StoredChunk(f"{article_id}-{index}", text, meta))
            offset += len(text) + 2
    return chunks


CATALOG = Catalog(stored_chunks(), "v1")
SETTINGS = Settings(embedding_provider="fake-hash", judge="fake-overlap")
PARTS = AnswererParts(
    SETTINGS,
    HashEmbedder(),
    ANALYZER,
    judge=OverlapJudge,
    catalog=lambda: CATALOG,
    chat_model=lambda: (_ for _ in ()).throw(AssertionError("no chat model")),
)
ANSWERER = create_answerer("extractive", PARTS)


def passages(*article_ids: str) -> tuple[Passage, ...]:
    found = [p for aid in article_ids for p in CATALOG.passages(aid)]
    return tuple(replace(p, score=1.0 / (i + 1), dense_score=0.5) for i, p in enumerate(found))


def ask(question: str, *article_ids: str, after: tuple[tuple[str, str], ...] = ()) -> Draft:
    request = AnswerRequest(
        question,
        question,
        ANALYZER.analyze(question),
        passages(*article_ids or tuple(ARTICLES)),
        np.zeros(64, dtype=np.float32),
        after,
    )
    draft = ANSWERER.answer(request)
    answer = Answer(question, draft.text, draft.refused, draft.citations, request.passages, {})
    assert citation_problems(answer) == []
    return draft


def test_the_sentence_that_answers_is_quoted_and_cited() -> None:
    draft = ask("Which countries does Brussels want to reinforce relationships with?", "eu")
    assert not draft.refused
    assert "India, South Korea and Japan" in draft.citations[0].quote
    assert draft.text.startswith(draft.citations[0].quote)


def test_the_answer_continues_into_the_next_sentence_when_the_fact_is_there() -> None:
    draft = ask("What was the final vote count for DeVos?", "vote")
    assert not draft.refused
    quote = draft.citations[0].quote
    assert "split evenly" in quote and "51-50" in quote  # both sentences, one citation


def test_an_attribution_is_never_quoted_without_the_words_attributed() -> None:
    draft = ask("What did Elizabeth Warren say about DeVos?", "vote")
    assert "least qualified nominee" in draft.citations[0].quote


def test_a_sentence_that_leans_on_the_one_before_is_quoted_with_it() -> None:
    draft = ask("What does forking out billions of euros for digital infrastructure include?", "eu")
    quote = draft.citations[0].quote
    assert quote.startswith("Brussels wants") and "forking out billions" in quote


def test_an_expletive_there_or_it_does_not_pull_in_the_sentence_before() -> None:
    text = (
        "Courts heard the case in 1999. There have been debates as to whether it must be"
        " peaceful. It is usually recognized that the act must be public. He said it was not."
    )
    passage = Passage("c", "a", text, "", "", "", "", "", 0, len(text), 1.0)
    analysis = QuestionAnalyzer().analyze("What have debates been about?")
    quoted = [ExtractiveAnswerer._with_context(c, analysis).quote for c in candidates([passage])]
    assert quoted[1].startswith("There have been debates")
    assert quoted[2].startswith("It is usually recognized")
    assert quoted[3].startswith("It is usually recognized")  # "He said" leans on it


def test_a_name_no_passage_mentions_is_declined_and_named() -> None:
    draft = ask("What did Angela Merkel say about the digital strategy?", "eu")
    assert draft.refused and "Angela Merkel" in draft.text and not draft.citations


def test_nationality_adjectives_do_not_force_a_refusal() -> None:
    draft = ask("Which Asian countries does Brussels want to reinforce relationships with?", "eu")
    assert not draft.refused and "Japan" in draft.text


def test_a_figure_asked_for_must_be_in_the_quote() -> None:
    # The words match well, but no sentence holds an amount: quoting one would not answer.
    draft = ask("How many partners is Europe ready to collaborate more closely with?", "eu")
    assert draft.refused and not draft.citations
    assert not ask("How many countries are in the bloc?", "eu").refused  # "27-country bloc"


def test_a_year_asked_for_must_be_in_the_quote() -> None:
    assert ask("In what year did Brussels reinforce relationships with India?", "eu").refused


def test_nothing_close_enough_is_a_refusal() -> None:
    assert ask("What recipe is best for sourdough bread?").refused


def test_what_she_said_next_is_the_next_quote_in_the_same_article() -> None:
    first = ask("What did Kaja Kallas say?", "eu")
    given = tuple((c.article_id, c.quote) for c in first.citations)
    assert "huge potential" in given[0][1]
    following = ask("What did Kaja Kallas say?", "eu", after=given[:1])
    assert "ready to collaborate" in following.citations[0].quote


def test_who_wrote_the_article_is_answered_from_its_record() -> None:
    draft = ask("Who wrote the article about the International Digital Strategy?", "eu")
    assert not draft.refused and "Mark Scott" in draft.text
    (citation,) = draft.citations
    assert citation.kind == "metadata" and citation.quote == ARTICLES["eu"][0]


def test_this_article_asked_first_of_a_larger_archive_asks_which_one() -> None:
    draft = ask("Who wrote this article?", "eu")  # the catalogue holds four
    assert draft.refused and "Which article do you mean?" in draft.text
    assert not draft.citations
    lone = _furnished_draft("Who is the author of the piece?", {"eu": ARTICLES["eu"]})
    assert not lone.refused and "Mark Scott" in lone.text  # an archive of one: that one


def test_a_missing_byline_is_said_not_guessed() -> None:
    draft = ask("Who wrote the article about the DeVos vote?", "vote")
    assert draft.refused and "names no author" in draft.text


def test_publication_date_and_outlet_come_from_the_record() -> None:
    dated = ask("When was the article about the Kabul court published?", "kabul")
    assert "8 February 2017" in dated.text and "2017-02-08" in dated.text
    outlet = ask("Which outlet published the story about the Kabul attack?", "kabul")
    assert "Al Jazeera" in outlet.text


def test_a_broad_question_gets_quotes_grouped_by_article() -> None:
    draft = ask("What does the archive say about DeVos?")
    assert not draft.refused
    assert "“Senate confirms DeVos as education secretary” (CNN, 7 February 2017):" in draft.text
    assert "Kabul" not in draft.text  # an article that does not mention the topic is left out


def test_a_summary_is_the_articles_central_sentences_in_order() -> None:
    draft = ask("Summarise the article about the International Digital Strategy", "eu")
    assert draft.text.startswith("Summary of “Why Europe Should Double Down")
    assert len(draft.citations) >= 2 and len({c.article_id for c in draft.citations}) == 1


def test_a_summary_covers_what_it_has_not_said_yet() -> None:
    text = (
        "The EU strategy courts India, Japan and South Korea on digital trade."
        " The EU strategy courts India, Japan and Korea on digital trade rules."
        " Brussels will fund cables and data centres in Africa."
        " Officials said little else on Tuesday."
        " Cables to Africa are what Brussels wants most."
    )
    passage = Passage("c1", "eu", text, "EU strategy", "", "", "", "", 0, len(text), 1.0)
    chosen = [sentence for _, sentence in _central_sentences([passage], 2)]
    # The near-copy of the first sentence adds nothing: the article's other topic comes next.
    assert chosen[0].startswith("The EU strategy courts India, Japan and South Korea")
    assert "Africa" in chosen[1]


def test_a_comparison_has_one_block_per_outlet_and_names_a_missing_one() -> None:
    draft = ask("Compare how CNN and Al Jazeera covered DeVos")
    assert "CNN: “Senate confirms DeVos" in draft.text
    assert "Al Jazeera: no article about" in draft.text


COVERAGE: Articles = {
    "cnn": (
        "DeVos confirmed after Pence breaks tie",
        "",
        "2017-02-07",
        "CNN",
        [
            "Mike Pence cast a historic tie-breaking vote to confirm Betsy DeVos on Tuesday."
            " The Senate had split evenly on DeVos, 50 votes to 50. Democrats held the floor"
            " all night against DeVos. DeVos will now run the Education Department."
        ],
    ),
    "cnn2": (
        "Trump's cabinet takes shape",
        "",
        "2017-03-01",
        "CNN",
        ["Betsy DeVos is one of several cabinet picks confirmed by narrow votes this year."],
    ),
    "abc": (
        "Senate confirms DeVos",
        "",
        "2017-02-07",
        "ABC News",
        ["Betsy DeVos was confirmed as education secretary by a 51-50 vote on Tuesday."],
    ),
}


def test_a_comparison_summarises_each_outlets_story_on_the_topic() -> None:
    draft = _furnished_draft("Compare how CNN and ABC News covered DeVos", COVERAGE)
    assert not draft.refused
    cited = [c.article_id for c in draft.citations]
    assert cited == ["cnn", "cnn", "cnn", "abc"], draft.text  # one story per outlet
    assert draft.text.startswith("CNN: “DeVos confirmed after Pence breaks tie”")


def test_the_latest_articles_come_newest_first() -> None:
    draft = ask("What is the latest article?")
    assert draft.text.index("Kabul") < draft.text.index("DeVos")


def test_catalog_corrects_a_misspelt_name_and_matches_outlets() -> None:
    (correction,) = CATALOG.correct(["Betsy Devoss"])
    assert (correction.typed, correction.meant) == ("Devoss", "DeVos")
    assert CATALOG.correct(["Kaja Kallas", "Brussels"]) == []
    assert CATALOG.match_publisher("the al jazeera") == "Al Jazeera"
    assert CATALOG.publishers_in("What articles do you have from CNN?") == ["CNN"]
    assert [a.article_id for a in CATALOG.newest(2)] == ["eu", "kabul"]


SYNDICATED = "The Dutch Freedom Party of Geert Wilders won 20 seats in the election on Wednesday."
FURNISHED: Articles = {
    "aj1": (
        "Rutte beats Wilders",
        "",
        "2017-03-16",
        "Al Jazeera",
        [
            f"{SYNDICATED} READ MORE: Who votes for Geert Wilders? This result fuelled the"
            " debate about Geert Wilders for weeks.",
        ],
    ),
    "aj2": ("Wilders comes second", "", "2017-03-16", "DW", [SYNDICATED]),
}


def _furnished_draft(question: str, articles: Articles = FURNISHED) -> Draft:
    catalog = Catalog(stored_chunks(articles), "v1")
    parts = AnswererParts(
        SETTINGS,
        HashEmbedder(),
        ANALYZER,
        judge=OverlapJudge,
        catalog=lambda: catalog,
        chat_model=lambda: (_ for _ in ()).throw(AssertionError("no chat model")),
    )
    answerer = create_answerer("extractive", parts)
    found = [p for aid in articles for p in catalog.passages(aid)]
    request = AnswerRequest(
        question,
        question,
        ANALYZER.analyze(question),
        tuple(replace(p, score=1.0, dense_score=0.5) for p in found),
        np.zeros(64, dtype=np.float32),
    )
    return answerer.answer(request)


def test_site_furniture_is_never_quoted_nor_pulled_in_as_context() -> None:
    for question in ("Who votes for Geert Wilders?", "What fuelled the debate about Wilders?"):
        draft = _furnished_draft(question)
        assert all("READ MORE" not in c.quote for c in draft.citations), draft.text


def test_a_story_syndicated_to_two_articles_is_quoted_once() -> None:
    for question in ("How many seats did Geert Wilders' party win?", "What about Geert Wilders?"):
        draft = _furnished_draft(question)
        assert not draft.refused
        assert sum(SYNDICATED in c.quote for c in draft.citations) == 1, draft.text


def test_an_outlet_named_as_the_source_filters_the_search() -> None:
    assert CATALOG.named_sources("When was the CNN story about DeVos published?") == ["CNN"]
    assert CATALOG.named_sources("What did Al Jazeera report about Kabul?") == ["Al Jazeera"]
    assert CATALOG.named_sources("according to the al jazeera, who died?") == ["Al Jazeera"]
    assert CATALOG.named_sources("What did Trump say about CNN?") == []


def test_a_figure_of_something_the_sentence_does_not_name_is_not_an_answer() -> None:
    # "51-50" is a figure about DeVos, but not of bail: the sentence must name what is counted.
    assert ask("How much was bail set at for Betsy DeVos in the Senate vote?", "vote").refused
    assert not ask("What was the final tally of the Senate vote on DeVos?", "vote").refused


JUDGE_ARTICLE: Articles = {
    "watson": (
        "Hawaii judge blocks travel ban",
        "",
        "2017-03-16",
        "CNN",
        [
            "Today, Judge Derrick Watson made history in Honolulu. Judge Derrick Watson was"
            " confirmed by the Senate without a dissenting vote.",
        ],
    )
}


def test_how_old_is_not_answered_by_a_date_without_a_number() -> None:
    assert _furnished_draft("How old is Judge Derrick Watson?", JUDGE_ARTICLE).refused


def test_a_rate_of_something_else_does_not_answer() -> None:
    rates: Articles = {
        "jp": ("Japan prices", "", "2016-11-01", "DW", ["Japan's inflation rate fell to 0.5%."])
    }
    assert _furnished_draft("What is Japan's unemployment rate?", rates).refused
    assert not _furnished_draft("What is Japan's inflation rate?", rates).refused


def test_a_figure_from_an_article_about_someone_else_does_not_answer() -> None:
    wealth: Articles = {
        "trump": (
            "Trump's wealth",
            "",
            "2017-02-01",
            "CNN",
            ["He has said his net worth is $10 billion."],
        ),
        "devos": (
            "DeVos confirmed",
            "",
            "2017-02-07",
            "CNN",
            ["Betsy DeVos was confirmed on Tuesday."],
        ),
    }
    assert _furnished_draft("What is Betsy DeVos's net worth?", wealth).refused
    assert not _furnished_draft("What is Trump's net worth?", wealth).refused


def test_a_year_the_article_says_relative_to_its_date_is_not_missing() -> None:
    story = Passage(
        "c1", "nl", "The Dutch economy grew by 2.1% last year.", "Dutch vote", "", "2017-03-15",
        "CNN", "", 0, 42, 1.0,
    )  # fmt: skip
    question = "How much did the Dutch economy grow in 2016?"
    assert missing_names(ANALYZER.analyze(question), question, [story]) == []
    older = "How much did the Dutch economy grow in 2015?"
    assert missing_names(ANALYZER.analyze(older), older, [story]) == ["2015"]


def test_a_spelled_out_duration_answers_how_long() -> None:
    draft = ask("How long will the strike last?", "strike")
    assert not draft.refused and "forty-eight hours" in draft.text


PROFILE: Articles = {
    "judge": (
        "Who is Derrick Watson?",
        "",
        "2017-03-16",
        "CNN",
        [
            "Judge Derrick Watson was born in Honolulu. Derrick Watson graduated in 1991 from"
            " Harvard Law School. The Democrats won 33 seats in the Hawaii senate."
        ],
    ),
}


def test_an_age_or_a_share_asked_is_not_answered_by_another_figure() -> None:
    age = _furnished_draft("How old is Derrick Watson?", PROFILE)
    assert age.refused  # 1991 is when he graduated, not his age
    share = _furnished_draft("What share of the seats did the Democrats win?", PROFILE)
    assert share.refused  # a number of seats is not a share
    aged = {"judge": (*PROFILE["judge"][:4], ["Judge Derrick Watson, 50, was born in Honolulu."])}
    assert "50" in _furnished_draft("How old is Derrick Watson?", aged).text


def test_what_someone_said_about_a_person_needs_the_speaker_not_the_person_talked_about() -> None:
    draft = ask("What did the senator say about the nominee, Betsy DeVos?", "vote")
    assert not draft.refused and "least qualified nominee" in draft.text
