"""The store seam (``rag.store``: the protocol, its registry, neutral filters) and the Chroma
store behind it (``rag.stores.chroma``): readers are shown only committed versions of articles,
and filters mean the same in Chroma's dialect as ``SearchFilters.accepts`` says.

Real Chroma in a temporary directory, vectors from the deterministic fake embedder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed import create_embedder
from rag.errors import IndexWriteError, ProviderError
from rag.schema import Chunk
from rag.store import CommitRecord, SearchFilters, available_stores, is_shown, open_store
from rag.stores.chroma import ChromaStore, chroma_where
from tests.conftest import unrelated_texts


def stored_chunk(article_id: str, article_hash: str, text: str, index: int = 0) -> Chunk:
    metadata = {"article_id": article_id, "article_hash": article_hash, "index": index}
    return Chunk(
        f"{article_id}-{article_hash}-{index}", article_id, text, 0, len(text), index, metadata
    )


@pytest.fixture
def store(settings: Settings) -> ChromaStore:
    return ChromaStore.open(settings, create_embedder(settings).model_id)


def add(settings: Settings, store: ChromaStore, chunks: list[Chunk]) -> None:
    vectors = create_embedder(settings).embed([c.text for c in chunks])
    store.add(chunks, np.asarray(vectors, dtype=np.float32))


def query_ids(settings: Settings, store: ChromaStore, text: str, k: int) -> list[str]:
    vector = create_embedder(settings).embed([text])[0]
    return [h.chunk.chunk_id for h in store.query(vector, k)]


def test_the_rule() -> None:
    assert is_shown("h1", None)  # no record: stored before records existed
    assert is_shown("h1", "h1")
    assert not is_shown("h1", "h2")
    assert not is_shown("h1", "")  # a record of "" shows no version


def test_a_store_without_records_shows_everything(settings: Settings, store: ChromaStore) -> None:
    add(settings, store, [stored_chunk("a", "h1", "budget vote"), stored_chunk("b", "h9", "x")])
    assert store.commit_records() == {}
    assert {c.chunk_id for c in store.iter_chunks()} == {"a-h1-0", "b-h9-0"}
    assert query_ids(settings, store, "budget vote", 2)[0] == "a-h1-0"


def test_only_the_committed_version_of_an_article_is_shown(
    settings: Settings, store: ChromaStore
) -> None:
    old = [stored_chunk("a", "h1", f"budget vote part {i}", i) for i in range(3)]
    new = [stored_chunk("a", "h2", f"budget vote revised {i}", i) for i in range(3)]
    add(settings, store, [*old, *new, stored_chunk("b", "hb", "weather report")])
    store.write_commit_records([CommitRecord("a", "h1", 3, pending="h2")])

    shown = {c.chunk_id for c in store.iter_chunks()}
    assert shown == {c.chunk_id for c in old} | {"b-hb-0"}  # b has no record: shown as stored
    everything = {c.chunk_id for c in store.iter_chunks(include_uncommitted=True)}
    assert everything == shown | {c.chunk_id for c in new}
    assert set(store.chunks_by_article()["a"]) == {c.chunk_id for c in old}
    assert set(store.chunks_by_article(include_uncommitted=True)["a"]) == {
        c.chunk_id for c in [*old, *new]
    }
    # The nearest chunks are the hidden new ones: the search goes deeper for shown ones.
    hits = query_ids(settings, store, "budget vote revised", 3)
    assert set(hits) == {c.chunk_id for c in old}

    store.write_commit_records([CommitRecord("a", "h2", 3)])
    assert set(query_ids(settings, store, "budget vote", 3)) == {c.chunk_id for c in new}
    assert store.committed() == {"a": "h2"}
    assert store.commit_records(["a", "zzz"]) == {"a": CommitRecord("a", "h2", 3)}

    store.write_commit_records([CommitRecord("a", "", 0)])
    assert query_ids(settings, store, "budget vote", 3) == ["b-hb-0"]
    assert {c.chunk_id for c in store.iter_chunks(SearchFilters(article_ids=("a",)))} == set()


def test_a_reader_sees_records_written_by_another_handle(settings: Settings) -> None:
    model_id = create_embedder(settings).model_id
    reader = ChromaStore.open(settings, model_id)
    writer = ChromaStore.open(settings, model_id)
    add(settings, writer, [stored_chunk("a", "h1", "budget vote")])
    assert len(list(reader.iter_chunks())) == 1  # no records yet (the reader looked for them)
    writer.write_commit_records([CommitRecord("a", "", 0, pending="h1")])
    assert list(reader.iter_chunks()) == []


def test_commit_records_are_deleted_by_id(settings: Settings, store: ChromaStore) -> None:
    store.delete_commit_records(["a"])  # no collection yet: nothing to do
    store.write_commit_records([CommitRecord("a", "h", 1), CommitRecord("b", "h", 2)])
    store.delete_commit_records(["a", "missing"])
    assert set(store.commit_records()) == {"b"}


def test_a_write_the_store_refuses_is_one_line_and_a_bug_keeps_its_type(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    refusals: list[Exception] = [
        InternalError("database or disk is full\nat segment writer"),  # local Chroma
        OSError(28, "No space left on device"),
        Exception('{"error":"InternalError","message":"disk full"}'),  # a server's 500
    ]
    for refusal in refusals:

        def refuse(*args: object, error: Exception = refusal, **kwargs: object) -> None:
            raise error

        monkeypatch.setattr(Collection, "upsert", refuse)
        with pytest.raises(IndexWriteError) as refused:
            add(settings, store, [stored_chunk("a", "h1", "budget vote")])
        assert str(refused.value).startswith("cannot write the index: ")
        assert "\n" not in str(refused.value) and refused.value.__cause__ is refusal

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("unexpected keyword")

    monkeypatch.setattr(Collection, "upsert", bug)
    with pytest.raises(TypeError, match="unexpected keyword"):
        store.write_commit_records([CommitRecord("a", "h1", 1)])


# --- the seam ------------------------------------------------------------------------------------


def test_stores_are_opened_by_name_and_an_unknown_name_says_which_exist(
    settings: Settings,
) -> None:
    assert settings.store == "chroma" and "chroma" in available_stores()
    assert isinstance(open_store(settings, "fake/hash-64"), ChromaStore)
    with pytest.raises(ProviderError, match=r"unknown store 'nosuch'; available: chroma"):
        open_store(settings.replace(store="nosuch"), "fake/hash-64")


def test_filters_become_chromas_where_only_in_its_module() -> None:
    assert chroma_where(None) is None and chroma_where(SearchFilters()) is None
    assert chroma_where(SearchFilters(authors=("Nora Lind",))) == {"author": {"$in": ["Nora Lind"]}}
    assert chroma_where(SearchFilters(publishers=("Reuters",), date_from="2025-06-01")) == {
        "$and": [{"publisher": {"$in": ["Reuters"]}}, {"date_int": {"$gte": 20250601}}]
    }
    # Nothing outside rag/stores/ writes a store's dialect.
    package = Path(__file__).resolve().parent.parent / "rag"
    dialect = ('"$in"', '"$and"', '"$gte"', '"$lte"', "where=")
    writers = [
        f"{path.relative_to(package)}: {word}"
        for path in sorted(package.rglob("*.py"))
        if "stores" not in path.relative_to(package).parts
        for word in dialect
        if word in path.read_text("utf-8")
    ]
    assert writers == []


def _dated(article_id: str, author: str, day: int) -> Chunk:
    metadata = {
        "article_id": article_id,
        "article_hash": "h",
        "index": 0,
        "author": author,
        "publisher": "Gazette",
        "date_int": 20250600 + day,
    }
    text = f"harbour report {article_id}"
    return Chunk(f"{article_id}-0", article_id, text, 0, len(text), 0, metadata)


def test_chroma_reads_with_filters_as_accepts_says(settings: Settings, store: ChromaStore) -> None:
    chunks = [_dated("a", "Nora Lind", 1), _dated("b", "Ola Berg", 5), _dated("c", "Nora Lind", 9)]
    add(settings, store, chunks)
    vector = create_embedder(settings).embed(["harbour report"])[0]
    cases = [
        SearchFilters(authors=("Nora Lind",)),
        SearchFilters(date_from="2025-06-02", date_to="2025-06-09"),
        SearchFilters(authors=("Nora Lind",), date_to="2025-06-05"),
        # More article ids than one of Chroma's `$in` filters takes: read in batches.
        SearchFilters(
            article_ids=("a", "b", *(f"x{n}" for n in range(700))), authors=("Ola Berg",)
        ),
    ]
    for filters in cases:
        expected = {c.chunk_id for c in chunks if filters.accepts(c.metadata)}
        assert {c.chunk_id for c in store.iter_chunks(filters)} == expected, filters
        if len(filters.article_ids) < 500:
            assert {h.chunk.chunk_id for h in store.query(vector, 3, filters)} == expected


def test_exact_search_among_ids_shows_only_committed_versions(
    settings: Settings, store: ChromaStore
) -> None:
    add(
        settings,
        store,
        [
            stored_chunk("a", "h1", "budget vote in the senate"),
            stored_chunk("a", "h2", "budget vote in the senate again"),
            stored_chunk("b", "h9", "rail strike"),
        ],
    )
    store.write_commit_records([CommitRecord("a", "h2", 1)])
    vector = create_embedder(settings).embed(["budget vote"])[0]
    hits = store.query_among(vector, 5, ["a-h1-0", "a-h2-0", "b-h9-0", "missing"])
    assert [h.chunk.chunk_id for h in hits] == ["a-h2-0", "b-h9-0"]
    assert hits[0].similarity > hits[1].similarity


def test_exact_search_among_ids_ranks_by_float16_copies_and_reports_exact_scores(
    settings: Settings, store: ChromaStore
) -> None:
    """Given float16 copies of some vectors (the lexical segment's), the search finds the
    same chunks in the same order as with every vector read, with the exact similarities,
    and with an uncommitted version among the nearest still shows only committed ones."""
    topics = ("budget vote", "rail strike", "harbour storm", "steel tariff", "school meals")
    chunks = [
        stored_chunk(f"a{n}", "h1", f"{topics[n % 5]} report {n} in the senate") for n in range(40)
    ]
    add(settings, store, chunks)
    add(settings, store, [stored_chunk("a0", "h2", "budget vote report again")])
    store.write_commit_records([CommitRecord("a0", "h2", 1)])
    ids = [c.chunk_id for c in chunks] + ["a0-h2-0"]
    copies = {cid: v.astype(np.float16) for cid, v in store.get_vectors(ids[:30]).items()}
    vector = create_embedder(settings).embed(["budget vote in the senate"])[0]
    for k in (1, 5, 12):
        expected = store.query_among(vector, k, ids)
        got = store.query_among(vector, k, ids, copies)
        assert [h.chunk.chunk_id for h in got] == [h.chunk.chunk_id for h in expected]
        assert [h.similarity for h in got] == pytest.approx([h.similarity for h in expected])
        assert "a0-h1-0" not in {h.chunk.chunk_id for h in got}  # not the committed version


def test_a_reload_stops_the_replaced_client_and_every_store_reads_through_the_new(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left running, a replaced client keeps its copy of the vector index in memory (at 1M
    chunks a replica went from 2.2 to 4.2 GB). Every store of the process reads through the
    new one, so the old one is stopped once reads begun on it are done."""
    import threading

    from chromadb.config import System

    import rag.stores.chroma as chroma

    monkeypatch.setattr(chroma, "RETIRE_AFTER_S", 0.0)
    stopped: list[object] = []
    real_stop = System.stop

    def stop(system: System) -> None:
        stopped.append(system)
        real_stop(system)

    monkeypatch.setattr(System, "stop", stop)
    add(settings, store, [stored_chunk("a", "h1", "budget vote")])
    other = ChromaStore.open(settings, create_embedder(settings).model_id)
    old = store._client._system
    other.reload()
    assert other.wait_reloaded(30)
    for timer in [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
        timer.join(10)
    new = store._client._system
    assert old in stopped and new not in stopped  # (other tests' old clients may stop too)
    assert new is other._client._system and new is not old
    assert store.count() == other.count() == 1
    assert list(store.get_vectors(["a-h1-0"])) == ["a-h1-0"]


WRITER = """
import sys
sys.path.insert(0, sys.argv[4])
import conftest  # registers the fake embedder
import numpy as np
from rag.config import Settings
from rag.embed import create_embedder
from rag.schema import Chunk
from rag.store import CommitRecord
from rag.stores.chroma import ChromaStore

settings = Settings(data_dir=sys.argv[1], embedding_provider="fake-hash")
embedder = create_embedder(settings)
store = ChromaStore.open(settings, embedder.model_id)
text = sys.argv[3]
metadata = {"article_id": sys.argv[2], "article_hash": "h1", "index": 0}
chunk = Chunk(f"{sys.argv[2]}-h1-0", sys.argv[2], text, 0, len(text), 0, metadata)
store.add([chunk], np.asarray(embedder.embed([text]), dtype=np.float32))
store.write_commit_records([CommitRecord(sys.argv[2], "h1", 1)])
store.bump_version()
"""


TESTS = str(Path(__file__).parent)


def write_from_another_process(settings: Settings, article_id: str, text: str) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", WRITER, str(settings.data_dir), article_id, text, TESTS],
        check=True,
        timeout=120,
    )


def test_what_another_process_wrote_is_searched_once_a_background_reload_is_done(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedded Chroma loads its vector index once: another process's new chunks have
    records but no vectors here until it loads again. Noticing the new version starts that
    reload in a thread; until it is done, reads go on through the old client (the new
    chunk's vector reads as missing, never as an error), then every read finds it."""
    import threading

    import rag.stores.chroma as chroma

    # Enough chunks that Chroma has moved them from its log into the vector index (which a
    # client loads once; it reads what is still in the log afresh).
    add(settings, store, [stored_chunk("a", "h1", "budget vote in the senate")])
    filler = unrelated_texts(1500)
    add(settings, store, [stored_chunk(f"f{n}", "h1", text) for n, text in enumerate(filler)])
    assert query_ids(settings, store, "budget vote in the senate", 1) == ["a-h1-0"]  # loaded
    store.current_version()
    write_from_another_process(settings, "b", "harbour storm floods the docks")

    may_load = threading.Event()
    loads: list[object] = []
    real_load = chroma._load_vectors

    def held_load(client: object, name: str) -> None:
        loads.append(client)
        may_load.wait(30)
        real_load(client, name)

    monkeypatch.setattr(chroma, "_load_vectors", held_load)
    assert store.get_vectors(["a-h1-0", "b-h1-0"]).keys() == {"a-h1-0"}  # no error meanwhile
    assert store.reloading  # the read that missed began it
    store.current_version()  # the version it is loading: nothing more to do
    assert store.get_vectors(["b-h1-0"]) == {}
    assert "b-h1-0" not in query_ids(settings, store, "harbour storm floods the docks", 2)
    may_load.set()
    assert store.wait_reloaded(30)
    assert not store.reloading
    store.current_version()
    assert not store.reloading and len(loads) == 1  # one load for one change
    assert store.get_vectors(["b-h1-0"]).keys() == {"b-h1-0"}
    assert query_ids(settings, store, "harbour storm floods the docks", 1) == ["b-h1-0"]


def test_this_processs_own_write_starts_no_reload(settings: Settings, store: ChromaStore) -> None:
    other = ChromaStore.open(settings, create_embedder(settings).model_id)
    other.current_version()
    add(settings, store, [stored_chunk("a", "h1", "budget vote")])
    store.bump_version()
    other.current_version()  # a store of the same process, on the same path
    assert not other.reloading
    assert query_ids(settings, other, "budget vote", 1) == ["a-h1-0"]


def test_a_write_of_this_process_during_a_reload_makes_it_load_once_more(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload may have read the index from disk before this process's own write landed:
    the write asks for one more, so the client every store switches to holds it."""
    import threading

    import rag.stores.chroma as chroma

    add(settings, store, [stored_chunk("a", "h1", "budget vote")])
    may_load = threading.Event()
    loads: list[object] = []
    real_load = chroma._load_vectors

    def held_load(client: object, name: str) -> None:
        loads.append(client)
        may_load.wait(30)
        real_load(client, name)

    monkeypatch.setattr(chroma, "_load_vectors", held_load)
    store.reload()
    add(settings, store, [stored_chunk("b", "h1", "harbour storm")])
    store.bump_version()
    may_load.set()
    assert store.wait_reloaded(30)
    assert len(loads) == 2 and store._client is loads[-1]
    assert query_ids(settings, store, "harbour storm", 1) == ["b-h1-0"]


def test_a_reload_begins_only_once_the_client_the_last_one_replaced_is_stopped(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However often another process writes, a process holds at most two copies of the
    vector index: the one it reads and, for ``RETIRE_AFTER_S``, the one it replaced."""
    from chromadb.config import System

    import rag.stores.chroma as chroma

    monkeypatch.setattr(chroma, "RETIRE_AFTER_S", 0.5)
    stopped: list[object] = []
    real_stop = System.stop
    monkeypatch.setattr(System, "stop", lambda system: (stopped.append(system), real_stop(system)))
    add(settings, store, [stored_chunk("a", "h1", "budget vote")])
    first = store._client._system
    store.reload()
    assert store.wait_reloaded(30)
    second = store._client._system
    loads_saw: list[bool] = []
    real_load = chroma._load_vectors
    monkeypatch.setattr(
        chroma,
        "_load_vectors",
        lambda client, name: (loads_saw.append(first in stopped), real_load(client, name)),
    )
    store.reload()  # at once: it waits for the first client's stop
    assert store.wait_reloaded(30)
    assert loads_saw == [True] and store._client._system is not second
    assert query_ids(settings, store, "budget vote", 1) == ["a-h1-0"]


def test_a_stopped_client_is_let_go(
    settings: Settings, store: ChromaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once stopped, nothing of this module holds the replaced client (so what is left of its
    index in memory is freed), and freed memory is handed back to the system after the stop.
    (Other tests' replaced clients may be stopped meanwhile: events are told apart by id.)"""
    import gc
    import weakref

    from chromadb.config import System

    import rag.stores.chroma as chroma

    monkeypatch.setattr(chroma, "RETIRE_AFTER_S", 0.1)
    events: list[object] = []
    real_stop, real_release = System.stop, chroma._release_freed_memory
    monkeypatch.setattr(
        System, "stop", lambda system: (events.append(id(system)), real_stop(system))
    )
    monkeypatch.setattr(
        chroma, "_release_freed_memory", lambda: (events.append("released"), real_release())
    )
    add(settings, store, [stored_chunk("a", "h1", "budget vote")])
    old = store._client._system
    replaced, old_id = weakref.ref(old), id(old)
    del old
    store.reload()
    assert store.wait_reloaded(30)
    chroma._RETIRING[store._identifier].join(30)
    gc.collect()
    assert replaced() is None
    assert "released" in events[events.index(old_id) :]
    assert query_ids(settings, store, "budget vote", 1) == ["a-h1-0"]
