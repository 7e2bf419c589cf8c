"""An interrupted ingest: readers see whole versions only, and the next run repairs the rest.

Interruptions are simulated by a store (real Chroma in ``tmp_path``) or an embedder that
raises ``Killed`` at a chosen call, as SIGKILL or a full disk would stop a run; embedding is
done two chunks at a time so that an article spans several batches.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rag.index
from rag.chunk import chunk_article
from rag.config import Settings
from rag.embed import Vectors, create_embedder
from rag.errors import IndexWriteError
from rag.index import Indexer, chunk_metadata
from rag.lexical import LexicalIndex, open_lexical
from rag.schema import Article
from rag.store import SearchFilters
from rag.stores.chroma import ChromaStore

PARAGRAPHS = [  # about 150 characters each: one chunk per paragraph at 200
    f"Paragraph {i} of the budget story: the council voted on item {i} after a long debate"
    " that ran late into the evening and ended with a narrow majority."
    for i in range(8)
]
EDITED = [*PARAGRAPHS[:2], *(p.replace("voted", "argued") for p in PARAGRAPHS[2:])]


class Killed(BaseException):
    """What SIGKILL does to a run: it stops, whatever it was doing."""


def article(article_id: str, paragraphs: Sequence[str] = PARAGRAPHS) -> Article:
    return Article(article_id, f"Title {article_id}", "\n\n".join(paragraphs), source=article_id)


@pytest.fixture
def small(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(rag.index, "_EMBED_BATCH", 2)
    return settings.replace(chunk_chars=200)


class CountingEmbedder:
    """The fake embedder, counting what it embeds and raising ``Killed`` on call ``kill_at``."""

    def __init__(self, settings: Settings, kill_at: int = 0) -> None:
        self._inner = create_embedder(settings)
        self.kill_at = kill_at
        self.calls = 0
        self.embedded = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls == self.kill_at:
            raise Killed
        self.embedded += len(texts)
        return self._inner.embed(texts)


_WRITES = (
    "add",
    "update_metadata",
    "delete",
    "write_commit_records",
    "delete_commit_records",
    "bump_version",
)


class KillingStore(ChromaStore):
    """A real store whose ``kill_at``-th write (counting every kind) raises ``Killed``."""

    kill_at = 0
    writes = 0

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name not in _WRITES:
            return value

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.kill_at:
                raise Killed
            return value(*args, **kwargs)

        return write


def indexer(settings: Settings, embedder: CountingEmbedder | None = None) -> Indexer:
    embedder = embedder or CountingEmbedder(settings)
    return Indexer(settings, embedder, ChromaStore.open(settings, embedder.model_id))


def killing_indexer(settings: Settings, kill_at: int) -> Indexer:
    embedder = CountingEmbedder(settings)
    store = KillingStore.open(settings, embedder.model_id)
    store.kill_at = kill_at
    return Indexer(settings, embedder, store)


def clean_chunks(settings: Settings, articles: Sequence[Article]) -> set[tuple[str, str]]:
    """(chunk id, article hash) of every chunk a clean ingest of ``articles`` stores."""
    return {
        (c.chunk_id, a.content_hash)
        for a in articles
        for c in chunk_article(a, settings.chunk_chars, settings.chunk_overlap_sentences)
    }


def shown(store: ChromaStore, article_id: str | None = None) -> set[tuple[str, str]]:
    filters = SearchFilters(article_ids=(article_id,)) if article_id else None
    return {(c.chunk_id, str(c.metadata["article_hash"])) for c in store.iter_chunks(filters)}


def stored(store: ChromaStore) -> list[tuple[str, str]]:
    return sorted(
        (c.chunk_id, str(c.metadata["article_hash"]))
        for c in store.iter_chunks(include_uncommitted=True)
    )


def searched(settings: Settings, store: ChromaStore, query: str) -> set[tuple[str, str]]:
    vector = create_embedder(settings).embed([query])[0]
    return {
        (h.chunk.chunk_id, str(h.chunk.metadata["article_hash"])) for h in store.query(vector, 50)
    }


def assert_lexical_matches(settings: Settings, store: ChromaStore) -> None:
    lexical = open_lexical(settings, store)
    assert len(lexical.chunks) == store.count()
    assert {(c.chunk_id, str(c.metadata["article_hash"])) for c in lexical.chunks} == set(
        stored(store)
    )


def test_an_interrupted_replacement_shows_the_old_version_and_is_repaired(small: Settings) -> None:
    old, new = article("a1"), article("a1", EDITED)
    indexer(small).sync([old], progress=False)
    version = indexer(small).store.index_version

    killed = CountingEmbedder(small, kill_at=2)  # the first batch is stored, then the run dies
    ix = indexer(small, killed)
    with pytest.raises(Killed):
        ix.sync([new], progress=False)
    assert killed.embedded == 2
    store = ChromaStore.open(small, killed.model_id)
    assert len(stored(store)) > len(clean_chunks(small, [old]))  # the new batch is there...
    assert shown(store) == clean_chunks(small, [old])  # ...but readers see the old version
    assert searched(small, store, "the council argued") <= clean_chunks(small, [old])
    assert store.index_version != version  # so a saved lexical index follows...
    lexical = open_lexical(small, store)
    assert {(c.chunk_id, c.metadata["article_hash"]) for c in lexical.chunks} == shown(store)

    spy = CountingEmbedder(small)
    report = indexer(small, spy).sync([new], progress=False)
    assert report.articles_updated == 1 and report.articles_unchanged == 0
    assert 0 < spy.embedded == report.chunks_embedded  # only what the first run did not store
    store = ChromaStore.open(small, spy.model_id)
    assert stored(store) == sorted(clean_chunks(small, [new]))
    assert shown(store) == clean_chunks(small, [new])
    assert_lexical_matches(small, store)
    again = indexer(small, spy).sync([new], progress=False)
    assert again.articles_unchanged == 1 and again.chunks_embedded == again.chunks_deleted == 0


def test_an_interrupted_new_article_is_not_shown_until_it_is_complete(small: Settings) -> None:
    a1, a2 = article("a1"), article("a2")
    # Batches of two chunks: a1 is stored and committed in four, a2's first batch is stored.
    with pytest.raises(Killed):
        indexer(small, CountingEmbedder(small, kill_at=6)).sync([a1, a2], progress=False)
    store = indexer(small).store
    assert {
        a for c in store.iter_chunks(include_uncommitted=True) for a in [c.metadata["article_id"]]
    } == {"a1", "a2"}
    assert shown(store, "a1") == clean_chunks(small, [a1])
    assert shown(store, "a2") == set()
    assert searched(small, store, "budget story council") <= clean_chunks(small, [a1])

    report = indexer(small).sync([a1, a2], progress=False)
    assert report.articles_unchanged == 1 and report.articles_added == 1
    assert stored(store) == sorted(clean_chunks(small, [a1, a2]))
    assert_lexical_matches(small, store)


def test_a_killed_write_at_any_point_leaves_whole_versions_and_the_rerun_equals_a_clean_ingest(
    small: Settings, tmp_path: Path
) -> None:
    # a1 keeps two chunks, changes two; a2 stays; a3 is pruned; a4 is new.
    before = [article("a1", PARAGRAPHS[:4]), article("a2", PARAGRAPHS[:2]), article("a3")]
    after = [article("a1", EDITED[:4]), before[1], article("a4", PARAGRAPHS[:3])]
    versions: dict[str, list[set[tuple[str, str]]]] = {}
    for a in [*before, *after]:
        versions.setdefault(a.article_id, []).append(clean_chunks(small, [a]))
    base = small.replace(data_dir=tmp_path / "base")
    indexer(base).sync(before, progress=False)
    kill_at, points = 1, 0
    while True:
        settings = small.replace(data_dir=tmp_path / f"run-{kill_at}")
        shutil.copytree(base.data_dir, settings.data_dir)
        ix = killing_indexer(settings, kill_at)
        try:
            ix.sync(after, prune=True, progress=False)
        except Killed:
            points += 1
        else:
            break  # every write point was tried
        store = ChromaStore.open(settings, ix.embedder.model_id)
        assert shown(store, "a2") == versions["a2"][0]  # unchanged: never hidden
        for article_id in ("a1", "a3", "a4"):
            assert (
                shown(store, article_id) == set()
                or shown(store, article_id) in versions[article_id]
            ), f"killed at write {kill_at}: {article_id} is shown in part"
        assert searched(settings, store, "the council voted argued") <= shown(store)
        indexer(settings).sync(after, prune=True, progress=False)
        assert stored(store) == sorted(clean_chunks(small, after)), f"killed at write {kill_at}"
        assert_lexical_matches(settings, store)
        kill_at += 1
    print(f"stopped at each of {points} writes")
    assert points >= 10  # the scenario has that many writes to stop at


def test_a_store_written_before_commit_records_is_not_re_embedded(small: Settings) -> None:
    articles = [article("a1"), article("a2", EDITED)]
    store = write_as_before_commit_records(small, articles)
    version = store.index_version

    spy = CountingEmbedder(small)
    report = indexer(small, spy).sync(articles, progress=False)
    assert spy.embedded == 0 and report.articles_unchanged == 2
    records = indexer(small).store.commit_records()
    assert {a: (r.article_hash, r.chunks) for a, r in records.items()} == {
        a.article_id: (a.content_hash, len(clean_chunks(small, [a]))) for a in articles
    }
    assert indexer(small).store.index_version == version
    # Other chunk settings do not make a stored article look incomplete either.
    legacy = small.replace(data_dir=small.data_dir.parent / "legacy")
    write_as_before_commit_records(legacy, articles)
    other = indexer(legacy.replace(chunk_chars=400), spy).sync(articles, progress=False)
    assert spy.embedded == 0 and other.articles_unchanged == 2


def test_an_article_left_partial_before_commit_records_is_repaired(small: Settings) -> None:
    whole, partial = article("a1"), article("a2")
    store = write_as_before_commit_records(small, [whole, partial], keep_only_first=2)
    spy = CountingEmbedder(small)
    report = indexer(small, spy).sync([whole, partial], progress=False)
    assert report.articles_unchanged == 1 and report.articles_updated == 1
    assert spy.embedded == len(clean_chunks(small, [partial])) - 2
    assert stored(store) == sorted(clean_chunks(small, [whole, partial]))
    assert_lexical_matches(small, store)


def test_a_lexical_index_saved_in_the_middle_of_a_killed_run_is_rebuilt(small: Settings) -> None:
    small = small.replace(lexical="bm25s")
    ix = indexer(small)
    ix.sync([article("a1"), article("a2")], progress=False)
    # A reader saved an index of part of the store under its current version.
    LexicalIndex.build(list(ix.store.iter_chunks())[:3], ix.store.index_version).save(
        small.lexical_dir
    )
    report = indexer(small).sync([article("a1"), article("a2")], progress=False)
    assert report.articles_unchanged == 2 and report.chunks_embedded == 0
    saved = LexicalIndex.load(small.lexical_dir)
    assert saved is not None and len(saved.chunks) == ix.store.count()


def test_an_interrupted_removal_hides_the_whole_article(small: Settings) -> None:
    indexer(small).sync([article("a1"), article("a2")], progress=False)
    ix = killing_indexer(small, kill_at=3)  # hide, bump, then the deletion is stopped
    with pytest.raises(Killed):
        ix.remove(["a1"])
    store = indexer(small).store
    assert shown(store, "a1") == set() and shown(store, "a2") == clean_chunks(
        small, [article("a2")]
    )
    assert indexer(small).remove(["a1"]).articles_removed == 1
    assert stored(store) == sorted(clean_chunks(small, [article("a2")]))
    assert store.commit_records(["a1"]) == {}


def write_as_before_commit_records(
    settings: Settings, articles: Sequence[Article], keep_only_first: int = 0
) -> ChromaStore:
    """Store ``articles`` as the code before commit records did: chunks and a version only
    (with ``keep_only_first``, the last article stops after that many chunks, as a killed
    run left it)."""
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    for position, a in enumerate(articles):
        chunks = chunk_article(a, settings.chunk_chars, settings.chunk_overlap_sentences)
        if keep_only_first and position == len(articles) - 1:
            chunks = chunks[:keep_only_first]
        chunks = [replace(c, metadata=chunk_metadata(a, c)) for c in chunks]
        vectors = np.asarray(embedder.embed([c.text for c in chunks]), dtype=np.float32)
        store.add(chunks, vectors)
    store.bump_version()
    open_lexical(settings, store)
    return store


def test_a_readers_stale_bm25_copy_never_returns_a_replaced_version(small: Settings) -> None:
    from rag.retrieve import HybridRetriever

    small = small.replace(lexical="bm25s")
    ix = indexer(small)
    ix.sync([article("budget")])
    stale = LexicalIndex.build(list(ix.store.iter_chunks()), ix.store.index_version)
    ix.sync([article("budget", EDITED)])  # "voted" -> "argued" from paragraph 2 on
    retriever = HybridRetriever(small.retrieval, ix.embedder, ix.store, stale)
    # Until it reloads, the reader's BM25 copy knows the old version only: its hits are
    # dropped, and what dense search finds of the new version is all that is shown.
    passages = retriever.search("council voted item 5", k=8, mode="hybrid").passages
    current = {c.chunk_id: c.text for c in ix.store.iter_chunks()}
    assert passages and all(current.get(p.chunk_id) == p.text for p in passages)
    assert not any("voted on item 5" in p.text for p in passages)


# -- a full disk (issue 9, item 8) ---------------------------------------------------------------


class DiskFull:
    """Makes Chroma's ``fail_at``-th write (of any collection, of any kind) raise ``error``,
    where a full disk would: inside chromadb, under the store's own code."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        from chromadb.api.models.Collection import Collection

        self.error, self.fail_at, self.writes = error, 0, 0
        for name in ("upsert", "update", "delete", "modify", "add"):
            monkeypatch.setattr(Collection, name, self._failing(getattr(Collection, name)))

    def _failing(self, write: Any) -> Any:
        def failing(collection: Any, *args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.fail_at:
                raise self.error
            return write(collection, *args, **kwargs)

        return failing


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        sqlite3.OperationalError("database or disk is full"),
    ],
    ids=["enospc", "sqlite-full"],
)
def test_a_full_disk_is_one_line_saying_what_was_kept_and_the_next_run_completes_it(
    small: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    # a1 is unchanged, a2 changes, a3 and a4 are new (four batches each), a5 is pruned.
    before = [article("a1", PARAGRAPHS[:2]), article("a2", PARAGRAPHS[:4]), article("a5")]
    after = [before[0], article("a2", EDITED[:4]), article("a3"), article("a4")]
    base = small.replace(data_dir=tmp_path / "base")
    indexer(base).sync(before, progress=False)
    disk = DiskFull(monkeypatch, error)
    fail_at, points = 1, 0
    while True:
        settings = small.replace(data_dir=tmp_path / f"full-{fail_at}")
        shutil.copytree(base.data_dir, settings.data_dir)
        ix = indexer(settings)
        disk.writes, disk.fail_at = 0, fail_at
        try:
            ix.sync(after, prune=True, progress=False)
        except IndexWriteError as e:
            points += 1
            message = str(e)
        else:
            break  # every write point was tried
        disk.fail_at = 0
        assert "\n" not in message and "Traceback" not in message
        assert message.startswith(f"cannot write the index: {error}; "), message
        kept = re.search(
            r"; (\d) of 3 new or changed articles were committed(?: \(([^)]*)\))?", message
        )
        assert kept, message
        committed = kept.group(2).split(", ") if kept.group(2) else []
        assert len(committed) == int(kept.group(1))
        assert "and 1 were unchanged" in message
        left = [a.article_id for a in after[1:] if a.article_id not in committed]
        if left:
            assert f"the next run of the same ingest completes {', '.join(left)}" in message
        # What the message calls committed is shown whole in its new version; the rest is
        # shown whole in its old one, or not at all.
        store = ChromaStore.open(settings, ix.embedder.model_id)
        assert shown(store, "a1") == clean_chunks(small, [after[0]])
        for a in after[1:]:
            if a.article_id in committed:
                assert shown(store, a.article_id) == clean_chunks(small, [a])
            else:
                old = [b for b in before if b.article_id == a.article_id]
                assert shown(store, a.article_id) in (set(), clean_chunks(small, old))
        indexer(settings).sync(after, prune=True, progress=False)
        assert stored(store) == sorted(clean_chunks(small, after)), f"full at write {fail_at}"
        assert_lexical_matches(settings, store)
        fail_at += 1
    print(f"the disk filled up at each of {points} writes")
    assert points >= 10


@pytest.mark.parametrize("backend", ["fts5", "bm25s"])
def test_a_full_disk_while_saving_the_search_files_says_the_articles_are_kept(
    small: Settings, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    from rag.lexical_fts import FtsIndex

    small = small.replace(lexical=backend)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    def sqlite_full(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(LexicalIndex, "save", full)
        patched.setattr(FtsIndex, "_insert", sqlite_full)
        with pytest.raises(IndexWriteError) as stopped:
            indexer(small).sync([article("a1")], progress=False)
    message = str(stopped.value)
    cause = "No space left on device" if backend == "bm25s" else "database or disk is full"
    assert f"{cause}; every article is stored and committed" in message
    assert "\n" not in message
    store = indexer(small).store
    assert shown(store) == clean_chunks(small, [article("a1")])
    report = indexer(small).sync([article("a1")], progress=False)
    assert report.articles_unchanged == 1
    assert_lexical_matches(small, store)
