"""The Chroma vector store (``RAG_STORE=chroma``, the default): chunks, their vectors and
metadata, in a Chroma collection, behind ``rag.store.VectorStore``.

``ChromaStore`` is the only code that talks to Chroma. It stores what the index stage gives
it and answers nearest-neighbour queries; it does not embed, chunk or decide what changed.
Filters arrive as ``rag.store.SearchFilters`` and are turned into Chroma's ``where`` dialect
here only (``chroma_where``); Chroma's limits are handled here only too: records per read and
per write under its batch limit, ids per ``$in`` filter, metadata as flat str/int/float/bool
values (dates compared as ``date_int`` numbers, because its filters compare numbers only).
The collection's own metadata records the embedding model (so vectors from another model are
refused) and an ``index_version`` that changes on every write (so derived indexes, such as
the lexical one, know when to rebuild).

Commit records: beside the chunks, a second collection (``<collection>.commits``) holds one
``CommitRecord`` per article: the content hash of the version readers may see, and its chunk
count. The index stage writes it last, once every chunk of that version is stored, so an
interrupted write is found (and repaired) by the next run. Visibility rule, applied by every
read meant for readers (``query``, ``iter_chunks``, ``chunks_by_article``, and so the lexical
index built from them): a chunk is shown only when its ``article_hash`` is its article's
committed hash; an article without any record (stored before records existed) is shown as
stored. Each read fetches the records of the articles it returns, so none is stale by a
version. ``include_uncommitted=True`` is for the writer. What to write, and in which order, is
decided by ``rag.index``, not here.

Change log: a third collection (``<collection>.changes``) holds, per article, when its commit
record was last written (the writer's clock), written just before the record itself and never
deleted, so a removal stays in it. Derived indexes follow the store with it
(``changed_since``), reading only the articles that changed; reads by article
(``iter_article_chunks``, ``chunks_by_article(article_ids=...)``) cost in proportion to them.

Writer lease: several processes (API servers, each with its own data dir and so its own file
lock) may write one Chroma server's collection. A writer first takes the store's lease
(``take_lease``): it creates the collection ``<collection>.lease``, whose metadata names the
holder (``host:pid:random``), when it took the lease and until when it holds it. Chroma has no
compare-and-set on records, but creating a collection under a name that exists fails on the
server, so of writers that try at the same moment exactly one gets it; the others wait, or
fail with ``IndexLockedError`` naming the holder. A thread renews the lease while it is held,
and it is deleted when released; one left by a process that died expires and is taken over.
A lease is renamed or deleted only through its collection id, never by name, so a late release
or a second take-over can never remove a lease another writer has since taken.

Processes on one local path: an embedded Chroma loads a collection's vector index into
memory once, so a process finds another's new records (they are read from the database) but
not their vectors, and not them in a nearest-neighbour search, until it loads the index again
(3.5-4.6 s at 1M chunks). ``current_version`` notices the change and starts that reload in a
thread (``reload``): searches go on through the old client meanwhile, a read of a vector it
does not hold gives none (the lexical index keeps float16 copies of new chunks' vectors for
those reads), and every store of the process on the path then switches to the new client;
the old one is stopped ``RETIRE_AFTER_S`` later, before any next reload begins (so a process
holds at most two copies of the index, however often others write), and the heap pages it
freed are handed back to the system. A Chroma server has none of this.

Write failures: a write the store refuses (a full disk, the database or the server answering
with an error) is an ``IndexWriteError`` with the cause in one line; an unreachable server is a
``ProviderError``, as for reads. What was kept is for ``rag.index`` to say.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rag.config import IndexSettings
from rag.errors import (
    IndexLockedError,
    IndexNotBuiltError,
    IndexWriteError,
    ProviderError,
    RagError,
)
from rag.schema import Chunk
from rag.store import (
    LEASE_TTL_S,
    LEASE_WAIT_S,
    CommitRecord,
    DenseHit,
    LeaseRecord,
    Metadata,
    SearchFilters,
    StoredChunk,
    article_of,
    date_as_int,
    is_shown_in,
    utc,
)

log = logging.getLogger(__name__)

Where = dict[str, Any]
_IDS_PER_FILTER = 500  # article ids per `$in` filter of a read by article
_PAGE = 5000  # records per read, and per write: under Chroma's batch limit (5461 locally)
_COMMITS = ".commits"  # suffix of the collection holding the commit records
_CHANGES = ".changes"  # suffix of the change log: when each article's record was last written
_LEASE = ".lease"  # suffix of the collection that, while it exists, is the writer lease
_LEASE_RENEWALS = 6  # renewals per time to live: a few may fail before the lease is lost
_LEASE_POLL_S = 0.2  # between tries while another writer holds the lease (plus jitter)
# How far a float16 copy's cosine similarity can be from the float32 one, for unit vectors:
# each component rounds by at most 2^-11 of itself, and sum |q_i v_i| <= |q| |v| = 1 (plus a
# margin for float32 sums and for components below float16's normal range).
FLOAT16_ERROR = 2.0**-11 + 1e-5
# A replaced local client is stopped this long after a reload: longer than any one call that
# began on it (a page of 5,000 records takes about a second; reads that page through a store
# take each page from the client current then). The next reload of the path waits for it, so
# a process holds at most two copies of a vector index however often another one writes.
RETIRE_AFTER_S = 10.0
_OPEN: weakref.WeakSet[ChromaStore] = weakref.WeakSet()  # this process's stores
# Reloads of local paths in progress (by Chroma's identifier of the path), and the version
# this process's client of each path holds (its own writes, what its last reload loaded).
_RELOADS: dict[str, _Reload] = {}
_RETIRING: dict[str, threading.Timer] = {}  # the replaced client's stop, by path
_HELD: dict[str, str] = {}
_RELOADS_LOCK = threading.Lock()


@contextmanager
def _server_errors(url: str) -> Iterator[None]:
    """A Chroma server that cannot be reached (refused, timed out, dropped connection) as a
    ``ProviderError`` (the API answers 503), not as a missing collection or an internal error."""
    import httpx  # what chromadb's HttpClient is built on

    try:
        yield
    except httpx.TransportError as e:
        raise ProviderError(f"cannot reach the Chroma server at {url}: {e}") from e


class _ServerCollection:
    """A collection of a Chroma server whose calls go through ``_server_errors``."""

    def __init__(self, collection: Any, url: str) -> None:
        self._collection = collection
        self._url = url

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._collection, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _server_errors(self._url):
                return value(*args, **kwargs)

        return call


class _Reload:
    """One path's reload in a thread: ``again`` when the path changed once more since it
    began, ``done`` once every store of the process reads through the new client."""

    def __init__(self) -> None:
        self.again = False
        self.version: str | None = None  # the version it loads, once read
        self.done = threading.Event()


def _reload_path(identifier: str, connect: Callable[[], Any], name: str, reload: _Reload) -> None:
    """Connect to the path afresh, load its vector index (Chroma's native code does so
    without holding the GIL: searches go on meanwhile), then switch every store of this
    process on the path to the new client and stop the old one ``RETIRE_AFTER_S`` later.
    Again while the path changed meanwhile, each time once the last replaced client is
    stopped."""
    from chromadb.api.shared_system_client import SharedSystemClient

    while True:
        retiring = _RETIRING.get(identifier)
        if retiring is not None:  # never a third copy of the index in memory
            retiring.join()
        with _RELOADS_LOCK:
            reload.again = False
        # Chroma shares one system per path within a process: ours is dropped from its
        # registry so that connecting again loads the segments from disk.
        old = SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        try:
            client = connect()
        except Exception as e:  # the stores keep reading through the old client
            if old is not None:
                SharedSystemClient._identifier_to_system.setdefault(identifier, old)
            log.warning("could not reload the Chroma index: %s", _first_line(e))
            client = None
        if client is not None:
            version = _version_of(client, name)  # before the load: it holds at least this
            with _RELOADS_LOCK:
                reload.version = version
            _load_vectors(client, name)
            for store in [s for s in list(_OPEN) if s._local and s._identifier == identifier]:
                store._client = client
                store._collection = store._commits = store._changes = None
            if version:
                with _RELOADS_LOCK:
                    _HELD[identifier] = version
            if old is not None:
                # The timer holds the old system only until it is stopped: a Timer keeps its
                # arguments for good, and the last replaced client would live on in it.
                replaced = [old]
                del old
                retire = _RETIRING[identifier] = threading.Timer(
                    RETIRE_AFTER_S, _stop_quietly, (replaced,)
                )
                retire.daemon = True
                retire.start()
        with _RELOADS_LOCK:
            if not reload.again or client is None:
                del _RELOADS[identifier]
                reload.done.set()
                return


def _version_of(client: Any, name: str) -> str | None:
    try:
        collection = client.get_collection(name, embedding_function=None)
    except Exception:  # no collection yet
        return None
    return str((collection.metadata or {}).get("index_version", "")) or None


def _load_vectors(client: Any, name: str) -> None:
    """One nearest-neighbour query, which makes Chroma load the collection's vector index
    (3.5-4.6 s at 1M chunks): done before any reader is switched to ``client``."""
    try:
        collection = client.get_collection(name, embedding_function=None)
        probe = collection.get(limit=1, include=["embeddings"])
        if len(probe["ids"]):
            vector = np.asarray(probe["embeddings"][0], dtype=np.float32)
            collection.query(query_embeddings=[vector.tolist()], n_results=1, include=["distances"])
    except Exception as e:  # no collection yet, or an empty one: the first read loads it
        log.debug("nothing to load before switching Chroma clients: %s", _first_line(e))


def _stop_quietly(replaced: list[Any]) -> None:
    """Stop the Chroma system in ``replaced`` (taken out of it), which no store of this
    process reads through any more, and hand the memory its vector index held back to the
    system (``_release_freed_memory``)."""
    system = replaced.pop()
    try:
        system.stop()
    except Exception as e:  # nothing depends on it any more
        log.warning("could not stop a replaced Chroma client: %s", _first_line(e))
    del system
    _release_freed_memory()


def _release_freed_memory() -> None:
    """Ask glibc to return freed heap pages to the system (``malloc_trim``). A vector index
    is loaded in a reload thread, so in that thread's malloc arena, which glibc does not
    shrink by itself: a 200k-chunk process grew by about 65 MB a reload without this (518 ->
    845 MB over 5), and by about 5 with it (518 -> 583 over 14). A no-op without glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once; None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        trim: Callable[[int], int] = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6"
        ).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


@contextmanager
def _write_errors() -> Iterator[None]:
    """A write the store refused as an ``IndexWriteError`` with its cause in one line: an
    ``OSError`` (no space left), an SQLite error ("database or disk is full"), a Chroma error,
    or the plain ``Exception`` chromadb's HTTP client raises for a server's error answer. Our
    own errors pass, and so do bugs (``TypeError``, ``ValueError``), which keep their trace."""
    try:
        yield
    except RagError:
        raise
    except Exception as e:
        from chromadb.errors import ChromaError

        if isinstance(e, OSError | sqlite3.Error | ChromaError) or type(e) is Exception:
            raise IndexWriteError(f"cannot write the index: {_first_line(e)}") from e
        raise


class WriterLease:
    """This process's hold on a store's writer lease (see the module docstring).

    A daemon thread renews it every sixth of its time to live. ``check`` raises
    ``IndexLockedError`` once the lease may have passed to another writer (it was taken over,
    or it could not be renewed within its time to live), so that a writer stops before it
    writes over another's work. ``release``, or leaving its ``with`` block, gives it up.
    """

    def __init__(
        self,
        client: Any,
        collection: Any,
        record: LeaseRecord,
        ttl_s: float,
        server_url: str,
        sent: float,
    ) -> None:
        """``sent``: ``time.monotonic()`` when the request that created ``collection`` left."""
        self._client = client
        self._collection = collection
        self._name = str(collection.name)
        self._url = server_url
        self.record = record
        self.ttl_s = ttl_s
        self._renewed = sent  # when the last successful renewal (or the creation) was sent
        self._lost = ""  # why the lease is no longer ours; "" while it is
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="rag-writer-lease", daemon=True)
        self._thread.start()

    def __enter__(self) -> WriterLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def check(self) -> None:
        """Raise ``IndexLockedError`` if the lease is no longer certainly this process's.

        It is given up once unrenewed for two thirds of its time to live: the last third is
        a margin for another machine's clock, by which it may look expired sooner.
        """
        unrenewed = time.monotonic() - self._renewed
        if not self._lost and unrenewed > self.ttl_s * 2 / 3:
            self._lost = f"not renewed for {unrenewed:.1f} s"
        if self._lost:
            raise IndexLockedError(
                f"this process lost the index's writer lease ({self._lost}); another process"
                " may be writing the index"
            )

    def renew(self) -> None:
        """Extend the lease by its time to live, unless it has passed to another writer."""
        if self._lost:
            return
        sent = time.monotonic()
        with _server_errors(self._url):
            current = _find_collection(self._client, self._name)
            if current is None or current.id != self._collection.id:
                other = _lease_record(current.metadata) if current is not None else None
                self._lost = f"taken over by {other.holder}" if other else "it was deleted"
                return
            record = replace(self.record, expires_at=time.time() + self.ttl_s)
            self._collection.modify(metadata=_lease_metadata(record))
        self.record = record
        self._renewed = sent

    def release(self) -> None:
        """Give the lease up (once; a lost lease is left to whoever holds it now)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.ttl_s)
        if self._lost:
            return
        self._lost = "released"
        try:
            with _server_errors(self._url):
                _discard(self._client, self._collection, self._name)
        except Exception as e:  # it expires by itself; the write it guarded is done
            log.warning(
                "could not release the index's writer lease (it expires at %s): %s",
                utc(self.record.expires_at),
                _first_line(e),
            )

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl_s / _LEASE_RENEWALS):
            try:
                self.renew()
            except Exception as e:  # tried again; `check` notices when the time to live passes
                log.warning("could not renew the index's writer lease: %s", _first_line(e))
            if self._lost:
                return


class ChromaStore:
    """One Chroma collection holding every chunk of the corpus."""

    def __init__(
        self,
        connect: Callable[[], Any],
        collection_name: str,
        model_id: str,
        *,
        local: bool,
        server_url: str = "",
    ) -> None:
        """``connect`` makes a Chroma client; ``local`` says it is an embedded one, which
        must load its vector index again to search what another process wrote (``reload``);
        ``server_url`` names the server of an HTTP client, for messages."""
        self._connect = connect
        self._server_url = server_url
        self._client = connect()
        _OPEN.add(self)
        self._name = collection_name
        self._model_id = model_id
        self._local = local
        self._collection: Any = None
        self._commits: Any = None
        self._changes: Any = None
        self._seen_version: str | None = None

    @classmethod
    def open(cls, settings: IndexSettings, model_id: str) -> ChromaStore:
        """The store for ``settings``: the Chroma server at ``chroma_url`` when set, else a
        local persistent Chroma under ``data_dir``."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if settings.chroma_url:
            url = urlsplit(settings.chroma_url)
            https = url.scheme == "https"

            def connect_http() -> Any:
                return chromadb.HttpClient(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or (443 if https else 8000),
                    ssl=https,
                    settings=client_settings,
                )

            try:
                return cls(
                    connect_http,
                    settings.collection,
                    model_id,
                    local=False,
                    server_url=settings.chroma_url,
                )
            except Exception as e:
                raise ProviderError(
                    f"cannot reach the Chroma server at {settings.chroma_url}: {e}"
                ) from e

        def connect_local() -> Any:
            return chromadb.PersistentClient(
                path=str(settings.chroma_dir), settings=client_settings
            )

        try:
            settings.chroma_dir.mkdir(parents=True, exist_ok=True)
            return cls(connect_local, settings.collection, model_id, local=True)
        except Exception as e:
            raise ProviderError(
                f"cannot open the Chroma index at {settings.chroma_dir}: {e}"
            ) from e

    # -- collection ---------------------------------------------------------------------------

    def _existing(self) -> Any | None:
        collection = self._collection  # once: a reload may reset it meanwhile
        if collection is None:
            try:
                with _server_errors(self._server_url):
                    found = self._client.get_collection(self._name, embedding_function=None)
            except ProviderError:
                raise  # the server is down: not the same as no collection
            except Exception:  # chromadb raises NotFoundError/ValueError across versions
                return None
            collection = self._guarded(found)
            self._check_model(collection)
            self._collection = collection
        return collection

    def _writable(self) -> Any:
        collection = self._existing()
        if collection is None:
            with _server_errors(self._server_url):
                collection = self._client.get_or_create_collection(
                    self._name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedding_model": self._model_id, "index_version": "empty"},
                    embedding_function=None,
                )
            collection = self._collection = self._guarded(collection)
        return collection

    def _guarded(self, collection: Any) -> Any:
        return collection if self._local else _ServerCollection(collection, self._server_url)

    def built_with(self) -> str:
        """The embedding model id the collection records ("" when there is none yet)."""
        try:
            with _server_errors(self._server_url):
                collection = self._client.get_collection(self._name, embedding_function=None)
        except ProviderError:
            raise
        except Exception:  # chromadb raises NotFoundError/ValueError across versions
            return ""
        return str((collection.metadata or {}).get("embedding_model", ""))

    def _check_model(self, collection: Any) -> None:
        built_with = (collection.metadata or {}).get("embedding_model")
        if built_with and built_with != self._model_id:
            raise ProviderError(
                f"the index was built with embedding model {built_with!r} but {self._model_id!r}"
                " is configured; use the same model or a new --data-dir"
            )

    @property
    def shared(self) -> bool:
        """Other processes may write this store: it is a Chroma server's, not a local one."""
        return not self._local

    def require_built(self) -> None:
        if self.count() == 0:
            raise IndexNotBuiltError("the index is empty: run `rag ingest` first")

    @property
    def index_version(self) -> str:
        """The version this handle last saw (see ``current_version``)."""
        collection = self._existing()
        return str((collection.metadata or {}).get("index_version", "")) if collection else ""

    def current_version(self) -> str:
        """The version as stored now, which another process may have changed.

        An embedded Chroma keeps its vector index in memory: after another process wrote,
        this process finds the new records but neither their vectors nor them in a nearest-
        neighbour search until it loads the index again. That reload (``reload``) runs in
        the background; until it is done, searches read through the old client.
        """
        self._collection = self._commits = self._changes = None
        version = self.index_version
        if self._local and self._seen_version is not None and version != self._seen_version:
            self.reload(version)
        self._seen_version = version
        return version

    def reload(self, version: str | None = None) -> None:
        """Load this local store's vector index afresh from disk, in a thread, then switch
        every store of this process on the same path to it. One reload per path at a time:
        asked for during one, none is added, unless ``version`` (the version to be searched)
        is newer than the one it loads, when it runs once more; none starts when this
        process's client already holds ``version``."""
        if not self._local:
            return
        identifier = self._identifier
        with _RELOADS_LOCK:
            reload = _RELOADS.get(identifier)
            if reload is not None:
                if version is not None and reload.version not in (None, version):
                    reload.again = True
                return
            if version is not None and _HELD.get(identifier) == version:
                return
            reload = _RELOADS[identifier] = _Reload()
        threading.Thread(
            target=_reload_path,
            args=(identifier, self._connect, self._name, reload),
            name="chroma-reload",
            daemon=True,
        ).start()

    def wait_reloaded(self, timeout: float | None = None) -> bool:
        """Wait until no reload of this store's path is in progress; whether none is."""
        with _RELOADS_LOCK:
            reload = _RELOADS.get(self._identifier) if self._local else None
        return reload is None or reload.done.wait(timeout)

    @property
    def reloading(self) -> bool:
        """A reload of this store's path is in progress (see ``reload``)."""
        return self._local and self._identifier in _RELOADS

    @property
    def _identifier(self) -> str:
        from chromadb.api.shared_system_client import SharedSystemClient

        return SharedSystemClient._get_identifier_from_settings(self._client.get_settings())

    def bump_version(self) -> str:
        with _write_errors():
            collection = self._writable()
            version = uuid.uuid4().hex
            metadata = {**(collection.metadata or {}), "index_version": version}
            collection.modify(metadata=metadata)
        self._seen_version = version  # our own write: no need to reload for it
        if self._local:
            identifier = self._identifier
            with _RELOADS_LOCK:
                _HELD[identifier] = version  # nor for this process's other stores
                if identifier in _RELOADS:  # which may have loaded before this write
                    _RELOADS[identifier].again = True
        return version

    def count(self) -> int:
        collection = self._existing()
        return int(collection.count()) if collection else 0

    # -- reads ----------------------------------------------------------------------------------

    def iter_chunks(
        self,
        filters: SearchFilters | None = None,
        with_text: bool = True,
        *,
        include_uncommitted: bool = False,
    ) -> Iterator[StoredChunk]:
        """Every shown chunk (that ``filters`` accept), page by page; with
        ``include_uncommitted``, every stored one, whether its article's version is committed
        or not."""
        if filters is not None and len(filters.article_ids) > _IDS_PER_FILTER:
            rest = SearchFilters(
                authors=filters.authors,
                publishers=filters.publishers,
                date_from=filters.date_from,
                date_to=filters.date_to,
            )
            for chunk in self.iter_article_chunks(
                filters.article_ids, with_text, include_uncommitted=include_uncommitted
            ):
                if rest.accepts(chunk.metadata):
                    yield chunk
            return
        yield from self._iter_where(
            chroma_where(filters), with_text, include_uncommitted=include_uncommitted
        )

    def _iter_where(
        self, where: Where | None, with_text: bool, *, include_uncommitted: bool
    ) -> Iterator[StoredChunk]:
        include = ["metadatas", "documents"] if with_text else ["metadatas"]
        offset = 0
        while True:
            # Each page from the client current now: a reload may replace (and stop) the
            # one the first page came from.
            collection = self._existing()
            if collection is None:
                return
            page = collection.get(where=where, include=include, limit=_PAGE, offset=offset)
            ids = page["ids"]
            documents = page.get("documents") or [""] * len(ids)
            chunks = [
                StoredChunk(chunk_id, text or "", dict(metadata or {}))
                for chunk_id, text, metadata in zip(ids, documents, page["metadatas"], strict=True)
            ]
            yield from chunks if include_uncommitted else self.shown(chunks)
            if len(ids) < _PAGE:
                return
            offset += _PAGE

    def chunks_by_article(
        self,
        *,
        include_uncommitted: bool = False,
        article_ids: Collection[str] | None = None,
    ) -> dict[str, dict[str, Metadata]]:
        """Every shown (or, with ``include_uncommitted``, stored) chunk's metadata, grouped by
        article id, then by chunk id; only those of ``article_ids`` when given."""
        grouped: dict[str, dict[str, Metadata]] = {}
        for chunk in self.iter_article_chunks(
            article_ids, with_text=False, include_uncommitted=include_uncommitted
        ):
            article_id = str(chunk.metadata.get("article_id", ""))
            grouped.setdefault(article_id, {})[chunk.chunk_id] = chunk.metadata
        return grouped

    def iter_article_chunks(
        self,
        article_ids: Collection[str] | None,
        with_text: bool = True,
        *,
        include_uncommitted: bool = False,
    ) -> Iterator[StoredChunk]:
        """``iter_chunks`` of the articles ``article_ids`` only (of all when None): a read in
        proportion to those articles, not to the store."""
        if article_ids is None:
            yield from self.iter_chunks(
                with_text=with_text, include_uncommitted=include_uncommitted
            )
            return
        wanted = sorted(set(article_ids))
        for start in range(0, len(wanted), _IDS_PER_FILTER):
            batch = wanted[start : start + _IDS_PER_FILTER]
            where: Where = {"article_id": {"$in": batch}}
            yield from self._iter_where(
                where, with_text=with_text, include_uncommitted=include_uncommitted
            )

    def get_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of ``chunk_ids`` that the store holds and can read now (see
        ``_get_fresh``)."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(chunk_ids), _PAGE):
            page = self._get_fresh(list(chunk_ids[start : start + _PAGE]), ["embeddings"])
            found.update(
                (cid, np.asarray(vec, dtype=np.float32))
                for cid, vec in zip(page["ids"], page["embeddings"], strict=True)
                if vec is not None
            )
        return found

    def _get_fresh(self, chunk_ids: list[str], include: list[str]) -> dict[str, Any]:
        """``collection.get`` by ids. An embedded Chroma whose vector index predates another
        process's write finds the records of the ids that process just added (the lexical
        index, which follows the store's change log, already holds them) but not their
        vectors: a reload begins in the background, and meanwhile those ids' vectors are
        ``None`` (their readers use the lexical index's copies, or go without)."""
        collection = self._existing()
        if collection is None or not chunk_ids:
            return {name: [] for name in ("ids", "embeddings", "metadatas", "documents")}
        try:
            return dict(collection.get(ids=chunk_ids, include=include))
        except Exception as e:  # chromadb.errors.InternalError: "Error finding id"
            if not self._local or "finding id" not in str(e) or "embeddings" not in include:
                raise
        self.reload()
        rest = [name for name in include if name != "embeddings"]
        page = dict(collection.get(ids=chunk_ids, include=rest or ["metadatas"]))
        page["embeddings"] = [self._vector_now(collection, cid) for cid in page["ids"]]
        return page

    @staticmethod
    def _vector_now(collection: Any, chunk_id: str) -> Any:
        try:
            return collection.get(ids=[chunk_id], include=["embeddings"])["embeddings"][0]
        except Exception as e:
            if "finding id" not in str(e):
                raise
            return None

    def query_kept(
        self,
        vector: np.ndarray,
        k: int,
        depth: int,
        keep: Callable[[Sequence[str]], Collection[str]],
    ) -> list[DenseHit] | None:
        """The nearest ``depth`` by ids and distances only (Chroma's records cost about
        150 us each to read), ``keep`` applied to the ids, then the records of the kept."""
        collection = self._existing()
        if collection is None or k <= 0:
            return []
        depth = min(depth, self.count())
        result = collection.query(
            query_embeddings=[vector.tolist()], n_results=depth, include=["distances"]
        )
        ids, distances = result["ids"][0], result["distances"][0]
        kept = keep(ids)
        similarity = {
            cid: 1.0 - float(d) for cid, d in zip(ids, distances, strict=True) if cid in kept
        }
        wanted = list(similarity)  # nearest first
        if len(wanted) < k:
            return None
        shown = self._shown_nearest(wanted, similarity, k)
        return shown if len(shown) >= k else None

    def query_among(
        self,
        vector: np.ndarray,
        k: int,
        chunk_ids: Sequence[str],
        approximate: Mapping[str, np.ndarray] | None = None,
    ) -> list[DenseHit]:
        """The ``k`` shown chunks of ``chunk_ids`` nearest to ``vector``, compared exactly:
        the vectors ``approximate`` does not give are read by id (about 50 us each locally);
        those it gives (float16, each similarity within ``FLOAT16_ERROR`` of the exact one)
        rank the rest, and every chunk that could be among the ``k`` nearest is read with its
        record and vector and ranked by its exact similarity (``_shown_nearest``)."""
        if k <= 0 or not chunk_ids:
            return []
        query = np.asarray(vector, np.float32)
        given = {cid: v for cid, v in (approximate or {}).items() if v.shape == query.shape}
        vectors = self.get_vectors([cid for cid in chunk_ids if cid not in given])
        ids = [*vectors, *(cid for cid in chunk_ids if cid in given)]
        if not ids:
            return []
        rows = [vectors[cid] if cid in vectors else given[cid] for cid in ids]
        similarity = np.stack(rows).astype(np.float32) @ query
        order = [ids[int(i)] for i in np.argsort(-similarity, kind="stable")]
        score = dict(zip(ids, similarity.tolist(), strict=True))
        slack = FLOAT16_ERROR if len(ids) > len(vectors) else 0.0
        return self._shown_nearest(order, score, k, query if slack else None, slack)

    def _shown_nearest(
        self,
        ranked: Sequence[str],
        similarity: Mapping[str, float],
        k: int,
        query: np.ndarray | None = None,
        slack: float = 0.0,
    ) -> list[DenseHit]:
        """The first ``k`` shown chunks of ``ranked`` (nearest first), reading their records
        ``k`` at a time: only the winners' records are read. With a ``query``, the scores of
        ``ranked`` are estimates within ``slack`` of the truth: each read takes every chunk
        within ``2 * slack`` of its last one too, with vectors, and the shown are ranked by
        their exact similarity."""
        shown: list[DenseHit] = []
        include = ["metadatas", "documents"] + (["embeddings"] if query is not None else [])
        start = 0
        while start < len(ranked) and len(shown) < k:
            end = min(start + k, len(ranked))
            if query is not None:
                floor = similarity[ranked[end - 1]] - 2 * slack
                while end < len(ranked) and similarity[ranked[end]] >= floor:
                    end += 1
            batch = list(ranked[start:end])
            start = end
            page = self._get_fresh(batch, include)
            exact = {cid: similarity[cid] for cid in batch}
            if query is not None:
                exact.update(
                    (cid, float(np.dot(np.asarray(vec, np.float32), query)))
                    for cid, vec in zip(page["ids"], page["embeddings"], strict=True)
                    if vec is not None  # not readable until a reload: the copy's estimate
                )
            records = {
                cid: StoredChunk(cid, text or "", dict(meta or {}))
                for cid, text, meta in zip(
                    page["ids"], page["documents"], page["metadatas"], strict=True
                )
            }
            hits = [DenseHit(records[cid], exact[cid]) for cid in batch if cid in records]
            committed = self.committed({article_of(h.chunk) for h in hits})
            shown.extend(h for h in hits if is_shown_in(h.chunk, committed))
        if query is not None:
            shown.sort(key=lambda h: -h.similarity)
        return shown[:k]

    def query(
        self, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[DenseHit]:
        """The ``k`` shown chunks nearest to ``vector`` (that ``filters`` accept).

        Chunks of uncommitted versions are dropped after the search, so when some are among
        the nearest, the search is repeated deeper until ``k`` shown ones are found.
        """
        collection = self._existing()
        if collection is None or k <= 0:
            return []
        where = chroma_where(filters)
        fetch = k
        while True:
            result = collection.query(
                query_embeddings=[vector.tolist()],
                n_results=fetch,
                where=where,
                include=["metadatas", "documents", "distances"],
            )
            hits = [
                DenseHit(StoredChunk(cid, text or "", dict(meta or {})), 1.0 - float(distance))
                for cid, text, meta, distance in zip(
                    result["ids"][0],
                    result["documents"][0],
                    result["metadatas"][0],
                    result["distances"][0],
                    strict=True,
                )
            ]
            committed = self.committed({article_of(h.chunk) for h in hits})
            shown = [h for h in hits if is_shown_in(h.chunk, committed)]
            if len(shown) >= k or len(hits) < fetch:
                return shown[:k]
            deeper = min(fetch * 4, self.count())
            if deeper <= fetch:
                return shown[:k]
            fetch = deeper

    # -- commit records ---------------------------------------------------------------------------

    def _commit_collection(self, create: bool = False) -> Any | None:
        # None: a store written before commit records, or none written yet.
        return self._side_collection("_commits", _COMMITS, create)

    def _side_collection(self, attribute: str, suffix: str, create: bool) -> Any | None:
        """The store's collection ``<name><suffix>`` (commit records, the change log), cached
        in ``attribute``; None while it does not exist. A missing collection is looked up
        again on the next call (well under a millisecond), so a reader sees the first records
        as soon as a writer makes them."""
        cached = getattr(self, attribute)
        if cached is None:
            name = self._name + suffix
            try:
                with _server_errors(self._server_url):
                    if create:
                        found = self._client.get_or_create_collection(name, embedding_function=None)
                    else:
                        found = self._client.get_collection(name, embedding_function=None)
            except ProviderError:
                raise
            except Exception:  # not there yet
                return None
            cached = self._guarded(found)
            setattr(self, attribute, cached)
        return cached

    def commit_records(self, article_ids: Collection[str] | None = None) -> dict[str, CommitRecord]:
        """The commit record of each of ``article_ids`` that has one (of every article when
        None), by article id."""
        collection = self._commit_collection()
        if collection is None or (article_ids is not None and not article_ids):
            return {}
        pages: list[dict[str, Any]] = []
        if article_ids is None:
            offset = 0
            while True:
                pages.append(collection.get(include=["metadatas"], limit=_PAGE, offset=offset))
                if len(pages[-1]["ids"]) < _PAGE:
                    break
                offset += _PAGE
        else:
            wanted = list(article_ids)
            for start in range(0, len(wanted), _PAGE):
                pages.append(
                    collection.get(ids=wanted[start : start + _PAGE], include=["metadatas"])
                )
        records: dict[str, CommitRecord] = {}
        for page in pages:
            for article_id, meta in zip(page["ids"], page["metadatas"], strict=True):
                meta = meta or {}
                records[article_id] = CommitRecord(
                    article_id,
                    str(meta.get("article_hash", "")),
                    int(meta.get("chunks", 0) or 0),
                    str(meta.get("pending", "")),
                )
        return records

    def committed(self, article_ids: Collection[str] | None = None) -> dict[str, str]:
        """The committed content hash of each of ``article_ids`` that has a record ("" when
        none of its versions may be shown)."""
        return {a: r.article_hash for a, r in self.commit_records(article_ids).items()}

    def shown(self, chunks: Sequence[StoredChunk]) -> list[StoredChunk]:
        """``chunks`` less those of versions that are not committed (see the module's rule)."""
        committed = self.committed({article_of(c) for c in chunks})
        return [c for c in chunks if is_shown_in(c, committed)]

    # -- writes ---------------------------------------------------------------------------------

    def write_commit_records(self, records: Sequence[CommitRecord]) -> None:
        if not records:
            return
        with _write_errors():
            # The change log first: an entry whose record has not landed yet is looked at
            # again by the next reader to follow (see ``changed_since``); a record that is
            # not in the log would be missed.
            log = self._change_collection(create=True)
            assert log is not None  # made if missing
            written_at = time.time()
            for start in range(0, len(records), _PAGE):
                page = records[start : start + _PAGE]
                log.upsert(
                    ids=[r.article_id for r in page],
                    embeddings=np.ones((len(page), 1), dtype=np.float32),
                    metadatas=[{"written_at": written_at} for _ in page],
                )
            collection = self._commit_collection(create=True)
            assert collection is not None  # made if missing
            for start in range(0, len(records), _PAGE):
                page = records[start : start + _PAGE]
                collection.upsert(
                    ids=[r.article_id for r in page],
                    # Chroma keeps a vector with every record; these are never searched.
                    embeddings=np.ones((len(page), 1), dtype=np.float32),
                    metadatas=[
                        {"article_hash": r.article_hash, "chunks": r.chunks, "pending": r.pending}
                        for r in page
                    ],
                )

    def changed_since(self, since: float) -> dict[str, float] | None:
        """The articles whose commit record was written at or after ``since`` (Unix seconds,
        the writer's clock), with when; None when the store keeps no change log (written
        before it existed). Derived indexes follow the store with it, article by article;
        records that were deleted stay in the log, so a removal is never missed."""
        collection = self._change_collection()
        if collection is None:
            return None
        changed: dict[str, float] = {}
        offset = 0
        while True:
            page = collection.get(
                where={"written_at": {"$gte": since}},
                include=["metadatas"],
                limit=_PAGE,
                offset=offset,
            )
            for article_id, meta in zip(page["ids"], page["metadatas"], strict=True):
                changed[article_id] = float((meta or {}).get("written_at", 0.0) or 0.0)
            if len(page["ids"]) < _PAGE:
                return changed
            offset += _PAGE

    def _change_collection(self, create: bool = False) -> Any | None:
        # None: no record was written since the log exists.
        return self._side_collection("_changes", _CHANGES, create)

    def delete_commit_records(self, article_ids: Sequence[str]) -> None:
        with _write_errors():
            collection = self._commit_collection()
            if collection is not None and article_ids:
                for start in range(0, len(article_ids), _PAGE):
                    collection.delete(ids=list(article_ids[start : start + _PAGE]))

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        with _write_errors():
            self._writable().upsert(
                ids=[c.chunk_id for c in chunks],
                embeddings=vectors,
                documents=[c.text for c in chunks],
                metadatas=[c.metadata for c in chunks],
            )

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        if chunks:
            with _write_errors():
                collection = self._writable()
                for start in range(0, len(chunks), _PAGE):
                    page = chunks[start : start + _PAGE]
                    collection.update(
                        ids=[c.chunk_id for c in page], metadatas=[c.metadata for c in page]
                    )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        collection = self._existing()
        if collection is not None and chunk_ids:
            with _write_errors():
                for start in range(0, len(chunk_ids), _PAGE):
                    collection.delete(ids=list(chunk_ids[start : start + _PAGE]))

    # -- writer lease -----------------------------------------------------------------------------

    def take_lease(
        self,
        *,
        ttl_s: float = LEASE_TTL_S,
        wait_s: float = LEASE_WAIT_S,
        holder: str = "",
    ) -> WriterLease:
        """The store's writer lease, held until released: taken at once when free, taken over
        when its holder let it expire, else waited for up to ``wait_s`` seconds, after which
        ``IndexLockedError`` names the holder. ``holder`` defaults to ``host:pid:random``."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be greater than 0, got {ttl_s}")
        name = self._name + _LEASE
        holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + max(wait_s, 0.0)
        vanished = 0  # creates refused although no lease was there to read
        while True:
            now, sent = time.time(), time.monotonic()
            record = LeaseRecord(holder, now, now + ttl_s)
            try:
                with _server_errors(self._server_url):
                    created = self._client.create_collection(
                        name, metadata=_lease_metadata(record), embedding_function=None
                    )
            except ProviderError:
                raise
            except Exception as refused:  # the name exists (or the server refused to create)
                with _server_errors(self._server_url):
                    held = _find_collection(self._client, name)
                if held is None:  # released in the meantime: try again, a few times
                    vanished += 1
                    if vanished >= 3:
                        raise IndexWriteError(
                            f"cannot take the index's writer lease: {_first_line(refused)}"
                        ) from refused
                    continue
                current = _lease_record(held.metadata)
                if current.expires_at <= time.time():
                    log.warning(
                        "taking over the index's writer lease from %s: it expired at %s",
                        current.holder,
                        utc(current.expires_at),
                    )
                    with _server_errors(self._server_url):
                        _discard(self._client, held, name)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f"; waited {wait_s:g} s" if wait_s > 0 else ""
                    raise IndexLockedError(
                        f"another process is writing the index ({current.describe()}{waited});"
                        " try again when it has finished"
                    ) from None
                time.sleep(min(left, _LEASE_POLL_S * (1 + random.random())))
                continue
            return WriterLease(self._client, created, record, ttl_s, self._server_url, sent)

    def lease_record(self) -> LeaseRecord | None:
        """Who holds the writer lease now (expired or not), or None when nobody does."""
        with _server_errors(self._server_url):
            held = _find_collection(self._client, self._name + _LEASE)
        return None if held is None else _lease_record(held.metadata)


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "") or (
        type(error).__name__
    )


def _lease_metadata(record: LeaseRecord) -> Metadata:
    return {
        "holder": record.holder,
        "acquired_at": record.acquired_at,
        "expires_at": record.expires_at,
    }


def _lease_record(metadata: Any) -> LeaseRecord:
    """A lease's record from its collection's metadata; fields that are missing make a lease
    that has expired, so a damaged one is taken over rather than blocking every writer."""
    meta = dict(metadata or {})
    try:
        acquired_at = float(meta.get("acquired_at", 0))
        expires_at = float(meta.get("expires_at", 0))
    except (TypeError, ValueError):
        acquired_at = expires_at = 0.0
    return LeaseRecord(str(meta.get("holder", "")) or "unknown", acquired_at, expires_at)


def _find_collection(client: Any, name: str) -> Any | None:
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError):  # ValueError: how older chromadb said "not found"
        return None


def _discard(client: Any, lease: Any, name: str) -> None:
    """Delete the lease collection ``lease``, found under ``name``, and only that one.

    It is renamed first, through its id: if another writer has already taken it over, the
    rename finds it gone, or renames only that writer's discarded copy; the lease that writer
    then created has another id and is never touched. Deleting by ``name`` could remove it.
    """
    from chromadb.errors import NotFoundError

    discarded = f"{name}.gone-{uuid.uuid4().hex[:12]}"
    try:
        lease.modify(name=discarded)
    except (NotFoundError, ValueError):
        return  # already discarded by another writer
    with suppress(NotFoundError, ValueError):
        client.delete_collection(discarded)


def chroma_where(filters: SearchFilters | None) -> Where | None:
    """``filters`` in Chroma's ``where`` dialect (None when they accept everything)."""
    if filters is None:
        return None
    clauses: list[Where] = []
    if filters.article_ids:
        clauses.append({"article_id": {"$in": list(filters.article_ids)}})
    if filters.authors:
        clauses.append({"author": {"$in": list(filters.authors)}})
    if filters.publishers:
        clauses.append({"publisher": {"$in": list(filters.publishers)}})
    if filters.date_from:
        clauses.append({"date_int": {"$gte": date_as_int(filters.date_from)}})
    if filters.date_to:
        clauses.append({"date_int": {"$lte": date_as_int(filters.date_to)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
