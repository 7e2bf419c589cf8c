"""The lexical (BM25) index in SQLite FTS5, on disk, following the store article by article.

``FtsIndex`` keeps one row per shown chunk (its text, metadata and the fields that filters
read) and an FTS5 table of its terms: the same stemmed, stopword-free terms that ``bm25s`` is
given (``rag.lexical.index_terms``), so both backends see one vocabulary, ranked by FTS5's
``bm25()``. Filters (article ids, authors, publishers, a date range) are SQL conditions on
indexed columns, evaluated inside the query, never a Python call per chunk.

It follows the store in proportion to what changed: every commit record the store writes is
logged with its time (``VectorStore.changed_since``), and ``follow`` re-reads only the
articles logged since the last time it looked (with a margin for clocks and writes in
flight), and only those whose committed version differs from the rows it holds. Several
processes on one data dir share the file (WAL mode: readers never wait for the writer);
replicas with data dirs of their own each follow the change log of the shared store. A file
that is missing, of another format or unreadable is built afresh from the store, once.

Answers quote these rows, so they are checked like records: each row holds the SHA-256 of its
chunk id, text and metadata, checked on every hit returned; a row that differs (an edited
quote) is never returned, and its article is read again from the store, with a log line. The
term table is contentless (terms are not stored twice): deleting a row recomputes its terms
from its checked text. This module never writes to the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.lexical import FilterMatch, LexicalHit, index_terms
from rag.store import Metadata, StoredChunk, VectorStore, date_as_int

if TYPE_CHECKING:
    from rag.store import SearchFilters

log = logging.getLogger(__name__)

_FORMAT = "1"
# Changes logged this long before the newest one seen are looked at again: a writer's clock
# may lag another's, and a record may land after a later-stamped one was read. Looking again
# costs a hash comparison per article, so the margin is generous.
_MARGIN_S = 30.0
_IDS_PER_QUERY = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: see repair
    chunk_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    article_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    publisher TEXT NOT NULL,
    date_int INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
-- By article, with its version: the catalogue's aggregate of article hashes reads only this.
CREATE INDEX IF NOT EXISTS chunks_article_hash ON chunks (article_id, article_hash);
DROP INDEX IF EXISTS chunks_article;
CREATE INDEX IF NOT EXISTS chunks_author ON chunks (author);
CREATE INDEX IF NOT EXISTS chunks_publisher ON chunks (publisher);
CREATE INDEX IF NOT EXISTS chunks_date ON chunks (date_int);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5 (
    terms, content='', tokenize='unicode61 remove_diacritics 0'
);
"""


class FtsIndex:
    """BM25 over the store's shown chunks in one SQLite file, updated article by article."""

    name = "fts5"

    def __init__(self, path: Path, store: VectorStore) -> None:
        self.path = path
        self.store = store
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.chunks_read = 0  # chunks read from the store since opened (for tests, benches)
        self._followed: str | None = None  # the store version this process last followed
        self._found_file = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            self._ensure_schema()

    @classmethod
    def open(cls, path: Path, store: VectorStore) -> FtsIndex:
        """The index in ``path``, brought up to date with ``store``."""
        index = cls(path, store)
        index.follow()
        return index

    # -- connection -----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _ensure_schema(self) -> None:
        """Create the tables, or start afresh when the file is not an index of this format."""
        try:
            db = self._db()
            db.executescript(_SCHEMA)
            found = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if found.get("format") == _FORMAT:
                return
            if found:
                log.warning("the lexical index %s is of another format: rebuilding it", self.path)
            elif self._found_file:
                log.warning(
                    "the lexical index %s is damaged (it is empty): rebuilding it", self.path
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (_FORMAT,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', '')")
        except sqlite3.DatabaseError as e:
            log.warning("the lexical index %s is damaged (%s): rebuilding it", self.path, e)
            self._discard_file()
            db = self._db()
            db.executescript(_SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (_FORMAT,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', '')")

    def _discard_file(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def _meta(self, key: str) -> str:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else ""

    @property
    def version(self) -> str:
        """The store version this process last followed (before it has, the one saved in the
        file, which the processes of one data dir share)."""
        if self._followed is not None:
            return self._followed
        try:
            return self._meta("version")
        except sqlite3.DatabaseError:
            return ""

    # -- following the store --------------------------------------------------------------------

    def refreshed(self, store: VectorStore) -> FtsIndex:
        self.store = store
        self.follow()
        return self

    def follow(self) -> None:
        """Apply what changed in the store since this index last looked."""
        version = self.store.index_version
        if self.version == version:
            return
        with self._write_lock:
            try:
                self._follow(version)
                self._followed = version
            except sqlite3.OperationalError:
                raise  # a full disk, a lock held too long: the caller says what was kept
            except sqlite3.DatabaseError as e:
                log.warning("the lexical index %s is damaged (%s): rebuilding it", self.path, e)
                self._discard_file()
                self._ensure_schema()
                self._follow(version)
                self._followed = version

    def _follow(self, version: str) -> None:
        db = self._db()
        if self._meta("version") == version:  # another thread or process got here first
            return
        saved = self._meta("watermark")
        watermark = float(saved) if saved else 0.0
        started = time.time()
        changes = self.store.changed_since(watermark - _MARGIN_S) if saved else None
        if changes is None:  # nothing followed yet, or a store without a change log
            self._rebuild(version, started)
            return
        changed = self._outdated(changes)
        db.execute("BEGIN IMMEDIATE")
        try:
            self._replace_articles(changed)
            newest = max(changes.values(), default=watermark)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('watermark', ?)",
                (repr(max(newest, watermark)),),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _outdated(self, changes: dict[str, float]) -> list[str]:
        """Of the logged articles, those whose rows differ from the committed version."""
        ids = sorted(changes)
        records = self.store.commit_records(ids)
        held = self._held(ids)
        outdated = []
        for article_id in ids:
            record = records.get(article_id)
            wanted = (record.article_hash, record.chunks) if record else ("", 0)
            if record is None or record.pending or held.get(article_id, ("", 0)) != wanted:
                outdated.append(article_id)
        return outdated

    def _held(self, article_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        held: dict[str, tuple[str, int]] = {}
        for batch in _batches(article_ids):
            marks = ",".join("?" * len(batch))
            for article_id, article_hash, count in self._db().execute(
                "SELECT article_id, min(article_hash), count(*) FROM chunks"
                f" WHERE article_id IN ({marks}) GROUP BY article_id",
                batch,
            ):
                held[str(article_id)] = (str(article_hash), int(count))
        return held

    def _replace_articles(self, article_ids: Sequence[str]) -> None:
        """Rows of ``article_ids`` replaced by what the store shows of them (inside the
        caller's transaction)."""
        if not article_ids:
            return
        db = self._db()
        for batch in _batches(article_ids):
            marks = ",".join("?" * len(batch))
            rows = db.execute(
                f"SELECT id, chunk_id, text, metadata, sha256 FROM chunks"
                f" WHERE article_id IN ({marks})",
                batch,
            ).fetchall()
            self._delete_rows(rows)
        self._insert(self.store.iter_article_chunks(article_ids))

    def _delete_rows(self, rows: Sequence[tuple[int, str, str, str, str]]) -> None:
        db = self._db()
        for row_id, chunk_id, text, metadata, digest in rows:
            meta = json.loads(metadata)
            # A contentless term index forgets a row given the terms it was indexed with:
            # those of its checked text. A damaged row's entries are left unmatched instead
            # (search joins them to rows, and row ids are never reused).
            if _digest(chunk_id, text, meta) == digest:
                db.execute(
                    "INSERT INTO fts (fts, rowid, terms) VALUES ('delete', ?, ?)",
                    (row_id, " ".join(index_terms(text, str(meta.get("title", ""))))),
                )
            db.execute("DELETE FROM chunks WHERE id = ?", (row_id,))

    def _insert(self, chunks: Iterator[StoredChunk]) -> None:
        db = self._db()
        for chunk in chunks:
            self.chunks_read += 1
            meta = chunk.metadata
            cursor = db.execute(
                "INSERT INTO chunks (chunk_id, article_id, article_hash, author, publisher,"
                " date_int, text, metadata, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chunk.chunk_id,
                    str(meta.get("article_id", "")),
                    str(meta.get("article_hash", "")),
                    str(meta.get("author", "")),
                    str(meta.get("publisher", "")),
                    int(meta.get("date_int", 0) or 0),
                    chunk.text,
                    _dumps(meta),
                    _digest(chunk.chunk_id, chunk.text, meta),
                ),
            )
            terms = " ".join(index_terms(chunk.text, str(meta.get("title", ""))))
            db.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", (cursor.lastrowid, terms))

    def _rebuild(self, version: str, started: float) -> None:
        """Every shown chunk of the store, read once: for a new file (or a store without a
        change log), and after damage."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM fts")  # contentless: the whole index is dropped at once
            self._insert(self.store.iter_chunks())
            db.execute("INSERT OR REPLACE INTO meta VALUES ('watermark', ?)", (repr(started),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def repair(self, article_ids: Sequence[str]) -> None:
        """Read ``article_ids`` again from the store (rows found damaged)."""
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                self._replace_articles(article_ids)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- reads ----------------------------------------------------------------------------------

    def search(self, query: str, k: int, filters: SearchFilters | None = None) -> list[LexicalHit]:
        """Top ``k`` chunks by BM25 for ``query``, among those ``filters`` accept."""
        terms = list(dict.fromkeys(index_terms(query)))
        if not terms or k <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        conditions, values = _conditions(filters)
        sql = (
            "SELECT c.chunk_id, c.text, c.metadata, c.sha256, c.article_id, m.score FROM"
            " (SELECT rowid AS id, bm25(fts) AS score FROM fts WHERE fts MATCH ?"
            + ("" if conditions else " ORDER BY score LIMIT ?")
            + ") AS m JOIN chunks AS c ON c.id = m.id"
            + (" WHERE " + " AND ".join(conditions) if conditions else "")
            + " ORDER BY m.score LIMIT ?"
        )
        params: list[object] = [match, *([] if conditions else [k]), *values, k]
        try:
            rows = self._db().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            log.warning("the lexical index %s is damaged (%s): rebuilding it", self.path, e)
            with self._write_lock:
                self._discard_file()
                self._ensure_schema()
                self._followed = None
            self.follow()
            rows = self._db().execute(sql, params).fetchall()
        hits: list[LexicalHit] = []
        damaged: list[str] = []
        for chunk_id, text, metadata, digest, article_id, score in rows:
            meta = json.loads(metadata)
            if _digest(chunk_id, text, meta) != digest:
                damaged.append(str(article_id))
                continue
            hits.append(LexicalHit(StoredChunk(chunk_id, text, meta), -float(score)))
        if damaged:
            log.warning(
                "the lexical index %s is damaged (rows of %s differ from what was saved):"
                " rebuilding them from the store",
                self.path,
                ", ".join(sorted(set(damaged))),
            )
            self.repair(sorted(set(damaged)))
            return self.search(query, k, filters)
        return hits

    def matching(self, filters: SearchFilters, limit: int) -> FilterMatch:
        conditions, values = _conditions(filters)
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        db = self._db()
        # The ids first, one more than asked: a broad filter is counted, not listed.
        rows = db.execute(
            f"SELECT c.chunk_id FROM chunks AS c{where} LIMIT ?", [*values, limit + 1]
        ).fetchall()
        if len(rows) <= limit:
            count, ids = len(rows), tuple(str(r[0]) for r in rows)
        else:
            count = int(
                db.execute(f"SELECT count(*) FROM chunks AS c{where}", values).fetchone()[0]
            )
            ids = None
        return FilterMatch(count, self.count(), ids)

    def accepted(self, chunk_ids: Sequence[str], filters: SearchFilters) -> set[str]:
        conditions, values = _conditions(filters)
        found: set[str] = set()
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            sql = f"SELECT c.chunk_id FROM chunks AS c WHERE c.chunk_id IN ({marks})" + "".join(
                f" AND {c}" for c in conditions
            )
            found.update(str(r[0]) for r in self._db().execute(sql, [*batch, *values]))
        return found

    def get(self, chunk_id: str) -> StoredChunk | None:
        row = (
            self._db()
            .execute("SELECT text, metadata, sha256 FROM chunks WHERE chunk_id = ?", (chunk_id,))
            .fetchone()
        )
        if row is None:
            return None
        meta = json.loads(row[1])
        return (
            StoredChunk(chunk_id, row[0], meta)
            if _digest(chunk_id, row[0], meta) == row[2]
            else None
        )

    @property
    def chunks(self) -> list[StoredChunk]:
        """Every chunk held: a read of the whole file (tools and evals; serving does not)."""
        return list(
            self._checked(
                self._db().execute(
                    "SELECT chunk_id, text, metadata, sha256 FROM chunks ORDER BY id"
                )
            )
        )

    def article_chunks(self, article_ids: Collection[str]) -> list[StoredChunk]:
        found: list[StoredChunk] = []
        for batch in _batches(sorted(set(article_ids))):
            marks = ",".join("?" * len(batch))
            found.extend(
                self._checked(
                    self._db().execute(
                        "SELECT chunk_id, text, metadata, sha256 FROM chunks"
                        f" WHERE article_id IN ({marks}) ORDER BY id",
                        batch,
                    )
                )
            )
        return found

    def article_hashes(self) -> dict[str, str]:
        return {
            str(a): str(h)
            for a, h in self._db().execute(
                "SELECT article_id, min(article_hash) FROM chunks GROUP BY article_id"
            )
        }

    def view(self, article_ids: Collection[str] | None = None) -> set[tuple[str, str]]:
        """(chunk id, article hash) of each row (of ``article_ids`` when given)."""
        if article_ids is None:
            return {
                (str(c), str(h))
                for c, h in self._db().execute("SELECT chunk_id, article_hash FROM chunks")
            }
        view: set[tuple[str, str]] = set()
        for batch in _batches(sorted(set(article_ids))):
            marks = ",".join("?" * len(batch))
            view.update(
                (str(c), str(h))
                for c, h in self._db().execute(
                    f"SELECT chunk_id, article_hash FROM chunks WHERE article_id IN ({marks})",
                    batch,
                )
            )
        return view

    def count(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def _checked(self, rows: Iterator[tuple[str, str, str, str]]) -> Iterator[StoredChunk]:
        """Rows as chunks, those that differ from what was saved left out (logged)."""
        for chunk_id, text, metadata, digest in rows:
            meta = json.loads(metadata)
            if _digest(chunk_id, text, meta) == digest:
                yield StoredChunk(chunk_id, text, meta)
            else:
                log.warning(
                    "the lexical index %s is damaged (chunk %s differs from what was saved):"
                    " it is left out until rebuilt",
                    self.path,
                    chunk_id,
                )


def _conditions(filters: SearchFilters | None) -> tuple[list[str], list[object]]:
    """SQL conditions on the chunk rows for ``filters``, and their values."""
    if filters is None or filters.empty:
        return [], []
    conditions: list[str] = []
    values: list[object] = []
    for column, wanted in (
        ("article_id", filters.article_ids),
        ("author", filters.authors),
        ("publisher", filters.publishers),
    ):
        if wanted:
            conditions.append(f"c.{column} IN ({','.join('?' * len(wanted))})")
            values.extend(wanted)
    if filters.date_from:
        conditions.append("c.date_int >= ?")
        values.append(date_as_int(filters.date_from))
    if filters.date_to:
        conditions.append("c.date_int <= ?")
        values.append(date_as_int(filters.date_to))
    return conditions, values


def _batches(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _IDS_PER_QUERY):
        yield list(items[start : start + _IDS_PER_QUERY])


def _dumps(metadata: Metadata) -> str:
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True)


def _digest(chunk_id: str, text: str, metadata: Metadata) -> str:
    payload = json.dumps([chunk_id, text, _dumps(metadata)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
