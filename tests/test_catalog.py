"""The archive's names (rag.catalog): misspelt question names are corrected to archive names."""

from __future__ import annotations

from rag.analyze import mentions
from rag.catalog import Catalog
from rag.store import StoredChunk


def _chunk(article_id: str, text: str) -> StoredChunk:
    return StoredChunk(f"{article_id}-0", text, {"article_id": article_id, "title": "", "index": 0})


CATALOG = Catalog(
    [
        _chunk("a", "Angela Merkel met Trump. Merkel said talks went well. Merkel left."),
        _chunk("b", "Senator Jeff Merkley objected. Betsy DeVos was confirmed."),
        _chunk("c", "Kaja Kallas spoke in Brussels. Austria and Australia signed."),
        _chunk("d", "Klaas de Vries met Klaas Knot and Klaas Dijkhoff. Klaas spoke."),
    ]
)


def _meant(name: str) -> list[tuple[str, str]]:
    return [(c.typed, c.meant) for c in CATALOG.correct([name])]


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


def test_a_possessive_without_its_apostrophe_mentions_the_name() -> None:
    assert mentions("judge blocks trump's travel ban", "Trumps")
    assert not mentions("judge blocks the travel ban", "Trumps")


def test_two_names_joined_by_a_hyphen_are_mentioned_one_by_one() -> None:
    text = "merkel postponed her meeting with trump until friday."
    assert mentions(text, "Trump-Merkel")
    assert not mentions("merkel postponed her trip until friday.", "Trump-Merkel")
    assert mentions("jean-marc ayrault said", "Jean-Marc")
