"""Indexing: incremental by content, prune on request, one writer at a time."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embed import create_embedder
from rag.errors import IndexLockedError, ProviderError
from rag.index import Indexer, date_as_int, lies_under, writer_lock
from rag.lexical import LexicalIndex, fts_path, open_lexical
from rag.schema import Article
from rag.stores.chroma import ChromaStore

PARAGRAPHS = [
    "The European Union has a message to the world: let us work together on tech.",
    "In proposals published on June 5, the bloc doubled down on international partnerships.",
    "Brussels wants to reinforce relationships with India, South Korea and Japan.",
    "Priorities include next-generation mobile telecommunications and cybersecurity.",
]


def article(article_id: str = "a1", paragraphs: list[str] | None = None, **fields: str) -> Article:
    text = "\n\n".join(paragraphs or PARAGRAPHS)
    return Article(article_id=article_id, title=f"Title {article_id}", text=text, **fields)


def indexer(settings: Settings) -> Indexer:
    embedder = create_embedder(settings)
    return Indexer(settings, embedder, ChromaStore.open(settings, embedder.model_id))


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.replace(chunk_chars=200)


def test_first_ingest_embeds_every_chunk_and_builds_the_lexical_index(small: Settings) -> None:
    report = indexer(small).sync([article()], progress=False)
    assert report.articles_added == 1
    assert report.chunks_embedded == report.total_chunks > 1
    lexical = open_lexical(small, indexer(small).store)
    assert len(lexical.chunks) == report.total_chunks


def test_reingesting_an_unchanged_corpus_embeds_nothing_and_changes_nothing(
    small: Settings,
) -> None:
    first = indexer(small)
    first.sync([article("a1"), article("a2")], progress=False)
    version = first.store.index_version
    again = indexer(small).sync([article("a1"), article("a2")], progress=False)
    assert again.chunks_embedded == 0 and again.chunks_deleted == 0
    assert again.articles_unchanged == 2
    assert indexer(small).store.index_version == version


def test_a_changed_article_replaces_only_its_changed_chunks(small: Settings) -> None:
    ix = indexer(small)
    ix.sync([article()], progress=False)
    before = {c.chunk_id: c.text for c in ix.store.iter_chunks()}
    edited = [*PARAGRAPHS[:-1], "Priorities now include quantum computing and semiconductors."]
    report = ix.sync([article(paragraphs=edited)], progress=False)
    after = {c.chunk_id: c.text for c in ix.store.iter_chunks()}
    assert report.articles_updated == 1
    assert 0 < report.chunks_embedded < len(after)  # the unchanged chunks were kept
    assert report.chunks_deleted == len(set(before) - set(after))
    assert all("quantum computing" in t or t in before.values() for t in after.values())
    assert not any("cybersecurity" in t for t in after.values())


def test_changed_metadata_is_refreshed_without_re_embedding(small: Settings) -> None:
    ix = indexer(small)
    ix.sync([article(author="Mark Scott")], progress=False)
    report = ix.sync([article(author="M. Scott")], progress=False)
    assert report.chunks_embedded == 0 and report.articles_updated == 1
    assert {c.metadata["author"] for c in ix.store.iter_chunks()} == {"M. Scott"}


def test_removed_articles_go_only_with_prune(small: Settings) -> None:
    ix = indexer(small)
    ix.sync([article("a1"), article("a2")], progress=False)
    ix.sync([article("a1")], progress=False)
    assert {c.metadata["article_id"] for c in ix.store.iter_chunks()} == {"a1", "a2"}
    report = ix.sync([article("a1")], prune=True, progress=False)
    assert report.articles_removed == 1
    assert {c.metadata["article_id"] for c in ix.store.iter_chunks()} == {"a1"}


def test_prune_keeps_articles_whose_file_was_unreadable(small: Settings) -> None:
    ix = indexer(small)
    ix.sync([article("a1", source="good.md"), article("a2", source="broken.md")], progress=False)
    report = ix.sync(
        [article("a1", source="good.md")], prune=True, keep_sources=["broken.md"], progress=False
    )
    assert report.articles_removed == 0
    assert {c.metadata["article_id"] for c in ix.store.iter_chunks()} == {"a1", "a2"}


def test_prune_keeps_every_article_under_a_folder_that_could_not_be_read(
    small: Settings,
) -> None:
    ix = indexer(small)
    sources = ["news/a.md", "news/locked/b.md", "news/locked/deep/c.csv#row 3", "news/lockedx.md"]
    ix.sync([article(f"a{i}", source=s) for i, s in enumerate(sources)], progress=False)
    report = ix.sync(
        [article("a0", source=sources[0])],
        prune=True,
        keep_sources=["news/locked"],
        progress=False,
    )
    assert report.articles_removed == 1  # news/lockedx.md is not under news/locked
    assert {c.metadata["article_id"] for c in ix.store.iter_chunks()} == {"a0", "a1", "a2"}


@pytest.mark.parametrize(
    ("source", "places", "kept"),
    [
        ("corpus/a.md", ["corpus/a.md"], True),
        ("corpus/sub/a.md", ["corpus/sub"], True),
        ("corpus/sub/a.md", ["corpus/sub/"], True),
        ("corpus/sub/a.md", ["./corpus/sub"], True),
        ("news.csv#row 4", ["news.csv"], True),
        ("corpus/subway.md", ["corpus/sub"], False),
        ("corpus/a.md", ["corpus/b.md"], False),
        ("corpus/a.md", [""], False),
        ("", ["corpus"], False),
    ],
)
def test_lies_under(source: str, places: list[str], kept: bool) -> None:
    assert lies_under(source, places) is kept
    assert lies_under(os.path.abspath(source), places) is kept or not source


def test_chunk_metadata_carries_the_article_and_offsets(small: Settings) -> None:
    a = article(author="Mark Scott", date="2025-06-05", url="https://example.org/a")
    ix = indexer(small)
    ix.sync([a], progress=False)
    for chunk in ix.store.iter_chunks():
        meta = chunk.metadata
        assert a.text[int(meta["start"]) : int(meta["end"])] == chunk.text
        assert meta["date_int"] == 20250605 and meta["author"] == "Mark Scott"
        assert meta["article_hash"] == a.content_hash


def _hold_lock(
    settings: Settings,
    ready: multiprocessing.synchronize.Event,
    done: multiprocessing.synchronize.Event,
) -> None:
    with writer_lock(settings):
        ready.set()
        done.wait(10)


def test_a_second_writer_gets_a_clear_error_and_the_index_survives(small: Settings) -> None:
    indexer(small).sync([article("a1")], progress=False)
    context = multiprocessing.get_context("spawn")
    ready, done = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(small, ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(IndexLockedError, match="another process is writing"):
            indexer(small).sync([article("a2")], progress=False)
    finally:
        done.set()
        holder.join(10)
    report = indexer(small).sync([article("a1"), article("a2")], progress=False)
    assert report.articles_unchanged == 1 and report.articles_added == 1


def test_an_index_built_with_another_model_is_refused(small: Settings, tmp_path: Path) -> None:
    indexer(small).sync([article()], progress=False)
    store = ChromaStore.open(small, "another/model")
    with pytest.raises(ProviderError, match="built with embedding model"):
        store.count()


def test_dates_become_comparable_integers() -> None:
    assert date_as_int("2025-06-05") == 20250605
    assert date_as_int("") == 0 and date_as_int("June 5") == 0


def test_the_fts_index_is_rebuilt_when_missing(small: Settings) -> None:
    ix = indexer(small)
    ix.sync([article("a1"), article("a2")], progress=False)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fts_path(small)}{suffix}").unlink(missing_ok=True)
    rebuilt = open_lexical(small, ix.store)
    assert rebuilt.version == ix.store.index_version and len(rebuilt.chunks) == ix.store.count()


def test_lexical_index_is_rebuilt_when_missing_or_stale(small: Settings) -> None:
    small = small.replace(lexical="bm25s")
    ix = indexer(small)
    ix.sync([article("a1")], progress=False)
    loaded = LexicalIndex.load(small.lexical_dir)
    assert loaded is not None
    (small.lexical_dir / "manifest.json").unlink()
    assert LexicalIndex.load(small.lexical_dir) is None
    rebuilt = LexicalIndex.load_or_build(small.lexical_dir, ix.store)
    assert rebuilt.version == ix.store.index_version and len(rebuilt.chunks) == len(loaded.chunks)
