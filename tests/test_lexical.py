"""The lexical index (rag.lexical, rag.lexical_fts) is checked like a record: a damaged copy is
rebuilt, never quoted; the fts5 backend follows the store article by article (adding one article
reads only that article's chunks, counted, not timed), filters inside SQL, and replicas apply
only what changed."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embed import create_embedder
from rag.index import Indexer
from rag.lexical import LexicalIndex, fts_path, open_lexical
from rag.lexical_fts import FtsIndex
from rag.retrieve import SearchFilters
from rag.schema import Article
from rag.store import StoredChunk
from rag.stores.chroma import ChromaStore

TEXT = (
    "In proposals published on June 5, the Commission set out its plan.\n\n"
    "Brussels wants closer ties with India, South Korea and Japan."
)


@pytest.fixture
def built(settings: Settings) -> tuple[Settings, ChromaStore]:
    """An index whose lexical copy is the bm25s backend's."""
    settings = settings.replace(lexical="bm25s")
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    Indexer(settings, embedder, store).sync([Article("eu", "EU plan", TEXT)], progress=False)
    return settings, store


def _texts(index: LexicalIndex) -> str:
    return " ".join(c.text for c in index.chunks)


def _damaged(
    settings: Settings, store: ChromaStore, caplog: pytest.LogCaptureFixture
) -> LexicalIndex:
    """What a reader gets after the damage: the index loaded (or rebuilt) from the store."""
    assert LexicalIndex.load(settings.lexical_dir) is None
    with caplog.at_level(logging.WARNING, logger="rag.lexical"):
        index = LexicalIndex.load_or_build(settings.lexical_dir, store)
    assert any("damaged" in r.message and "rebuilding" in r.message for r in caplog.records)
    assert LexicalIndex.load(settings.lexical_dir) is not None  # saved again, whole
    return index


def test_an_intact_copy_loads(built: tuple[Settings, ChromaStore]) -> None:
    settings, _ = built
    loaded = LexicalIndex.load(settings.lexical_dir)
    assert loaded is not None and "June 5" in _texts(loaded)


def test_an_edited_quote_is_never_loaded_and_the_copy_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    path = settings.lexical_dir / "chunks.jsonl"
    path.write_text(path.read_text("utf-8").replace("June 5", "June 9"), "utf-8")
    index = _damaged(settings, store, caplog)
    assert "June 5" in _texts(index) and "June 9" not in _texts(index)


def test_an_emptied_chunk_file_under_a_matching_manifest_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    (settings.lexical_dir / "chunks.jsonl").write_text("", "utf-8")
    index = _damaged(settings, store, caplog)
    assert len(index.chunks) == store.count() and index.search("Japan India", 3)


def test_a_truncated_bm25_file_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    arrays = sorted((settings.lexical_dir / "bm25").glob("*.npy"))
    arrays[0].write_bytes(arrays[0].read_bytes()[:10])
    index = _damaged(settings, store, caplog)
    assert index.search("Japan India", 3)


def test_a_copy_without_checksums_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    manifest_path: Path = settings.lexical_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    del manifest["sha256"]
    manifest_path.write_text(json.dumps(manifest), "utf-8")
    _damaged(settings, store, caplog)


# -- the fts5 backend ---------------------------------------------------------------------------


def _article(n: int, **fields: str) -> Article:
    return Article(
        f"a{n}",
        f"Report number {n}",
        f"Harbour {n} reopened on Monday after the storm.\n\nPort officials counted {n} ships"
        f" waiting offshore, and the mayor of town {n} thanked the crews.",
        **fields,
    )


@pytest.fixture
def fts(settings: Settings) -> tuple[Settings, ChromaStore, Indexer]:
    assert settings.lexical == "fts5"  # the default
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    indexer = Indexer(settings, embedder, store)
    indexer.sync([Article("eu", "EU plan", TEXT)], progress=False)
    return settings, store, indexer


class CountingReads:
    """Counts the chunks (with text or not) that any code reads from ``ChromaStore``: every
    read of chunks goes through its one paged read, ``_iter_where``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chunks = 0
        real = ChromaStore._iter_where

        def counted(store: ChromaStore, *args: object, **kwargs: object) -> object:
            for chunk in real(store, *args, **kwargs):  # type: ignore[arg-type]
                self.chunks += 1
                yield chunk

        monkeypatch.setattr(ChromaStore, "_iter_where", counted)


def test_adding_one_article_reads_only_that_articles_chunks(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    indexer = Indexer(settings, embedder, store)
    indexer.sync([_article(n) for n in range(40)], progress=False)
    archive = store.count()
    base = _article(99)
    long_text = "\n\n".join(f"{base.text} Paragraph {i} adds detail." for i in range(12))
    new = Article(base.article_id, base.title, long_text, "Nora Lind")
    reads = CountingReads(monkeypatch)
    report = indexer.sync([new], progress=False)
    assert report.articles_added == 1 and report.total_chunks == archive + report.chunks_embedded
    # The index stage reads what is stored of the one article (nothing yet), and the lexical
    # index the new article's chunks once: not the 40 others.
    assert reads.chunks == report.chunks_embedded > 1
    index = open_lexical(settings, store)
    assert isinstance(index, FtsIndex) and index.count() == store.count()
    assert index.search("harbour 99 ships", 1)[0].chunk.metadata["article_id"] == "a99"
    # Replacing and removing one article read only that article too.
    reads.chunks = 0
    changed = Article(new.article_id, new.title, new.text + "\n\nThe storm passed.", "Nora Lind")
    replaced = indexer.sync([changed], progress=False)
    assert 0 < reads.chunks <= 2 * report.chunks_embedded + replaced.chunks_embedded
    reads.chunks = 0
    indexer.remove(["a99"])
    assert reads.chunks == report.chunks_embedded  # what is stored of it, to delete
    assert store.count() == archive
    assert not open_lexical(settings, store).search("storm passed", 5, SearchFilters(("a99",)))


def test_a_replica_applies_only_what_changed(
    fts: tuple[Settings, ChromaStore, Indexer], tmp_path: Path
) -> None:
    """A replica with a data dir of its own follows the shared store's change log."""
    _, store, indexer = fts
    replica = FtsIndex.open(tmp_path / "replica" / "lexical.sqlite", store)
    assert replica.chunks_read == store.count()  # built once, from every chunk
    indexer.sync([_article(1), _article(2)], progress=False)
    indexer.remove(["eu"])
    before = replica.chunks_read
    replica.follow()
    added = sum(1 for c in store.iter_chunks() if c.metadata["article_id"] in ("a1", "a2"))
    assert replica.chunks_read - before == added  # the removed article costs no read
    assert replica.view() == {(c.chunk_id, c.metadata["article_hash"]) for c in store.iter_chunks()}
    assert not replica.search("Japan India", 5)  # the removed article is gone from it too


def test_following_an_article_keeps_copies_of_its_vectors_and_drops_its_old_rows(
    fts: tuple[Settings, ChromaStore, Indexer], tmp_path: Path
) -> None:
    """Rows written as an article is followed keep a float16 copy of their vectors (what a
    replica scores them by while its vector store reloads); a replaced or removed article's
    rows lose theirs; a rebuild, which the segment build follows, keeps none."""
    _, store, indexer = fts
    replica = FtsIndex.open(tmp_path / "replica" / "lexical.sqlite", store)

    def copied() -> set[str]:
        return set(replica.vector_copies([c.chunk_id for c in store.iter_chunks()]))

    assert copied() == set()  # built from every chunk: the segment will read the vectors
    indexer.sync([_article(1), _article(2)], progress=False)
    replica.follow()
    new = {c.chunk_id for c in store.iter_chunks() if c.metadata["article_id"] in ("a1", "a2")}
    assert copied() == new
    exact = store.get_vectors(sorted(new))
    for chunk_id, copy in replica.vector_copies(sorted(new)).items():
        assert abs(float(copy.astype("float32") @ exact[chunk_id]) - 1.0) < 1e-3
    one = _article(1)
    indexer.sync([Article(one.article_id, one.title, one.text + " Again.")], progress=False)
    indexer.remove(["a2"])
    replica.follow()
    now = {c.chunk_id for c in store.iter_chunks() if c.metadata["article_id"] == "a1"}
    assert copied() == now and not now & new
    rows = replica._db().execute("SELECT count(*) FROM row_vectors").fetchone()[0]
    assert rows == len(now)  # the old rows' copies are gone with them


def test_the_row_count_is_read_again_only_once_the_file_changed(
    fts: tuple[Settings, ChromaStore, Indexer], tmp_path: Path
) -> None:
    """Every filtered search asks for the rows held: a second ask of an unchanged file runs
    no ``count(*)``; a write through this connection or another one is counted."""
    _, store, indexer = fts
    path = tmp_path / "replica" / "lexical.sqlite"
    index = FtsIndex.open(path, store)
    other = FtsIndex.open(path, store)
    counts: list[str] = []
    index._db().set_trace_callback(
        lambda sql: counts.append(sql) if sql == "SELECT count(*) FROM chunks" else None
    )
    assert index.count() == store.count()
    assert index.count() == store.count() and len(counts) == 1
    indexer.sync([_article(1)], progress=False)
    index.follow()  # this connection writes
    assert index.count() == store.count() and len(counts) == 2
    indexer.sync([_article(2)], progress=False)
    other.follow()  # another connection writes
    assert index.count() == store.count() and len(counts) == 3
    assert index.count() == store.count() and len(counts) == 3


def test_a_file_that_holds_rows_can_be_rebuilt(
    fts: tuple[Settings, ChromaStore, Indexer], tmp_path: Path
) -> None:
    """Two threads or processes may both find the file behind and rebuild it: the second
    rebuild drops the first one's terms (a contentless FTS5 table refuses a plain DELETE)."""
    _, store, _ = fts
    index = FtsIndex.open(tmp_path / "again" / "lexical.sqlite", store)
    found = [h.chunk.chunk_id for h in index.search("Japan India", 5)]
    index._rebuild(store.index_version, time.time())
    assert [h.chunk.chunk_id for h in index.search("Japan India", 5)] == found
    assert index.count() == store.count()


def test_filters_are_applied_inside_the_index(settings: Settings) -> None:
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    Indexer(settings, embedder, store).sync(
        [
            _article(1, author="Ana Diaz", publisher="Daily", date="2024-01-02"),
            _article(2, author="Nora Lind", publisher="Weekly", date="2025-03-04"),
            _article(3, author="Ana Diaz", publisher="Weekly", date="2025-06-07"),
        ],
        progress=False,
    )
    index = open_lexical(settings, store)

    def found(filters: SearchFilters) -> set[str]:
        return {str(h.chunk.metadata["article_id"]) for h in index.search("harbour", 10, filters)}

    assert found(SearchFilters()) == {"a1", "a2", "a3"}
    assert found(SearchFilters(authors=("Ana Diaz",))) == {"a1", "a3"}
    assert found(SearchFilters(publishers=("Weekly",), date_to="2025-05-01")) == {"a2"}
    assert found(SearchFilters(article_ids=("a3", "zz"), date_from="2025-01-01")) == {"a3"}
    assert found(SearchFilters(date_from="2026-01-01")) == set()
    bm25s = open_lexical(settings.replace(lexical="bm25s"), store)
    for filters in (SearchFilters(authors=("Ana Diaz",)), SearchFilters(date_from="2025-01-01")):
        got = {str(h.chunk.metadata["article_id"]) for h in bm25s.search("harbour", 10, filters)}
        assert got == found(filters)  # the same filters, the same articles, in both backends


def test_an_edited_quote_in_the_fts_file_is_never_returned_and_is_repaired(
    fts: tuple[Settings, ChromaStore, Indexer], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store, _ = fts
    with sqlite3.connect(fts_path(settings)) as db:
        db.execute("UPDATE chunks SET text = replace(text, 'June 5', 'June 9')")
    index = open_lexical(settings, store)
    with caplog.at_level(logging.WARNING, logger="rag.lexical_fts"):
        hits = index.search("proposals published June", 3)
    assert hits and all("June 9" not in h.chunk.text for h in hits)
    assert any("June 5" in h.chunk.text for h in hits)
    assert any("damaged" in r.message and "rebuilding" in r.message for r in caplog.records)
    assert "June 9" not in _texts_of(index.chunks)  # repaired in the file, from the store


def _texts_of(chunks: list[StoredChunk] | object) -> str:
    return " ".join(c.text for c in chunks)  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", [b"", b"not a database, just bytes" * 100])
def test_an_emptied_or_garbled_fts_file_is_rebuilt_with_a_log_line(
    fts: tuple[Settings, ChromaStore, Indexer], caplog: pytest.LogCaptureFixture, damage: bytes
) -> None:
    settings, store, _ = fts
    path = fts_path(settings)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger="rag.lexical_fts"):
        index = open_lexical(settings, store)
    assert any("damaged" in r.message and "rebuilding" in r.message for r in caplog.records)
    assert isinstance(index, FtsIndex) and index.count() == store.count()
    assert index.search("Japan India", 3)


# -- the bm25s copy under concurrent saves and loads ----------------------------------------------


def test_concurrent_saves_and_loads_never_see_half_a_copy(tmp_path: Path) -> None:
    """Two writers save two versions over each other while readers load in a loop: every save
    succeeds and every load returns one whole version (issue 9, load bench: one error)."""
    import threading

    def version(n: int) -> LexicalIndex:
        chunks = [
            StoredChunk(f"v{n}-{i}", f"Harbour {i} reopened in round {n}.", {"article_id": f"a{i}"})
            for i in range(5 + n)
        ]
        return LexicalIndex.build(chunks, f"version-{n}")

    versions = [version(1), version(2)]
    directory = tmp_path / "lexical"
    versions[0].save(directory)
    wanted = {v.version: [c.chunk_id for c in v.chunks] for v in versions}
    failures: list[str] = []
    saving = threading.Event()
    saving.set()

    def write(index: LexicalIndex) -> None:
        try:
            for _ in range(60):
                index.save(directory)
        except Exception as e:  # the failure under test, reported below
            failures.append(f"save: {e!r}")

    def read() -> None:
        while saving.is_set():
            loaded = LexicalIndex.load(directory)
            if loaded is None:
                failures.append("load: no index")
            elif [c.chunk_id for c in loaded.chunks] != wanted.get(loaded.version):
                failures.append(f"load: mixed copy of {loaded.version}")

    writers = [threading.Thread(target=write, args=(v,)) for v in versions]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    saving.clear()
    for thread in readers:
        thread.join()
    assert failures == []
    loaded = LexicalIndex.load(directory)
    assert loaded is not None and loaded.version in wanted
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_dir() and p.parent == tmp_path]
    assert len(leftovers) <= 4, leftovers  # old versions are removed, not piled up


def test_a_copy_saved_before_links_loads_and_is_replaced_by_a_link(tmp_path: Path) -> None:
    import shutil

    index = LexicalIndex.build([StoredChunk("c1", "Harbour reopened.", {"article_id": "a"})], "v1")
    directory = tmp_path / "lexical"
    index.save(directory)
    old_layout = tmp_path / "plain"
    shutil.copytree(directory.resolve(), old_layout)
    directory.unlink()
    old_layout.rename(directory)  # a plain folder, as saves wrote it before
    loaded = LexicalIndex.load(directory)
    assert loaded is not None and loaded.version == "v1"
    LexicalIndex.build(index.chunks, "v2").save(directory)
    reloaded = LexicalIndex.load(directory)
    assert directory.is_symlink() and reloaded is not None and reloaded.version == "v2"
