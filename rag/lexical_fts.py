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

Ranking: FTS5's ``bm25()`` costs about 10 us for each row that matches any query term, so
once the file holds ``SEGMENT_MIN_ROWS`` rows the rows up to a mark are ranked from a frozen
numpy segment (``rag.lexical_segment``: FTS5's own postings and lengths, its exact formula and
statistics) and only the rows after the mark by FTS5 (``rowid > mark``), merged; rows deleted
since the segment was built are recorded in ``deleted_rows`` and masked. A new segment is
built in a background thread (one process at a time, under a file lock) when the rows after
the mark, or those deleted from the segment, pass ``SEGMENT_TAIL_SHARE`` of the file or
``SEGMENT_TAIL_MAX_ROWS``, whichever is fewer: into a new folder, then ``meta``'s pointer is
switched; every search reads the pointer in its own snapshot, so each process moves to the
new one at its next search. ``RAG_FTS_SEGMENT=off`` ranks with FTS5 alone; ``manual`` builds
only on ``build_segment``. Adding an article still costs the article.

Vectors: the segment holds a float16 copy of each of its rows' dense vectors, and
``row_vectors`` one of each row written since (read from the store as its article is
followed; a rebuild from every chunk keeps none, the segment build reads them). A filtered
search ranks the chunks it lists by them (``matching``), a replica whose vector store cannot
read another process's new vectors yet scores new chunks by them (``vector_copies``), and the
next segment takes them instead of reading the store.

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
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock, Timeout

from rag import lexical_segment
from rag.errors import SettingsError
from rag.lexical import FilterMatch, LexicalHit, index_terms
from rag.lexical_segment import Segment, averages, segments_dir
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
-- Every row deleted, in order: a segment masks those deleted after it was built (terms_kept:
-- a damaged row, deleted without its terms, which FTS5 goes on counting).
CREATE TABLE IF NOT EXISTS deleted_rows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id INTEGER NOT NULL,
    terms_kept INTEGER NOT NULL
);
-- Float16 copies of the dense vectors of rows written since the segment was built (it holds
-- the others'), read from the store as each article is followed: what a replica ranks and
-- scores new chunks by until its vector store has loaded them (``vector_copies``).
CREATE TABLE IF NOT EXISTS row_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
"""
# A segment (rag.lexical_segment) is built once the file holds this many rows, and again when
# the rows after its mark, or those deleted from it, pass this share of the file.
SEGMENT_MIN_ROWS = 20_000
SEGMENT_TAIL_SHARE = 0.10
# ... or this many rows, whichever is fewer: FTS5 ranks the tail at ~10 us a matching row, so at
# 1M rows a 10% tail costs more than the segment (bench/README.md, "The lexical segment").
SEGMENT_TAIL_MAX_ROWS = 20_000
_SEGMENT_MODES = ("auto", "manual", "off")


class FtsIndex:
    """BM25 over the store's shown chunks in one SQLite file, updated article by article."""

    name = "fts5"

    def __init__(self, path: Path, store: VectorStore, segments: str = "auto") -> None:
        """``segments`` (``IndexSettings.fts_segment``): "auto" ranks the rows up to a
        segment's mark in numpy and builds segments in the background as the file grows;
        "manual" uses segments but builds them only when ``build_segment`` is called; "off"
        ranks with FTS5 alone (the baseline)."""
        self.path = path
        self.store = store
        self.segments = segments
        if self.segments not in _SEGMENT_MODES:
            raise SettingsError(
                f"segments must be one of {', '.join(_SEGMENT_MODES)}, got {self.segments!r}"
            )
        self._segment: Segment | None = None
        self._segment_failed = ""  # a segment that would not load (this process ranks without)
        self._building = threading.Lock()  # held while this process builds one
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.chunks_read = 0  # chunks read from the store since opened (for tests, benches)
        self._followed: str | None = None  # the store version this process last followed
        self._found_file = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            self._ensure_schema()

    @classmethod
    def open(cls, path: Path, store: VectorStore, segments: str = "auto") -> FtsIndex:
        """The index in ``path``, brought up to date with ``store``."""
        index = cls(path, store, segments)
        index._catch_up()
        if index.segments == "auto":  # a file that has not changed may still want one
            index._maybe_build_segment()
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
            self._local.counted = None  # the last count's key belongs to the old connection
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
        """Apply what changed in the store since this index last looked (and, after a
        change, build a new segment in the background when the file has outgrown its own)."""
        if self._catch_up() and self.segments == "auto":
            self._maybe_build_segment()

    def _catch_up(self) -> bool:
        """Apply what changed in the store; whether anything had."""
        version = self.store.index_version
        if self.version == version:
            return False
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
        return True

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
        self._copy_vectors(self._insert(self.store.iter_article_chunks(article_ids)))

    def _copy_vectors(self, rows: Sequence[tuple[int, str]]) -> None:
        """Keep float16 copies of the vectors the store can read now of ``rows`` (row id,
        chunk id): in proportion to the article followed (a rebuild keeps none: the segment
        reads them)."""
        if self.store is None or not rows:
            return
        found = self.store.get_vectors([chunk_id for _, chunk_id in rows])
        self._db().executemany(
            "INSERT OR REPLACE INTO row_vectors (id, vector) VALUES (?, ?)",
            [
                (row_id, np.asarray(found[chunk_id], np.float16).tobytes())
                for row_id, chunk_id in rows
                if chunk_id in found
            ],
        )

    def _delete_rows(self, rows: Sequence[tuple[int, str, str, str, str]]) -> None:
        db = self._db()
        for row_id, chunk_id, text, metadata, digest in rows:
            meta = json.loads(metadata)
            # A contentless term index forgets a row given the terms it was indexed with:
            # those of its checked text. A damaged row's entries are left unmatched instead
            # (search joins them to rows, and row ids are never reused).
            intact = _digest(chunk_id, text, meta) == digest
            if intact:
                db.execute(
                    "INSERT INTO fts (fts, rowid, terms) VALUES ('delete', ?, ?)",
                    (row_id, " ".join(index_terms(text, str(meta.get("title", ""))))),
                )
            db.execute("DELETE FROM chunks WHERE id = ?", (row_id,))
            db.execute("DELETE FROM row_vectors WHERE id = ?", (row_id,))
            db.execute(
                "INSERT INTO deleted_rows (id, terms_kept) VALUES (?, ?)", (row_id, int(not intact))
            )

    def _insert(self, chunks: Iterator[StoredChunk]) -> list[tuple[int, str]]:
        """Rows for ``chunks``; their (row id, chunk id)."""
        db = self._db()
        inserted: list[tuple[int, str]] = []
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
            row_id = int(cursor.lastrowid or 0)
            terms = " ".join(index_terms(chunk.text, str(meta.get("title", ""))))
            db.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", (row_id, terms))
            inserted.append((row_id, chunk.chunk_id))
        return inserted

    def _rebuild(self, version: str, started: float) -> None:
        """Every shown chunk of the store, read once: for a new file (or a store without a
        change log), and after damage."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM chunks")
            # Contentless: the whole term index is dropped at once (a plain DELETE is refused
            # once it holds rows, as it does when two threads or processes rebuild together).
            db.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
            # Row ids start afresh from the store: no segment of the old rows stands.
            db.execute("DELETE FROM deleted_rows")
            db.execute("DELETE FROM row_vectors")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('segment', '')")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (uuid.uuid4().hex,))
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
        try:
            rows = self._ranked(terms, k, filters)
        except sqlite3.DatabaseError as e:
            log.warning("the lexical index %s is damaged (%s): rebuilding it", self.path, e)
            with self._write_lock:
                self._discard_file()
                self._ensure_schema()
                self._followed = None
            self.follow()
            rows = self._ranked(terms, k, filters)
        hits: list[LexicalHit] = []
        damaged: list[str] = []
        for chunk_id, text, metadata, digest, article_id, score in rows:
            meta = json.loads(metadata)
            if _digest(chunk_id, text, meta) != digest:
                damaged.append(str(article_id))
                continue
            hits.append(LexicalHit(StoredChunk(chunk_id, text, meta), score))
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

    def _ranked(
        self, terms: list[str], k: int, filters: SearchFilters | None
    ) -> list[tuple[str, str, str, str, str, float]]:
        """The top ``k`` rows (chunk id, text, metadata, digest, article id, score), best
        first, read in one snapshot of the file: the segment's rows ranked in numpy, the rows
        after its mark by FTS5 (all of them by FTS5 when there is no segment)."""
        db = self._db()
        db.execute("BEGIN")  # one snapshot: the segment pointer, deletions, tail and rows
        try:
            segment = self._current_segment() if self.segments != "off" else None
            if segment is None:
                return [(*r[:5], -float(r[5])) for r in self._fts_top(terms, k, filters, 0)]
            ranked: list[tuple[float, int, tuple[object, ...] | None]] = [
                (s, i, None) for s, i in self._segment_top(segment, terms, k, filters)
            ]
            tail = self._fts_top(terms, k, filters, segment.mark)
            ranked.extend((-float(r[5]), int(r[6]), r) for r in tail)
            ranked.sort(key=lambda x: (-x[0], x[1]))
            best = ranked[:k]
            wanted = [i for _, i, r in best if r is None]
            found: dict[int, tuple[object, ...]] = {}
            if wanted:
                marks = ",".join("?" * len(wanted))
                for row in db.execute(
                    "SELECT c.chunk_id, c.text, c.metadata, c.sha256, c.article_id, 0, c.id"
                    f" FROM chunks AS c WHERE c.id IN ({marks})",
                    wanted,
                ):
                    found[int(row[6])] = row
            out: list[tuple[str, str, str, str, str, float]] = []
            for score, row_id, row in best:
                row = row if row is not None else found.get(row_id)
                if row is not None:  # a row deleted in this snapshot is masked; never absent
                    out.append((*row[:5], score))  # type: ignore[arg-type]
            return out
        finally:
            with contextlib.suppress(sqlite3.Error):  # a damaged file: the caller rebuilds it
                db.execute("COMMIT")

    def _fts_top(
        self, terms: list[str], k: int, filters: SearchFilters | None, after: int
    ) -> list[tuple[str, str, str, str, str, float, int]]:
        """FTS5's top ``k`` of the rows with ``id > after``, by its ``bm25()`` (negative)."""
        match = " OR ".join(_quoted(t) for t in terms)
        conditions, values = _conditions(filters)
        sql = (
            "SELECT c.chunk_id, c.text, c.metadata, c.sha256, c.article_id, m.score, c.id FROM"
            " (SELECT rowid AS id, bm25(fts) AS score FROM fts WHERE fts MATCH ?"
            + (" AND rowid > ?" if after else "")
            + ("" if conditions else " ORDER BY score LIMIT ?")
            + ") AS m JOIN chunks AS c ON c.id = m.id"
            + (" WHERE " + " AND ".join(conditions) if conditions else "")
            + " ORDER BY m.score LIMIT ?"
        )
        params: list[object] = [
            match,
            *([after] if after else []),
            *([] if conditions else [k]),
            *values,
            k,
        ]
        return self._db().execute(sql, params).fetchall()

    def _segment_top(
        self, segment: Segment, terms: list[str], k: int, filters: SearchFilters | None
    ) -> list[tuple[float, int]]:
        """The segment's top ``k`` (score, row id) that ``filters`` accept, scored as FTS5's
        ``bm25()`` scores them over the whole current file."""
        db = self._db()
        rows, tokens = averages(db)
        if rows <= 0 or segment.rows == 0:
            return []
        avgdl = tokens / rows
        scores = np.zeros(segment.rows, dtype=np.float64)
        touched = np.zeros(segment.rows, dtype=bool)
        for term in terms:
            if lexical_segment.in_segment(term):
                found = segment.postings(term)
                if found is None:
                    continue  # no segment row holds it
                positions, tf, df = found
                # FTS5's n for the whole file: the segment's rows that had the term when it was
                # built, less those deleted since (with their terms), plus the tail's.
                tail = db.execute(
                    "SELECT count(*) FROM fts WHERE fts MATCH ? AND rowid > ?",
                    (_quoted(term), segment.mark),
                ).fetchone()[0]
                n = df - int(np.count_nonzero(segment.unindexed[positions])) + int(tail)
                scores[positions] += lexical_segment.term_scores(
                    lexical_segment.idf(rows, n),
                    tf.astype(np.float64),
                    segment.dl[positions].astype(np.float64),
                    avgdl,
                )
                touched[positions] = True
            else:  # a phrase to FTS5, or a term the segment does not hold: FTS5 scores it
                matched = db.execute(
                    "SELECT rowid, bm25(fts) FROM fts WHERE fts MATCH ? AND rowid <= ?",
                    (_quoted(term), segment.mark),
                ).fetchall()
                if matched:
                    ids = np.fromiter((r[0] for r in matched), np.int64, len(matched))
                    share = -np.fromiter((r[1] for r in matched), np.float64, len(matched))
                    at = np.searchsorted(segment.ids, ids)
                    held = at < segment.rows
                    held[held] = segment.ids[at[held]] == ids[held]
                    scores[at[held]] += share[held]
                    touched[at[held]] = True
        hit = np.flatnonzero(touched)
        hit = hit[~segment.deleted[hit]]
        if filters is not None and not filters.empty and len(hit):
            hit = hit[self._segment_mask(segment, hit, filters)]
        if not len(hit):
            return []
        values = scores[hit]
        if len(hit) > k:  # the k best, and all tied with the k-th (ties go by row id)
            kth = np.partition(values, len(values) - k)[len(values) - k]
            keep = values >= kth
            hit, values = hit[keep], values[keep]
        order = np.lexsort((segment.ids[hit], -values))[:k]
        return [(float(values[i]), int(segment.ids[hit[i]])) for i in order]

    def _segment_mask(
        self, segment: Segment, hit: np.ndarray, filters: SearchFilters
    ) -> np.ndarray:
        """Which of the segment positions ``hit`` ``filters`` accept: numpy on its field
        arrays; article ids (a filter names few) through SQL."""
        keep = np.ones(len(hit), dtype=bool)
        for codes, field, wanted in (
            (segment.authors, segment.author, filters.authors),
            (segment.publishers, segment.publisher, filters.publishers),
        ):
            if wanted:
                keep &= np.isin(field[hit], [codes[w] for w in wanted if w in codes])
        if filters.date_from:
            keep &= segment.date[hit] >= date_as_int(filters.date_from)
        if filters.date_to:
            keep &= segment.date[hit] <= date_as_int(filters.date_to)
        if filters.article_ids:
            ids: list[int] = []
            for batch in _batches(list(filters.article_ids)):
                marks = ",".join("?" * len(batch))
                ids.extend(
                    int(r[0])
                    for r in self._db().execute(
                        f"SELECT id FROM chunks WHERE article_id IN ({marks}) AND id <= ?",
                        [*batch, segment.mark],
                    )
                )
            keep &= np.isin(segment.ids[hit], np.asarray(ids, dtype=np.int64))
        return keep

    # -- the segment ----------------------------------------------------------------------------

    @property
    def segment_name(self) -> str:
        """The segment the file points at ("" when none)."""
        return self._meta("segment")

    def _current_segment(self) -> Segment | None:
        """The segment the file points at (inside the caller's read transaction), loaded once
        per process and brought up to date with the rows deleted since; None when there is
        none, or it would not load (then FTS5 ranks every row, as before segments)."""
        name = self._meta("segment")
        segment = self._segment
        if not name or name == self._segment_failed:
            return None
        if segment is None or segment.name != name:
            try:
                segment = Segment.load(segments_dir(self.path) / name)
            except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
                log.warning(
                    "the lexical segment %s of %s would not load (%s): FTS5 ranks every row"
                    " until the next one is built",
                    name,
                    self.path,
                    e,
                )
                self._segment_failed = name
                return None
            self._segment = segment
        segment.apply_deletions(self._db())
        return segment

    def _snapshot_segment(self) -> Segment | None:
        """The current segment (loaded if need be), read in a snapshot of its own."""
        if self.segments == "off":
            return None
        db = self._db()
        db.execute("BEGIN")
        try:
            return self._current_segment()
        finally:
            db.execute("COMMIT")

    def _maybe_build_segment(self) -> None:
        """Start a background build when the file has grown past its segment (or has none
        and is large enough): the rows after its mark, or those deleted from it, are more
        than ``SEGMENT_TAIL_SHARE`` of the file or ``SEGMENT_TAIL_MAX_ROWS``. A failed check
        is logged, never raised: the index serves without a new segment."""
        try:
            self._check_segment()
        except sqlite3.Error as e:
            log.warning("the lexical segment of %s was not checked: %s", self.path, e)

    def _check_segment(self) -> None:
        db = self._db()
        rows, _ = averages(db)
        if rows < SEGMENT_MIN_ROWS or self._building.locked():
            return
        mark, since = 0, 0
        db.execute("BEGIN")
        try:
            segment = self._current_segment()
            if segment is not None:
                mark, since = segment.mark, segment.deleted_seq
            tail = int(
                db.execute("SELECT count(*) FROM chunks WHERE id > ?", (mark,)).fetchone()[0]
            )
            gone = int(
                db.execute(
                    "SELECT count(*) FROM deleted_rows WHERE seq > ? AND id <= ?", (since, mark)
                ).fetchone()[0]
            )
        finally:
            db.execute("COMMIT")
        limit = min(SEGMENT_TAIL_SHARE * rows, SEGMENT_TAIL_MAX_ROWS)
        if segment is None or max(tail, gone) > limit:
            threading.Thread(
                target=self._build_quietly, name="lexical-segment", daemon=True
            ).start()

    def _build_quietly(self) -> None:
        try:
            self.build_segment(wait=False)
        except Exception as e:  # a background build that fails leaves the last segment
            log.warning("the lexical segment of %s was not built: %s", self.path, e)
        finally:
            self.close()  # this thread's connection

    def build_segment(self, wait: bool = True) -> dict[str, float]:
        """Build a segment of every row the file holds now and point the file at it (other
        processes load it at their next search); figures of the build. Searches go on
        meanwhile. One process builds at a time (a file lock); ``wait=False`` returns {}
        when another is building."""
        folder = segments_dir(self.path)
        folder.mkdir(parents=True, exist_ok=True)
        if not self._building.acquire(blocking=wait):
            return {}
        try:
            with FileLock(str(folder / ".lock"), timeout=-1 if wait else 0):
                epoch = self._meta("epoch")
                previous = self._snapshot_segment()
                name, figures = lexical_segment.build(
                    self.path, vectors=self._vectors_to_build, previous=previous
                )
                manifest = json.loads((folder / name / "manifest.json").read_text("utf-8"))
                db = self._db()
                with self._write_lock:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        if self._meta("epoch") != epoch:  # rebuilt meanwhile: ids are new
                            db.execute("ROLLBACK")
                            shutil.rmtree(folder / name, ignore_errors=True)
                            return {}
                        db.execute("INSERT OR REPLACE INTO meta VALUES ('segment', ?)", (name,))
                        # Every search reads the pointer in its snapshot: none needs the
                        # deletions that the new segment already left out.
                        db.execute(
                            "DELETE FROM deleted_rows WHERE seq <= ?",
                            (int(manifest["deleted_seq"]),),
                        )
                        # The segment holds these rows' vectors now.
                        db.execute(
                            "DELETE FROM row_vectors WHERE id <= ?", (int(manifest["mark"]),)
                        )
                        db.execute("COMMIT")
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                lexical_segment.remove_old(self.path, name)
                log.info(
                    "lexical segment %s: %d rows in %.1f s",
                    name,
                    figures["rows"],
                    figures["build_s"],
                )
                return figures
        except Timeout:
            return {}
        finally:
            self._building.release()

    def _vectors_to_build(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """For a segment build: the copies of ``chunk_ids``' vectors this file keeps, the
        rest read from the store."""
        found = self._row_copies(self._row_ids(chunk_ids))
        rest = [cid for cid in chunk_ids if cid not in found]
        if rest and self.store is not None:
            found.update(self.store.get_vectors(rest))
        return found

    def _row_ids(self, chunk_ids: Sequence[str]) -> list[tuple[int, str]]:
        rows: list[tuple[int, str]] = []
        for batch in _batches(chunk_ids):
            marks = ",".join("?" * len(batch))
            rows.extend(
                (int(r[0]), str(r[1]))
                for r in self._db().execute(
                    f"SELECT id, chunk_id FROM chunks WHERE chunk_id IN ({marks})", batch
                )
            )
        return rows

    def _row_copies(self, rows: Sequence[tuple[int, str]]) -> dict[str, np.ndarray]:
        """The copies ``row_vectors`` keeps of ``rows`` (row id, chunk id), by chunk id."""
        chunk_of = dict(rows)
        found: dict[str, np.ndarray] = {}
        ids = list(chunk_of)
        for start in range(0, len(ids), _IDS_PER_QUERY):
            batch = ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(batch))
            for row_id, blob in self._db().execute(
                f"SELECT id, vector FROM row_vectors WHERE id IN ({marks})", batch
            ):
                found[chunk_of[int(row_id)]] = np.frombuffer(blob, dtype=np.float16)
        return found

    def vector_copies(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The float16 copies this index keeps of ``chunk_ids``' dense vectors (the
        segment's, and those of rows written since), by chunk id."""
        if not chunk_ids:
            return {}
        db = self._db()
        db.execute("BEGIN")  # one snapshot: the rows and the segment they are read from
        try:
            rows = self._row_ids(chunk_ids)
            segment = self._current_segment() if self.segments != "off" and rows else None
            return self._copies_of(rows, segment)
        finally:
            db.execute("COMMIT")

    def _copies_of(
        self, rows: Sequence[tuple[int, str]], segment: Segment | None
    ) -> dict[str, np.ndarray]:
        """The copies of ``rows``' vectors: the segment's, then ``row_vectors``' (inside
        the caller's snapshot)."""
        found: dict[str, np.ndarray] = {}
        if segment is not None and rows:
            row_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            held, vectors = segment.vectors_of(row_ids)
            found.update(zip((rows[int(i)][1] for i in np.flatnonzero(held)), vectors, strict=True))
        rest = [row for row in rows if row[1] not in found]
        if rest:
            found.update(self._row_copies(rest))
        return found

    def matching(self, filters: SearchFilters, limit: int) -> FilterMatch:
        """The chunks ``filters`` accept (SQL on indexed columns), with the float16 copies
        of their vectors this index keeps (``vector_copies``) when they are listed."""
        conditions, values = _conditions(filters)
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        db = self._db()
        db.execute("BEGIN")  # one snapshot: the rows and the segment they are read from
        try:
            # The ids first, one more than asked: a broad filter is counted, not listed.
            rows = db.execute(
                f"SELECT c.id, c.chunk_id FROM chunks AS c{where} LIMIT ?", [*values, limit + 1]
            ).fetchall()
            if len(rows) > limit:
                count = int(
                    db.execute(f"SELECT count(*) FROM chunks AS c{where}", values).fetchone()[0]
                )
                return FilterMatch(count, self.count(), None)
            ids = tuple(str(r[1]) for r in rows)
            segment = self._current_segment() if self.segments != "off" and rows else None
            vectors = self._copies_of([(int(r[0]), str(r[1])) for r in rows], segment)
        finally:
            db.execute("COMMIT")
        return FilterMatch(len(ids), self.count(), ids, vectors)

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
        """The rows held, counted again only when the file changed since the last count on
        this thread's connection (another connection's commit moves ``data_version``, this
        one's own writes ``total_changes``): every filtered search asks, and a ``count(*)``
        reads the whole id index (milliseconds at 1M rows)."""
        db = self._db()
        key = (int(db.execute("PRAGMA data_version").fetchone()[0]), db.total_changes)
        counted: tuple[tuple[int, int], int] | None = getattr(self._local, "counted", None)
        if counted is None or counted[0] != key:
            counted = (key, int(db.execute("SELECT count(*) FROM chunks").fetchone()[0]))
            self._local.counted = counted
        return counted[1]

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


def _quoted(term: str) -> str:
    """``term`` as one FTS5 phrase (FTS5 tokenizes it as it tokenized the rows)."""
    return '"' + term.replace('"', '""') + '"'


def _batches(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _IDS_PER_QUERY):
        yield list(items[start : start + _IDS_PER_QUERY])


def _dumps(metadata: Metadata) -> str:
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True)


def _digest(chunk_id: str, text: str, metadata: Metadata) -> str:
    payload = json.dumps([chunk_id, text, _dumps(metadata)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
