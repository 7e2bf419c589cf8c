"""The archive's names (rag.catalog): misspelt question names are corrected to archive names."""

from __future__ import annotations

from collections.abc import Collection

from rag.analyze import mentions
from rag.catalog import Catalog
from rag.config import Settings
from rag.embed import create_embedder
from rag.index import Indexer
from rag.lexical import open_lexical
from rag.schema import Article
from rag.store import StoredChunk
from rag.stores.chroma import ChromaStore


def _chunk(article_id: str, text: str) -> StoredChunk:
    return StoredChunk(f"{article_id}-0", text, {"article_id": article_id, "title": "", "index": 0})


CATALOG_CHUNKS = [
    _chunk("a", "Angela Merkel met Trump. Merkel said talks went well. Merkel left."),
    _chunk("b", "Senator Jeff Merkley objected. Betsy DeVos was confirmed."),
    _chunk("c", "Kaja Kallas spoke in Brussels. Austria and Australia signed."),
    _chunk("d", "Klaas de Vries met Klaas Knot and Klaas Dijkhoff. Klaas spoke."),
]
CATALOG = Catalog(CATALOG_CHUNKS)


def _meant(name: str, catalog: Catalog = CATALOG) -> list[tuple[str, str]]:
    return [(c.typed, c.meant) for c in catalog.correct([name])]


def test_a_swapped_pair_of_letters_is_a_typo_of_the_most_written_name() -> None:
    # "Merkle" is one swap from Merkel and one letter from Merkley: the archive writes Merkel
    # far more often, so that is who the reader meant.
    assert _meant("Angela Merkle") == [("Merkle", "Merkel")]


def test_the_name_written_beside_the_other_typed_words_wins_over_a_more_frequent_one() -> None:
    # "Kalas" is one letter from Kallas and one swap from Klaas, which the archive writes more
    # often; but it writes "Kaja" only before Kallas.
    assert _meant("Kaja Kalas") == [("Kalas", "Kallas")]


def test_one_letter_more_or_less_is_corrected() -> None:
    assert _meant("Betsy Devoss") == [("Devoss", "DeVos")]
    assert _meant("Kaja Kalas") == [("Kalas", "Kallas")]


def test_known_names_and_other_names_are_left_alone() -> None:
    assert _meant("Kaja Kallas") == []
    assert _meant("Austin") == []  # two edits from Austria: another name, not a typo
    assert _meant("Australia") == []


def test_a_question_typed_in_lower_case_gets_the_archives_capitals_for_its_names() -> None:
    catalog = Catalog(
        [
            _chunk("k", "Kim Jong Nam died. Police found VX on Kim Jong Nam's face."),
            _chunk("h", "Face Of The Year. The face of a man. His face was calm."),
        ]
    )
    asked = "what was found on kim jong nam's face? vx?"
    assert catalog.truecased(asked) == "what was found on Kim Jong Nam's face? VX?"
    # A question with any capital is the user's own casing.
    assert catalog.truecased("what did kim say to Trump?") == "what did kim say to Trump?"


def test_a_misspelt_name_after_a_name_is_capitalised_for_the_spelling_correction() -> None:
    # CATALOG writes Angela Merkel, Betsy DeVos, Kaja Kallas; "Criticism" only opens a line.
    catalog = Catalog([*CATALOG_CHUNKS, _chunk("e", "Criticism grew. The criticism was loud.")])
    assert catalog.truecased("what did kaja kalas say?") == "what did Kaja Kalas say?"
    assert catalog.truecased("did betsy devoss win?") == "did Betsy Devoss win?"
    assert catalog.truecased("did merkel criticise it?") == "did Merkel criticise it?"


def test_a_word_the_archive_writes_in_lower_case_is_not_corrected_to_a_name() -> None:
    catalog = Catalog([_chunk("a", "Marek Hamsik scored. Each mark counts. Merkel spoke.")])
    assert _meant("The Mark of Anarchy", catalog) == []
    assert _meant("Merkle", catalog) == [("Merkle", "Merkel")]


def test_a_country_is_mentioned_by_its_adjective_and_a_phrase_by_its_words_run_together() -> None:
    assert mentions("the american civil rights movement", "US")
    assert mentions("japanese officials said", "Japan")
    assert not mentions("asian officials said", "Japan")  # a region does not name a country
    assert mentions("legrande writes that", "Le Grande")
    assert not mentions("the grand tour", "Le Grande")


def test_a_possessive_without_its_apostrophe_mentions_the_name() -> None:
    assert mentions("judge blocks trump's travel ban", "Trumps")
    assert not mentions("judge blocks the travel ban", "Trumps")


def test_two_names_joined_by_a_hyphen_are_mentioned_one_by_one() -> None:
    text = "merkel postponed her meeting with trump until friday."
    assert mentions(text, "Trump-Merkel")
    assert not mentions("merkel postponed her trip until friday.", "Trump-Merkel")
    assert mentions("jean-marc ayrault said", "Jean-Marc")


def test_a_catalogue_follows_its_index_reading_only_the_articles_that_changed(
    settings: Settings,
) -> None:
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    indexer = Indexer(settings.index, embedder, store)
    first = [
        Article(
            f"a{i}",
            f"Story {i}",
            f"Angela Merkel met Kaja Kallas on day {i}.",
            "",
            "2017-01-0" + str(i + 1),
        )
        for i in range(6)
    ]
    indexer.sync(first, progress=False)
    lexical = open_lexical(settings.index, store)
    read: list[str] = []
    original = lexical.article_chunks

    def counting(article_ids: Collection[str]) -> list[StoredChunk]:
        read.extend(article_ids)
        return original(article_ids)

    lexical.article_chunks = counting  # type: ignore[method-assign]
    catalog = Catalog.of_index(lexical)
    assert sorted(read) == [f"a{i}" for i in range(6)] and set(catalog.articles) == set(read)
    assert catalog.knows("Kallas") and not catalog.knows("DeVos")

    read.clear()
    indexer.sync(
        [*first, Article("b", "DeVos vote", "Betsy DeVos was confirmed.", "", "2017-02-07")],
        progress=False,
    )
    lexical = lexical.refreshed(store)
    lexical.article_chunks = counting  # type: ignore[method-assign]
    updated = catalog.updated(lexical)
    assert read == ["b"]  # the one new article, not the archive
    # What it knew of the other articles' words is kept: "day" is a word, not a typo.
    assert "day" in updated._words and updated._words >= catalog._words
    assert updated.knows("DeVos") and updated.knows("Kallas") and "b" in updated.articles
    assert not catalog.knows("DeVos")  # the old one is left as it was, for readers on it
    assert [p.text for p in updated.passages("b")] == ["Betsy DeVos was confirmed."]


def test_a_letter_moved_in_a_long_name_is_a_typo_but_two_other_edits_are_not() -> None:
    catalog = Catalog([_chunk("g", "Mohandas Gandhi fasted. Gandhi spoke. Austria voted.")])
    assert _meant("Ghandi", catalog) == [("Ghandi", "Gandhi")]
    assert _meant("Austin", catalog) == []  # not the same letters
    formulas = Catalog([_chunk("f", "Esters (R-COO-R) form. R-COO-R is common.")])
    assert _meant("R-OOC-R", formulas) == []  # a formula, not a word with a moved letter


def test_half_of_a_name_the_archive_writes_as_one_word_is_not_corrected() -> None:
    catalog = Catalog([_chunk("l", "LeGrande writes that it is hard. The Grand Canyon. Grand.")])
    assert _meant("Le Grande", catalog) == []
    assert _meant("Grande", catalog) == [("Grande", "Grand")]


def test_a_name_is_mentioned_by_its_plural_and_a_short_adjective_by_its_noun() -> None:
    assert mentions("public-private partnering (ppps) aka private finance", "PPP")
    assert mentions("the jews gathered in the streets", "Jewish")
    assert not mentions("a jewellery shop", "Jewish")
    assert mentions("troops left russia", "Russian")
    assert not mentions("since the late 1990s", "1990")  # a decade is not its first year


def test_a_number_is_mentioned_by_its_word() -> None:
    assert mentions("80 percent die within eight days", "8")
    assert mentions("three people were hurt", "3")
    assert not mentions("80 percent die within eighteen days", "8")
