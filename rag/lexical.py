"""The lexical (BM25) index, derived from the vector store and kept beside it.

Chroma cannot index sparse vectors locally, so BM25 lives beside it, behind one narrow
interface (``LexicalSearch``) with two backends chosen by name (``settings.lexical``, from
``open_lexical``'s registry): ``fts5``, SQLite FTS5 on disk, updated article by article as the
store changes (``rag.lexical_fts``, the default: see ``train/FUSION.md`` and ``bench/README.md``
for the comparison), and ``bm25s``, in memory, rebuilt from every chunk on any change (this
module). Both index the same terms (``index_terms``) and apply filters inside the index (SQL
conditions; for ``bm25s`` one prebuilt array per field, compared as a whole).

The ``bm25s`` backend is saved under ``data_dir/lexical`` together with a copy of each chunk's
text and metadata (so lexical hits need no round trip to the store). That path is a symbolic link
to one whole saved version in ``data_dir/lexical.versions``: a save writes a new version folder
and then swaps the link with one ``os.replace``, so a reader that resolves the link once reads
one whole version, and two saves racing each other both succeed (the last swap wins). The
two versions before the current one are kept for readers still on them; older ones are removed
(under a file lock, so no save removes what another is about to point at), and a reader whose
version vanished under it follows the link again. A ``lexical`` folder of the layout before
links is moved among the versions by the first save. It records the store's
``index_version`` it was built from; when that differs, or the files are missing or unreadable,
``Bm25sIndex.load_or_build`` rebuilds it from the store. It never writes to the store.

Answers quote this copy, so it is checked like a record, not trusted like a cache: the manifest
holds the chunk count and the SHA-256 of every file saved, and a copy that differs in any byte
(an edited quote, an emptied file, a truncated array) is not loaded; it is rebuilt from the
store, with a log line that says so.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from filelock import FileLock

from rag.errors import SettingsError
from rag.files import file_sha256
from rag.store import StoredChunk, VectorStore, date_as_int
from rag.text import content_terms

if TYPE_CHECKING:
    from rag.config import IndexSettings
    from rag.store import SearchFilters

_FORMAT = 2  # 2: the manifest carries the files' SHA-256
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk: StoredChunk
    score: float


def index_terms(text: str, title: str = "") -> list[str]:
    """What BM25 sees of a chunk: its title and text, stemmed, without stopwords."""
    return content_terms(f"{title}\n{text}" if title else text)


@dataclass(frozen=True, slots=True)
class FilterMatch:
    """The chunks a filter accepts, as the lexical index counts them: how many, of how many
    held, and their ids when there are no more than the caller's limit (else None).
    ``vectors`` holds the dense vectors the index keeps of some of those ids (float16: a
    copy to rank by, ``VectorStore.query_among``), none when it keeps none."""

    count: int
    total: int
    chunk_ids: tuple[str, ...] | None
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)


class LexicalSearch(Protocol):
    """What retrieval, the index stage and the catalogue need of a lexical index."""

    name: str

    @property
    def version(self) -> str:
        """The store ``index_version`` the index holds."""
        ...

    @property
    def chunks(self) -> Sequence[StoredChunk]:
        """Every chunk held (tools and evals read them all; serving does not)."""
        ...

    def search(self, query: str, k: int, filters: SearchFilters | None = None) -> list[LexicalHit]:
        """The top ``k`` chunks for ``query`` by BM25 that ``filters`` accept."""
        ...

    def matching(self, filters: SearchFilters, limit: int) -> FilterMatch:
        """The chunks ``filters`` accept, from the index's own fields (never a Python call
        per chunk); their ids only when there are at most ``limit``."""
        ...

    def accepted(self, chunk_ids: Sequence[str], filters: SearchFilters) -> set[str]:
        """Those of ``chunk_ids`` that ``filters`` accept (ids the index does not hold are
        not)."""
        ...

    def vector_copies(self, chunk_ids: Sequence[str]) -> Mapping[str, np.ndarray]:
        """Copies (float16) of the dense vectors of those of ``chunk_ids`` whose vectors the
        index keeps: none when it keeps none."""
        ...

    def get(self, chunk_id: str) -> StoredChunk | None: ...

    def article_chunks(self, article_ids: Collection[str]) -> list[StoredChunk]: ...

    def article_hashes(self) -> dict[str, str]:
        """The version (content hash) held of each article, by article id."""
        ...

    def view(self, article_ids: Collection[str] | None = None) -> set[tuple[str, str]]:
        """(chunk id, article hash) of every chunk held (of ``article_ids`` when given)."""
        ...

    def refreshed(self, store: VectorStore) -> LexicalSearch:
        """This index brought up to date with ``store`` (itself, or a new one)."""
        ...


LexicalOpener = Callable[["IndexSettings", VectorStore], LexicalSearch]
_BACKENDS: dict[str, LexicalOpener] = {}


def register_lexical(name: str, opener: LexicalOpener) -> None:
    """Make a lexical backend available as ``settings.lexical == name``."""
    _BACKENDS[name] = opener


def available_lexical() -> list[str]:
    return sorted(_BACKENDS)


def open_lexical(settings: IndexSettings, store: VectorStore) -> LexicalSearch:
    """The lexical index ``settings.lexical`` names, up to date with ``store``."""
    try:
        opener = _BACKENDS[settings.lexical]
    except KeyError:
        raise SettingsError(
            f"unknown lexical backend {settings.lexical!r};"
            f" available: {', '.join(available_lexical())}"
        ) from None
    return opener(settings, store)


def fts_path(settings: IndexSettings) -> Path:
    """Where the ``fts5`` backend keeps its file."""
    return settings.data_dir / "lexical.sqlite"


def _open_fts(settings: IndexSettings, store: VectorStore) -> LexicalSearch:
    from rag.lexical_fts import FtsIndex

    return FtsIndex.open(fts_path(settings), store, settings.fts_segment)


def _open_bm25s(settings: IndexSettings, store: VectorStore) -> LexicalSearch:
    return Bm25sIndex.load_or_build(settings.lexical_dir, store)


class Bm25sIndex:
    """BM25 over every chunk of the store, in memory, with metadata filters applied as a mask."""

    name = "bm25s"

    def __init__(self, chunks: Sequence[StoredChunk], version: str, bm25: object | None) -> None:
        self.chunks = list(chunks)
        self.version = version
        self._bm25 = bm25
        self._positions = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._fields: dict[str, np.ndarray] | None = None
        self.directory: Path | None = None

    @classmethod
    def build(cls, chunks: Sequence[StoredChunk], version: str) -> Bm25sIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG

        bm25 = None
        if chunks:
            corpus = [index_terms(c.text, str(c.metadata.get("title", ""))) for c in chunks]
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        return cls(chunks, version, bm25)

    @classmethod
    def load_or_build(cls, directory: Path, store: VectorStore) -> Bm25sIndex:
        """The saved index if it matches the store's version, else a fresh one (saved)."""
        version = store.index_version
        loaded = cls.load(directory)
        if loaded is not None and loaded.version == version:
            loaded.directory = directory
            return loaded
        index = cls.build(list(store.iter_chunks()), version)
        index.save(directory)
        index.directory = directory
        return index

    def refreshed(self, store: VectorStore) -> Bm25sIndex:
        if self.version == store.index_version or self.directory is None:
            return self
        return Bm25sIndex.load_or_build(self.directory, store)

    @classmethod
    def load(cls, directory: Path) -> Bm25sIndex | None:
        """The index saved in ``directory``, or None when missing, old, unreadable or not
        byte for byte what was saved (logged: it is then rebuilt)."""
        for _ in range(_FOLLOW_ATTEMPTS):
            version_dir = directory.resolve()
            try:
                return cls._load_version(version_dir)
            except _Unreadable as e:
                if directory.resolve() != version_dir:
                    continue  # a newer save swapped the link and removed this version: follow
                if e.quiet:
                    return None
                log.warning("the lexical index in %s is %s: rebuilding it", directory, e)
                return None
        return None

    @classmethod
    def _load_version(cls, version_dir: Path) -> Bm25sIndex:
        """One saved version, read from its own folder (never through the link again)."""
        try:
            manifest = json.loads((version_dir / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise _Unreadable("missing", quiet=True) from e
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise _Unreadable("of an older format", quiet=True)
        try:
            damage = _damage(version_dir, manifest)
            if damage:
                raise _Unreadable(f"damaged ({damage})")
            with (version_dir / "chunks.jsonl").open(encoding="utf-8") as lines:
                chunks = [StoredChunk(*json.loads(line)) for line in lines]
            if len(chunks) != manifest["chunks"]:
                raise _Unreadable("damaged (chunks.jsonl is not the count saved)")
            bm25 = None
            if chunks:
                import bm25s

                bm25 = bm25s.BM25.load(str(version_dir / "bm25"), show_progress=False)
            return cls(chunks, str(manifest["version"]), bm25)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise _Unreadable(f"unreadable ({e})") from e

    def save(self, directory: Path) -> None:
        """Write a new version folder, then point ``directory`` (a link) at it in one
        ``os.replace``: readers see the old version or the new one, never half of either."""
        versions = _versions_dir(directory)
        versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=versions))
        try:
            with (staging / "chunks.jsonl").open("w", encoding="utf-8") as out:
                for c in self.chunks:
                    out.write(json.dumps([c.chunk_id, c.text, c.metadata], ensure_ascii=False))
                    out.write("\n")
            if self._bm25 is not None:
                self._bm25.save(str(staging / "bm25"), show_progress=False)  # type: ignore[attr-defined]
            manifest = {
                "format": _FORMAT,
                "version": self.version,
                "chunks": len(self.chunks),
                "sha256": _digests(staging),
            }
            (staging / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            # Naming, swapping and removing are serialised (across processes too), so that a
            # save never removes a version another save is about to point at.
            with FileLock(str(versions / ".lock")):
                saved = versions / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
                os.rename(staging, saved)
                _point(directory, saved)
                _remove_old_versions(versions, current=saved.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def search(self, query: str, k: int, filters: SearchFilters | None = None) -> list[LexicalHit]:
        """Top ``k`` chunks by BM25 for ``query``; only those that ``filters`` accept."""
        terms = index_terms(query)
        if self._bm25 is None or not terms or k <= 0:
            return []
        mask = None
        if filters is not None and not filters.empty:
            mask = self._mask(filters)
            if not mask.any():
                return []
        k = min(k, len(self.chunks))
        documents, scores = self._bm25.retrieve(  # type: ignore[attr-defined]
            [terms], k=k, show_progress=False, weight_mask=mask
        )
        return [
            LexicalHit(self.chunks[int(i)], float(s))
            for i, s in zip(documents[0], scores[0], strict=True)
            if s > 0
        ]

    def vector_copies(self, chunk_ids: Sequence[str]) -> Mapping[str, np.ndarray]:
        return {}  # this backend keeps no vectors

    def matching(self, filters: SearchFilters, limit: int) -> FilterMatch:
        mask = self._mask(filters)
        positions = np.flatnonzero(mask)
        ids = (
            tuple(self.chunks[int(i)].chunk_id for i in positions)
            if len(positions) <= limit
            else None
        )
        return FilterMatch(len(positions), len(self.chunks), ids)

    def accepted(self, chunk_ids: Sequence[str], filters: SearchFilters) -> set[str]:
        mask = self._mask(filters)
        positions = (self._positions.get(cid) for cid in chunk_ids)
        return {self.chunks[i].chunk_id for i in positions if i is not None and mask[i]}

    def _mask(self, filters: SearchFilters) -> np.ndarray:
        """The chunks ``filters`` accept, from one array per field (built once per index)."""
        if self._fields is None:
            self._fields = {
                name: np.asarray([str(c.metadata.get(name, "")) for c in self.chunks], dtype=str)
                for name in ("article_id", "author", "publisher")
            }
            self._fields["date_int"] = np.asarray(
                [int(c.metadata.get("date_int", 0) or 0) for c in self.chunks], dtype=np.int64
            )
        mask = np.ones(len(self.chunks), dtype=bool)
        for name, wanted in (
            ("article_id", filters.article_ids),
            ("author", filters.authors),
            ("publisher", filters.publishers),
        ):
            if wanted:
                mask &= np.isin(self._fields[name], list(wanted))
        if filters.date_from:
            mask &= self._fields["date_int"] >= date_as_int(filters.date_from)
        if filters.date_to:
            mask &= self._fields["date_int"] <= date_as_int(filters.date_to)
        return mask

    def get(self, chunk_id: str) -> StoredChunk | None:
        position = self._positions.get(chunk_id)
        return None if position is None else self.chunks[position]

    def article_chunks(self, article_ids: Collection[str]) -> list[StoredChunk]:
        wanted = set(article_ids)
        return [c for c in self.chunks if c.metadata.get("article_id") in wanted]

    def article_hashes(self) -> dict[str, str]:
        return {
            str(c.metadata.get("article_id", "")): str(c.metadata.get("article_hash", ""))
            for c in self.chunks
        }

    def view(self, article_ids: Collection[str] | None = None) -> set[tuple[str, str]]:
        wanted = None if article_ids is None else set(article_ids)
        return {
            (c.chunk_id, str(c.metadata.get("article_hash", "")))
            for c in self.chunks
            if wanted is None or c.metadata.get("article_id") in wanted
        }


LexicalIndex = Bm25sIndex  # the name the bm25s backend had before there were two
register_lexical("fts5", _open_fts)
register_lexical("bm25s", _open_bm25s)


_FOLLOW_ATTEMPTS = 20  # how often a reader follows the link again when its version vanished
_KEPT_VERSIONS = 3  # the current one and two before it, for readers still on them
_STAGING = ".staging-"
_STALE_STAGING_S = 3600.0  # a staging folder this old is a crashed save's


class _Unreadable(Exception):
    """Why a saved version cannot be loaded (``quiet``: simply not there, no log line)."""

    def __init__(self, reason: str, *, quiet: bool = False) -> None:
        super().__init__(reason)
        self.quiet = quiet


def _versions_dir(directory: Path) -> Path:
    return directory.with_name(directory.name + ".versions")


def _point(directory: Path, target: Path) -> None:
    """Swap the link ``directory`` to ``target`` in one rename (a folder of the layout before
    links is first moved among the versions)."""
    link = directory.with_name(f".{directory.name}-link-{uuid.uuid4().hex}")
    os.symlink(os.path.relpath(target, directory.parent), link, target_is_directory=True)
    try:
        if directory.is_dir() and not directory.is_symlink():
            os.rename(directory, _versions_dir(directory) / f"{0:020d}-legacy")
        os.replace(link, directory)
    finally:
        if link.is_symlink():
            link.unlink()


def _remove_old_versions(versions: Path, current: str) -> None:
    """Every version folder but the newest ``_KEPT_VERSIONS`` (``current`` among them), and
    staging folders of saves that crashed long ago; saves still writing are left alone."""
    saved = sorted(f.name for f in versions.iterdir() if f.is_dir() and f.name[0].isdigit())
    kept = set(saved[-_KEPT_VERSIONS:]) | {current}
    for folder in versions.iterdir():
        if folder.name in kept or not folder.is_dir():
            continue
        if folder.name.startswith(_STAGING):
            try:
                if time.time() - folder.stat().st_mtime < _STALE_STAGING_S:
                    continue
            except OSError:
                continue
        shutil.rmtree(folder, ignore_errors=True)


def _digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (but the manifest), by relative path."""
    return {
        path.relative_to(directory).as_posix(): file_sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


def _damage(directory: Path, manifest: dict[str, object]) -> str:
    """What differs from the manifest's record of the saved files ("" when nothing)."""
    recorded = manifest.get("sha256")
    if not isinstance(recorded, dict) or "chunks.jsonl" not in recorded:
        return "no checksums"
    found = _digests(directory)
    for name, digest in recorded.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} differs from what was saved"
    extra = sorted(set(found) - set(recorded))
    return f"{extra[0]} was not saved with it" if extra else ""
