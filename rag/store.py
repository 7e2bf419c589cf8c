"""The vector store seam: what the rest of the code asks of a store, in plain data.

``VectorStore`` is the protocol every store implements; stores are chosen by name
(``IndexSettings.store``, ``RAG_STORE``) from one registry (``register_store``,
``open_store``), which raises a clear error for an unknown name. ``chroma`` (``rag.stores.chroma``)
is the one store and the default. Filters are ``SearchFilters``, neutral frozen data (article
ids, authors, outlets, an inclusive date range) that each store turns into its own dialect, in
its own module; ``SearchFilters.accepts`` is the reference meaning, for stores and derived
indexes that filter in Python.

The records a store keeps beside the chunks are part of the protocol, because every store
must keep them: a commit record per article (``CommitRecord``: the version readers may see and
its chunk count, written last, so an interrupted write is found and repaired), a change log
(``changed_since``) that derived indexes follow, and a writer lease (``take_lease``) that
serialises writers of one shared store. The visibility rule (``is_shown``) is the same for
every store.

What it leaves out: any store's dialect, limits or client (they belong to the store's module),
and deciding what to write, or in which order (``rag.index`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.errors import ProviderError, RagError

if TYPE_CHECKING:
    from rag.config import IndexSettings
    from rag.schema import Chunk

Metadata = dict[str, str | int | float | bool]
LEASE_TTL_S = 30.0  # a lease not renewed for this long is taken over by the next writer
LEASE_WAIT_S = 45.0  # how long a writer waits for a held lease: longer than a dead one lasts


def date_as_int(iso_date: str) -> int:
    """``2025-06-05`` -> 20250605 (stores compare dates as numbers); 0 when unknown."""
    try:
        parsed = date.fromisoformat(iso_date)
    except ValueError:
        return 0
    return parsed.year * 10000 + parsed.month * 100 + parsed.day


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrict retrieval to some articles, authors, outlets or a date range (ISO dates,
    inclusive). Every store translates these; none takes its own dialect from callers."""

    article_ids: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    publishers: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value and not date_as_int(value):
                raise RagError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}")
        if (
            self.date_from
            and self.date_to
            and date_as_int(self.date_from) > date_as_int(self.date_to)
        ):
            raise RagError(
                f"date_from ({self.date_from}) is after date_to ({self.date_to}): no article"
                " can match"
            )

    @property
    def empty(self) -> bool:
        return not (
            self.article_ids or self.authors or self.publishers or self.date_from or self.date_to
        )

    def accepts(self, metadata: Metadata) -> bool:
        """Whether a chunk with ``metadata`` passes: the filters' meaning, for every store."""
        if self.article_ids and metadata.get("article_id") not in self.article_ids:
            return False
        if self.authors and metadata.get("author") not in self.authors:
            return False
        if self.publishers and metadata.get("publisher") not in self.publishers:
            return False
        day = int(metadata.get("date_int", 0) or 0)
        if self.date_from and day < date_as_int(self.date_from):
            return False
        return not (self.date_to and day > date_as_int(self.date_to))


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as read back from the store."""

    chunk_id: str
    text: str
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """Which version of an article readers see, and whether a write of another one began.

    ``article_hash`` is the committed version ("" when no version may be shown) and ``chunks``
    its number of chunks; ``pending`` is the version a write has begun and not yet committed.
    """

    article_id: str
    article_hash: str
    chunks: int
    pending: str = ""


@dataclass(frozen=True, slots=True)
class DenseHit:
    chunk: StoredChunk
    similarity: float  # cosine similarity, -1..1


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds a store's writer lease, since when and until when (Unix seconds)."""

    holder: str
    acquired_at: float
    expires_at: float

    def describe(self) -> str:
        return f"holder {self.holder}, until {utc(self.expires_at)}"


class Lease(Protocol):
    """A store's writer lease while held: ``check`` raises when it was lost."""

    def __enter__(self) -> Lease: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def check(self) -> None: ...

    def release(self) -> None: ...


class VectorStore(Protocol):
    """What the index stage, retrieval, the lexical indexes and the API need of a store."""

    @property
    def shared(self) -> bool:
        """Other processes may write this store (a server's, not a local one)."""
        ...

    def built_with(self) -> str:
        """The id of the embedding model that built the index ("" before its first write)."""
        ...

    @property
    def index_version(self) -> str:
        """The version this handle last saw; it changes on every write."""
        ...

    def current_version(self) -> str:
        """The version as stored now, which another process may have changed."""
        ...

    def bump_version(self) -> str: ...

    def count(self) -> int: ...

    def require_built(self) -> None:
        """Raise ``IndexNotBuiltError`` when the store holds nothing."""
        ...

    # reads: only what readers are shown (``is_shown``), unless ``include_uncommitted``
    def iter_chunks(
        self,
        filters: SearchFilters | None = None,
        with_text: bool = True,
        *,
        include_uncommitted: bool = False,
    ) -> Iterator[StoredChunk]: ...

    def iter_article_chunks(
        self,
        article_ids: Collection[str] | None,
        with_text: bool = True,
        *,
        include_uncommitted: bool = False,
    ) -> Iterator[StoredChunk]: ...

    def chunks_by_article(
        self,
        *,
        include_uncommitted: bool = False,
        article_ids: Collection[str] | None = None,
    ) -> dict[str, dict[str, Metadata]]: ...

    def get_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def query(
        self, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[DenseHit]:
        """The ``k`` shown chunks nearest to ``vector`` that ``filters`` accept."""
        ...

    def query_kept(
        self,
        vector: np.ndarray,
        k: int,
        depth: int,
        keep: Callable[[Sequence[str]], Collection[str]],
    ) -> list[DenseHit] | None:
        """The ``k`` shown chunks nearest to ``vector`` among its ``depth`` nearest that
        ``keep`` keeps (it is given their ids: a filter another index evaluates); None when
        fewer than ``k`` are kept, for the caller to search otherwise."""
        ...

    def query_among(
        self,
        vector: np.ndarray,
        k: int,
        chunk_ids: Sequence[str],
        approximate: Mapping[str, np.ndarray] | None = None,
    ) -> list[DenseHit]:
        """The ``k`` shown chunks of ``chunk_ids`` nearest to ``vector``, by exact comparison
        (for a filter that a few chunks pass: cheaper than the index's filtered search).
        ``approximate`` may give float16 copies of some of their vectors (another index's):
        they rank the candidates, and the store reads only the rest and the winners, whose
        similarity it reports exactly."""
        ...

    # commit records and the change log
    def commit_records(
        self, article_ids: Collection[str] | None = None
    ) -> dict[str, CommitRecord]: ...

    def committed(self, article_ids: Collection[str] | None = None) -> dict[str, str]: ...

    def shown(self, chunks: Sequence[StoredChunk]) -> list[StoredChunk]: ...

    def write_commit_records(self, records: Sequence[CommitRecord]) -> None: ...

    def delete_commit_records(self, article_ids: Sequence[str]) -> None: ...

    def changed_since(self, since: float) -> dict[str, float] | None: ...

    # writes
    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def update_metadata(self, chunks: Sequence[Chunk]) -> None: ...

    def delete(self, chunk_ids: Sequence[str]) -> None: ...

    # the writer lease
    def take_lease(self, *, ttl_s: float, wait_s: float, holder: str = "") -> Lease: ...

    def lease_record(self) -> LeaseRecord | None: ...


StoreOpener = Callable[["IndexSettings", str], VectorStore]
_STORES: dict[str, StoreOpener] = {}


def register_store(name: str, opener: StoreOpener) -> None:
    """Make a store available as ``IndexSettings.store == name``; ``opener(settings,
    model_id)`` opens it for vectors of the embedding model ``model_id``."""
    _STORES[name] = opener


def available_stores() -> list[str]:
    return sorted(_STORES)


def open_store(settings: IndexSettings, model_id: str) -> VectorStore:
    """The store ``settings.store`` names, for vectors of ``model_id``."""
    try:
        opener = _STORES[settings.store]
    except KeyError:
        raise ProviderError(
            f"unknown store {settings.store!r}; available: {', '.join(available_stores())}"
        ) from None
    return opener(settings, model_id)


def _open_chroma(settings: IndexSettings, model_id: str) -> VectorStore:
    from rag.stores.chroma import ChromaStore  # chromadb is imported only when used

    return ChromaStore.open(settings, model_id)


register_store("chroma", _open_chroma)


def article_of(chunk: StoredChunk) -> str:
    return str(chunk.metadata.get("article_id", ""))


def by_article(chunks: Iterable[StoredChunk]) -> dict[str, list[StoredChunk]]:
    """Chunks grouped by article, each article's in reading order (chunks without an
    article id are left out)."""
    groups: dict[str, list[StoredChunk]] = {}
    for chunk in chunks:
        if article_id := article_of(chunk):
            groups.setdefault(article_id, []).append(chunk)
    for group in groups.values():
        group.sort(key=lambda c: int(c.metadata.get("index", 0) or 0))
    return groups


def is_shown(chunk_hash: str, committed_hash: str | None) -> bool:
    """The visibility rule: a chunk (of a version ``chunk_hash``) is shown when its article's
    committed hash is the same, or when its article has no record (``None``: stored before
    commit records existed, shown as it is). A committed hash of "" shows nothing."""
    if committed_hash is None:
        return True
    return bool(committed_hash) and chunk_hash == committed_hash


def is_shown_in(chunk: StoredChunk, committed: dict[str, str]) -> bool:
    """``is_shown`` for ``chunk``, given its article's entry (if any) in ``committed``."""
    return is_shown(str(chunk.metadata.get("article_hash", "")), committed.get(article_of(chunk)))


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
