"""Hybrid retrieval: dense + BM25 fused by reciprocal rank, with metadata filters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.embed import create_embedder
from rag.errors import RagError
from rag.index import Indexer
from rag.lexical import LexicalIndex, open_lexical
from rag.lexical_fts import FtsIndex
from rag.retrieve import HybridRetriever, SearchFilters, as_langchain_retriever
from rag.schema import Article, Chunk, Passage
from rag.store import DenseHit
from rag.stores.chroma import ChromaStore
from tests.conftest import unrelated_texts

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
        " faced delays across the country as fares rose.",
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


def test_search_holds_back_an_articles_later_chunks_unless_asked_not_to(
    settings: Settings,
) -> None:
    """With a strong same-article decay, a second article reaches the top ahead of the first
    one's later chunks; ``spread=False`` (a fact question's answer pool) ranks by fused score
    alone."""
    long = Article(
        "storm",
        "Harbour storm",
        "\n\n".join(
            f"The harbour storm closed berth {n} and the storm flooded quay {n}." for n in range(12)
        ),
    )
    other = Article(
        "port", "Port news", "The storm warning reached the harbour office on Friday, they said."
    )
    unrelated = Article("school", "School meals", "The council voted to fund free school meals.")
    settings = settings.replace(same_article_decay=0.1, chunk_chars=200)
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    Indexer(settings.index, embedder, store).sync([long, other, unrelated], progress=False)
    retriever = HybridRetriever(
        settings.retrieval, embedder, store, open_lexical(settings.index, store)
    )
    pool = [p.article_id for p in retriever.search("harbour storm", k=4, spread=False).passages]
    assert pool[:2] == ["storm", "storm"]
    spread = [p.article_id for p in retriever.search("harbour storm", k=4).passages]
    assert spread[:2] == ["storm", "port"]


def test_the_lexical_search_finds_a_verbs_other_form_and_a_nationalitys_country(
    retriever: HybridRetriever,
) -> None:
    # The rail article says "fares rose", the tariff one "Canada".
    rise = retriever.search("Did anything rise?", k=1, mode="lexical").passages
    assert [p.article_id for p in rise] == ["rail"]
    canadian = retriever.search("Canadian", k=1, mode="lexical").passages
    assert [p.article_id for p in canadian] == ["tariff"]


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


# -- filtered dense search: planned on the lexical index's counts --------------------------------

MANY = [
    Article(
        f"a{i}",
        f"Story {i}",
        f"Report {i} on {('trade', 'rail', 'steel', 'energy')[i % 4]} policy and prices."
        f"\n\nOfficials in city {i % 7} commented on day {i}.",
        ("Ana Diaz", "Bo Chen", "Cy Eze", "Di Fox")[i % 4],
        f"{2014 + i % 10}-0{1 + i % 9}-1{i % 10}",
    )
    for i in range(60)
]
FILTERS = [
    SearchFilters(authors=("Bo Chen",), date_from="2016-01-01", date_to="2020-12-31"),
    SearchFilters(authors=("Ana Diaz", "Cy Eze")),
    SearchFilters(date_from="2018-01-01"),
    SearchFilters(article_ids=("a3", "a7", "a11")),
]


@pytest.fixture(params=["fts5", "fts5 with a segment", "bm25s"])
def planned(request: pytest.FixtureRequest, settings: Settings) -> HybridRetriever:
    backend = request.param.split()[0]
    settings = settings.replace(lexical=backend, fts_segment="manual")
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    Indexer(settings.index, embedder, store).sync(MANY, progress=False)
    lexical = open_lexical(settings.index, store)
    if request.param.endswith("segment"):
        assert isinstance(lexical, FtsIndex)
        lexical.build_segment()  # its float16 vectors rank the exact plan's candidates
    return HybridRetriever(settings.retrieval, embedder, store, lexical)


def test_with_a_segment_an_exact_filtered_search_reads_only_the_winners_vectors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment's float16 copies rank the chunks a narrow filter passes; the store reads
    the vectors of the winners only (with their records), and their similarity is exact."""
    settings = settings.replace(fts_segment="manual")
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    Indexer(settings.index, embedder, store).sync(MANY, progress=False)
    lexical = open_lexical(settings.index, store)
    assert isinstance(lexical, FtsIndex)
    lexical.build_segment()
    retriever = HybridRetriever(settings.retrieval, embedder, store, lexical)
    filters = SearchFilters(authors=("Ana Diaz", "Cy Eze"))
    match = lexical.matching(filters, 1_000)
    assert match.chunk_ids and set(match.vectors) == set(match.chunk_ids)
    vector = embedder.embed(["steel prices policy in city 3"])[0]
    read: list[str] = []
    real = ChromaStore._get_fresh

    def counted(self: ChromaStore, chunk_ids: list[str], include: list[str]) -> object:
        if "embeddings" in include:
            read.extend(chunk_ids)
        return real(self, chunk_ids, include)

    monkeypatch.setattr(ChromaStore, "_get_fresh", counted)
    hits = retriever.dense(vector, 3, filters)
    assert 3 <= len(read) < len(match.chunk_ids)  # the winners (and any tied within float16)
    assert [h.chunk.chunk_id for h in hits] == _exact(retriever, vector, 3, filters)
    exact = store.get_vectors([h.chunk.chunk_id for h in hits])
    for hit in hits:
        assert hit.similarity == pytest.approx(float(np.dot(exact[hit.chunk.chunk_id], vector)))


def _exact(
    retriever: HybridRetriever, vector: np.ndarray, k: int, filters: SearchFilters
) -> list[str]:
    """The truth: every chunk that passes, compared with the query exactly."""
    passing = [c for c in retriever.lexical.chunks if filters.accepts(c.metadata)]
    vectors = retriever.store.get_vectors([c.chunk_id for c in passing])
    ranked = sorted(vectors, key=lambda cid: -float(np.dot(vectors[cid], vector)))
    return ranked[:k]


@pytest.mark.parametrize("regime", ["exact", "nearest then filtered", "store's filter"])
@pytest.mark.parametrize("filters", FILTERS)
def test_each_plan_of_a_filtered_dense_search_finds_the_exact_nearest(
    planned: HybridRetriever,
    filters: SearchFilters,
    regime: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rag.retrieve

    monkeypatch.setattr(rag.retrieve, "EXACT_LIMIT", 10_000 if regime == "exact" else 0)
    share = 0.0 if regime == "nearest then filtered" else 2.0  # 2.0: never
    monkeypatch.setattr(rag.retrieve, "POST_FILTER_SHARE", share)
    vector = planned.embedder.embed(["steel prices policy in city 3"])[0]
    found = [h.chunk.chunk_id for h in planned.dense(vector, 5, filters)]
    assert found == _exact(planned, vector, 5, filters)


def test_a_narrow_filter_never_reaches_the_stores_own_filtered_search(
    planned: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = planned.store.query

    def query(vector: np.ndarray, k: int, filters: SearchFilters | None = None) -> list[DenseHit]:
        assert filters is None, "the store's metadata filter was used"
        return original(vector, k)

    monkeypatch.setattr(planned.store, "query", query)
    for filters in FILTERS:  # each passes at most 30 of the 120 chunks: read exactly
        result = planned.search("rail policy", k=5, filters=filters, mode="dense")
        assert result.passages and all(filters.accepts(_meta(p)) for p in result.passages)


def _meta(passage: Passage) -> dict[str, object]:
    from rag.store import date_as_int

    return {
        "article_id": passage.article_id,
        "author": passage.author,
        "publisher": passage.publisher,
        "date_int": date_as_int(passage.date),
    }


def test_the_lexical_backends_agree_on_what_a_filter_passes(settings: Settings) -> None:
    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    Indexer(settings.index, embedder, store).sync(MANY, progress=False)
    backends = [open_lexical(settings.replace(lexical=n).index, store) for n in ("fts5", "bm25s")]
    everything = [c.chunk_id for c in backends[0].chunks]
    for filters in FILTERS:
        truth = {c.chunk_id for c in backends[0].chunks if filters.accepts(c.metadata)}
        for lexical in backends:
            listed = lexical.matching(filters, limit=1_000)
            assert set(listed.chunk_ids or ()) == truth and listed.count == len(truth)
            counted = lexical.matching(filters, limit=0)
            assert counted.chunk_ids is None and counted.count == len(truth)
            assert counted.total == len(everything)
            assert lexical.accepted(everything, filters) == truth


# -- a replica whose vector index trails another process's write ----------------------------------

INGEST = """
import sys
sys.path.insert(0, sys.argv[2])
import conftest  # registers the fake embedder
from rag.config import Settings
from rag.embed import create_embedder
from rag.index import Indexer
from rag.schema import Article
from rag.stores.chroma import ChromaStore

settings = Settings(data_dir=sys.argv[1], embedding_provider="fake-hash")
embedder = create_embedder(settings)
article = Article("storm", "Harbour storm", sys.argv[3], "Cy Eze", "2024-02-02")
Indexer(settings, embedder, ChromaStore.open(settings, embedder.model_id)).sync(
    [article], progress=False
)
"""


def test_a_replica_finds_another_processs_new_article_while_its_vectors_reload(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process ingests an article. This process's embedded Chroma cannot read the
    new chunks' vectors until it has loaded its vector index again (3.5-4.6 s at 1M chunks,
    in the background): meanwhile the lexical index, which the writer brought up to date
    with float16 copies of the new vectors, finds the article, scores it by the copy, and a
    filter on it searches it exactly. Once the reload is done, dense search finds it too."""
    import subprocess
    import sys
    import threading
    from pathlib import Path

    import rag.stores.chroma as chroma

    embedder = create_embedder(settings.index)
    store = ChromaStore.open(settings.index, embedder.model_id)
    Indexer(settings.index, embedder, store).sync(ARTICLES, progress=False)
    # Enough chunks that Chroma moves them from its log into the vector index, then a
    # search, which loads that index into this process.
    filler = [
        Chunk(f"f{n}", "filler", text, 0, len(text), n, {"article_id": "filler"})
        for n, text in enumerate(unrelated_texts(1500))
    ]
    store.add(filler, np.asarray(embedder.embed([c.text for c in filler]), dtype=np.float32))
    lexical = open_lexical(settings.index, store)
    retriever = HybridRetriever(settings.retrieval, embedder, store, lexical)
    assert retriever.search("train drivers strike", k=1).passages[0].article_id == "rail"

    text = "A zyxwquorble storm flooded the harbour docks.\n\nThe port closed for a week."
    tests = str(Path(__file__).parent)
    subprocess.run(
        [sys.executable, "-c", INGEST, str(settings.data_dir), tests, text],
        check=True,
        timeout=120,
    )
    may_load = threading.Event()
    real_load = chroma._load_vectors
    monkeypatch.setattr(
        chroma, "_load_vectors", lambda client, name: (may_load.wait(30), real_load(client, name))
    )
    store.current_version()  # the new version: the reload begins, held back here
    lexical = lexical.refreshed(store)
    assert store.reloading
    question = "zyxwquorble storm in the harbour"
    meanwhile = HybridRetriever(settings.retrieval, embedder, store, lexical).search(question, k=3)
    top = meanwhile.passages[0]
    assert top.article_id == "storm" and top.dense_score is not None
    dense = retriever.search(question, 5, mode="dense").passages
    assert "storm" not in {p.article_id for p in dense}  # not in the vector index loaded here
    only_new = SearchFilters(article_ids=("storm",))
    filtered = retriever.search("the port closed", k=1, filters=only_new, mode="dense").passages
    assert [p.article_id for p in filtered] == ["storm"]

    may_load.set()
    assert store.wait_reloaded(30)
    after = HybridRetriever(settings.retrieval, embedder, store, lexical).search(question, k=3)
    assert after.passages[0].chunk_id == top.chunk_id
    assert top.dense_score == pytest.approx(after.passages[0].dense_score, abs=chroma.FLOAT16_ERROR)
    assert "storm" in {p.article_id for p in retriever.search(question, 5, mode="dense").passages}
