"""The writer lease of a shared store (issue 9, item 7): one writer at a time across processes
that do not share a data dir, a dead holder's lease taken over, a lost lease stopping a write.

The lease is a Chroma collection created under one name; creating it is the same call for a
local Chroma as for a server, so these tests use a real local Chroma in ``tmp_path`` (several
handles on one path stand for several processes). The indexer's part is tested on a local
store that says it is shared; the real two-process topology, through ``chroma run``, is in
``tests/test_scale_out.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import rag.index
from rag.config import Settings
from rag.embed import Vectors, create_embedder
from rag.errors import IndexLockedError, SettingsError
from rag.index import Indexer
from rag.schema import Article
from rag.stores.chroma import ChromaStore, WriterLease

PARAGRAPHS = [
    f"Paragraph {i} of the harbour story: the port authority approved berth {i} after a long"
    " hearing that ran late into the evening and ended with a narrow vote."
    for i in range(6)
]


def article(article_id: str = "a1", edit: str = "") -> Article:
    text = "\n\n".join(p + edit for p in PARAGRAPHS)
    return Article(article_id, f"Title {article_id}", text, source=article_id)


@pytest.fixture
def small(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(rag.index, "_EMBED_BATCH", 2)
    return settings.replace(chunk_chars=200)


def open_store(settings: Settings) -> ChromaStore:
    return ChromaStore.open(settings, create_embedder(settings).model_id)


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local stores that say they are a server's, so that the indexer takes the lease."""
    monkeypatch.setattr(ChromaStore, "shared", property(lambda self: True))


def test_a_free_lease_is_taken_renewed_and_released(settings: Settings) -> None:
    store = open_store(settings)
    assert store.lease_record() is None
    with store.take_lease(holder="host-a:1:x") as lease:
        record = store.lease_record()
        assert record is not None and record.holder == "host-a:1:x"
        assert record.expires_at > time.time()
        lease.renew()
        renewed = store.lease_record()
        assert renewed is not None and renewed.expires_at >= record.expires_at
        lease.check()  # still ours: no error
    assert store.lease_record() is None


def test_a_second_writer_waits_a_bounded_time_then_is_told_who_holds_the_lease(
    settings: Settings,
) -> None:
    holder, other = open_store(settings), open_store(settings)
    with holder.take_lease(holder="host-a:1:x"):
        started = time.monotonic()
        with pytest.raises(IndexLockedError) as refused:
            other.take_lease(wait_s=0.5, holder="host-b:2:y")
        assert time.monotonic() - started >= 0.5
        message = str(refused.value)
        assert message.startswith("another process is writing the index (holder host-a:1:x")
        assert "until 20" in message and "UTC; waited 0.5 s" in message
        assert "\n" not in message
        with pytest.raises(IndexLockedError, match=r"host-a:1:x, until [^;]*\); try again"):
            other.take_lease(wait_s=0)  # told not to wait: fails at once
    with other.take_lease(wait_s=0, holder="host-b:2:y"):  # released: free again
        record = other.lease_record()
        assert record is not None and record.holder == "host-b:2:y"


def test_a_waiting_writer_gets_the_lease_once_it_is_released(settings: Settings) -> None:
    holder, waiter = open_store(settings), open_store(settings)
    lease = holder.take_lease(holder="first")
    releaser = threading.Timer(0.5, lease.release)
    releaser.start()
    try:
        with waiter.take_lease(wait_s=30, holder="second"):
            record = waiter.lease_record()
            assert record is not None and record.holder == "second"
    finally:
        releaser.join()


def test_a_crashed_holders_lease_expires_and_is_taken_over(settings: Settings) -> None:
    crashed_store, taker_store = open_store(settings), open_store(settings)
    crashed = crashed_store.take_lease(ttl_s=1.0, holder="host-a:1:dead")
    _stop_renewing(crashed)  # as if the process had been killed
    with pytest.raises(IndexLockedError, match="host-a:1:dead"):
        taker_store.take_lease(wait_s=0)  # not expired yet
    time.sleep(1.1)
    # Were the old holder only stalled, it would stop before its next write...
    with pytest.raises(IndexLockedError, match=r"lost the index's writer lease \(not renewed"):
        crashed.check()
    with taker_store.take_lease(wait_s=5, holder="host-b:2:alive") as taken:
        record = taker_store.lease_record()
        assert record is not None and record.holder == "host-b:2:alive"
        crashed.renew()  # ...and neither its renewal nor its release touch the new lease
        crashed.release()
        assert taker_store.lease_record() == record
        taken.check()
    assert taker_store.lease_record() is None


def test_a_lease_taken_over_while_held_is_noticed_by_its_renewal(settings: Settings) -> None:
    store, other = open_store(settings), open_store(settings)
    lease = store.take_lease(ttl_s=30, holder="slow")
    _stop_renewing(lease)
    _force_expiry(other)
    with other.take_lease(wait_s=0, holder="taker"):
        lease.renew()  # what its renewal thread would do next
        with pytest.raises(IndexLockedError, match=r"lost .*taken over by taker"):
            lease.check()


def test_a_damaged_lease_is_taken_over_rather_than_blocking_every_writer(
    settings: Settings,
) -> None:
    store = open_store(settings)
    store._client.create_collection("articles.lease", embedding_function=None)  # no metadata
    with store.take_lease(wait_s=0, holder="repairer"):
        record = store.lease_record()
        assert record is not None and record.holder == "repairer"


def test_of_writers_that_try_at_once_exactly_one_gets_the_lease(settings: Settings) -> None:
    stores = [open_store(settings) for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[WriterLease] = []
    refused: list[str] = []

    def take(store: ChromaStore, name: str) -> None:
        start.wait(10)
        try:
            won.append(store.take_lease(wait_s=0, holder=name))
        except IndexLockedError as e:
            refused.append(str(e))

    for attempt in range(5):
        won.clear()
        refused.clear()
        threads = [
            threading.Thread(target=take, args=(s, f"writer-{attempt}-{i}"))
            for i, s in enumerate(stores)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(won) == 1 and len(refused) == len(stores) - 1, (won, refused)
        assert all(won[0].record.holder in message for message in refused)
        won[0].release()


# -- the indexer under the lease ---------------------------------------------------------------


class HookedEmbedder:
    """The fake embedder, calling ``hook`` before its ``at``-th call."""

    def __init__(self, settings: Settings, at: int = 0, hook: Any = None) -> None:
        self._inner = create_embedder(settings)
        self.at, self.hook, self.calls = at, hook, 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        if self.calls == self.at and self.hook is not None:
            self.hook()
        return self._inner.embed(texts)


def test_a_shared_store_is_written_under_the_lease(small: Settings, shared: None) -> None:
    store = open_store(small)
    seen: list[str] = []
    embedder = HookedEmbedder(small, 2, lambda: seen.append(_holder(store)))
    report = Indexer(small, embedder, store).sync([article()], progress=False)
    assert report.articles_added == 1
    assert seen and seen[0].split(":")[1].isdigit()  # host:pid:random, held while writing
    assert store.lease_record() is None  # released at the end
    Indexer(small, embedder, store).remove(["a1"])
    assert store.lease_record() is None and store.count() == 0


def test_a_writer_that_finds_the_lease_held_writes_nothing(small: Settings, shared: None) -> None:
    store = open_store(small)
    Indexer(small, create_embedder(small), store).sync([article()], progress=False)
    version = store.index_version
    other = open_store(small)
    with other.take_lease(holder="api-2:77:abc"):
        ix = Indexer(small, create_embedder(small), store, lease_wait_s=0)
        with pytest.raises(IndexLockedError, match=r"holder api-2:77:abc"):
            ix.sync([article("a1", " Edited.")], progress=False)
        with pytest.raises(IndexLockedError, match=r"holder api-2:77:abc"):
            ix.remove(["a1"])
    assert store.index_version == version
    assert {c.metadata["article_hash"] for c in store.iter_chunks(include_uncommitted=True)} == {
        article().content_hash
    }


def test_a_writer_whose_lease_is_taken_over_stops_before_its_next_write(
    small: Settings, shared: None
) -> None:
    store, other = open_store(small), open_store(small)
    Indexer(small, create_embedder(small), store).sync([article("a0")], progress=False)
    taken: list[WriterLease] = []

    def take_over() -> None:  # as a writer would once this one's lease had expired
        _force_expiry(other)
        taken.append(other.take_lease(wait_s=0, holder="taker"))
        time.sleep(1.2)  # the renewal thread (every 0.5 s) finds the lease gone

    embedder = HookedEmbedder(small, 2, take_over)
    ix = Indexer(small, embedder, store, lease_ttl_s=3)
    with pytest.raises(IndexLockedError) as stopped:
        ix.sync([article("a0"), article("a1"), article("a2")], progress=False)
    message = str(stopped.value)
    assert "lost the index's writer lease (taken over by taker)" in message
    assert "0 of 2 new or changed articles were committed and 1 were unchanged" in message
    assert "completes a1, a2" in message
    assert {c.metadata["article_id"] for c in store.iter_chunks()} == {"a0"}  # nothing half
    assert _holder(store) == "taker"  # its lease was left alone
    taken[0].release()
    report = Indexer(small, create_embedder(small), store).sync(
        [article("a0"), article("a1"), article("a2")], progress=False
    )
    assert report.articles_added == 2 and report.articles_unchanged == 1


def test_lease_settings_are_checked(small: Settings) -> None:
    store = open_store(small)
    with pytest.raises(SettingsError, match="lease_ttl_s must be greater than 0, got 0"):
        Indexer(small, create_embedder(small), store, lease_ttl_s=0)
    with pytest.raises(SettingsError, match="lease_wait_s must be 0 or more, got -1"):
        Indexer(small, create_embedder(small), store, lease_wait_s=-1)


def _stop_renewing(lease: WriterLease) -> None:
    lease._stop.set()
    lease._thread.join(5)


def _force_expiry(store: ChromaStore) -> None:
    """Make the lease held now look expired, as if its holder had stopped renewing it."""
    held = store._client.get_collection("articles.lease", embedding_function=None)
    held.modify(metadata={**(held.metadata or {}), "expires_at": time.time() - 1})


def _holder(store: ChromaStore) -> str:
    record = store.lease_record()
    return record.holder if record else ""
