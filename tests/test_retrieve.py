"""Hybrid retrieval: dense + BM25 fused by reciprocal rank, with metadata filters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.embed import create_embedder
from rag.errors import RagError
from rag.index import Indexer
from rag.lexical import LexicalIndex
from rag.retrieve import HybridRetriever, SearchFilters, as_langchain_retriever
from rag.schema import Article
from rag.stores.chroma import ChromaStore

ARTICLES = [
    Article(
        "eu",
        "EU digital strategy",
        "Brussels published the International Digital Strategy"
        " on June 5.\n\nIt courts India, South Korea and Japan.",
        "Mark Scott",
        "2025-06-05",
    ),
    Article(
        "rail",
        "Rail strike",
        "Train drivers walked out over pay on Monday.\n\nCommuters"
        " faced delays across the country.",
        "Ana Diaz",
        "2017-01-09",
    ),
    Article(
        "tariff",
        "Steel tariffs",
        "Washington imposed steel tariffs on imports from Canada.\n\nOttawa promised retaliation.",
        "Ana Diaz",
        "2018-03-01",
    ),
]


@pytest.fixture
def retriever(settings: Settings) -> HybridRetriever:
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    Indexer(settings, embedder, store).sync(ARTICLES, progress=False)
    lexical = LexicalIndex.load_or_build(settings.lexical_dir, store)
    return HybridRetriever(settings.retrieval, embedder, store, lexical)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_each_mode_finds_the_article_that_answers(retriever: HybridRetriever, mode: str) -> None:
    result = retriever.search("train drivers strike over pay", k=2, mode=mode)
    assert result.passages[0].article_id == "rail"


def test_fused_passages_carry_both_scores_and_their_article(retriever: HybridRetriever) -> None:
    top = retriever.search("steel tariffs Canada", k=3).passages[0]
    assert top.article_id == "tariff" and top.title == "Steel tariffs"
    assert top.dense_score is not None and top.lexical_score is not None
    assert top.author == "Ana Diaz" and top.date == "2018-03-01"


def test_lexical_only_hits_still_get_their_cosine_similarity(retriever: HybridRetriever) -> None:
    for passage in retriever.search("Ottawa retaliation", k=3, mode="lexical").passages:
        assert passage.dense_score is not None


def test_scores_are_fused_as_a_weighted_mix_of_normalised_scores(
    retriever: HybridRetriever,
) -> None:
    passages = retriever.search("India South Korea Japan", k=3).passages
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] >= 0.0 and scores[0] <= 1.0  # dense_weight + BM25's share


def test_reciprocal_rank_fusion_is_a_setting(
    settings: Settings, retriever: HybridRetriever
) -> None:
    rrf = HybridRetriever(
        replace(settings.retrieval, fusion="rrf"),
        retriever.embedder,
        retriever.store,
        retriever.lexical,
    )
    scores = [p.score for p in rrf.search("India South Korea Japan", k=3).passages]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] <= 2 / (settings.rrf_k + 1)


@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (SearchFilters(article_ids=("eu",)), {"eu"}),
        (SearchFilters(authors=("Ana Diaz",)), {"rail", "tariff"}),
        (SearchFilters(date_from="2018-01-01"), {"eu", "tariff"}),
        (SearchFilters(date_to="2017-12-31"), {"rail"}),
        (SearchFilters(authors=("Ana Diaz",), date_from="2018-01-01"), {"tariff"}),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_filters_apply_to_every_mode(
    retriever: HybridRetriever, filters: SearchFilters, allowed: set[str], mode: str
) -> None:
    result = retriever.search("strike tariffs strategy India pay", k=5, filters=filters, mode=mode)
    assert result.passages
    assert {p.article_id for p in result.passages} <= allowed


def test_a_bad_filter_date_is_a_clear_error() -> None:
    with pytest.raises(RagError, match="date_from must be an ISO date"):
        SearchFilters(date_from="last week")


def test_langchain_retriever_returns_documents_with_metadata(retriever: HybridRetriever) -> None:
    documents = as_langchain_retriever(retriever, k=2).invoke("train drivers pay")
    assert documents[0].metadata["article_id"] == "rail"
    assert documents[0].page_content.startswith("Train drivers")
    assert documents[0].id == documents[0].metadata["chunk_id"]


def test_assistant_sees_articles_ingested_through_another_handle(settings: Settings) -> None:
    reader = Assistant.open(settings)
    writer = Assistant.open(settings)
    embedder, store = writer.embedder, writer.store
    Indexer(settings, embedder, store).sync(ARTICLES[:1], progress=False)
    assert reader.retriever().search("steel tariffs", k=3).passages[0].article_id == "eu"
    Indexer(settings, embedder, store).sync(ARTICLES, progress=False)
    passages = Assistant.open(settings).retriever().search("steel tariffs Canada", k=3).passages
    assert passages[0].article_id == "tariff"
